"""The status page (GET /) in headless Chromium, driven by selenium, against a real server: the GEX profile chart
shows the posted strikes by volume and by OI, spot, zero gamma and the major levels, and follows a new snapshot on
its own; stale feeds are highlighted and named in the badge. Judged as a trader would: the strikes within 2.5% of
spot by default, the band in the URL; round strike ticks; level labels apart however close the levels; the ticker
last chosen shown again; a phone's 420 px read without zooming. Saves a screenshot in the test's temporary folder,
or where GEXSRV_SCREENSHOT says (`make screenshot` refreshes the README's docs/status-page.png), so a test run
leaves the clone as it was.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); skips, saying so, where they are missing."""

import math
import os
import re
import time
import urllib.parse
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.support.select import Select

from helpers import CHROMIUM, CHROMEDRIVER, eventually, wait_job

WAIT_S = 30  # generous: a loaded machine renders slowly, and a pass returns as soon as the page shows it

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless Chromium: install Debian's chromium and chromium-driver (.ci/run does, when it may)")


def gex_snapshot(ticker, timestamp, spot, tilt):
    """A snapshot of 13 strikes 5 apart around spot, net GEX growing with the strike (by `tilt` per strike), with
    zero gamma and the majors among them."""
    base = round(spot / 5) * 5
    strikes = [[base + 5 * (i - 6), round(tilt * (i - 5) * 1e6, 1), round(tilt * (i - 4) * 4e5, 1), []]
               for i in range(13)]
    return {"timestamp": timestamp, "ticker": ticker, "min_dte": 0, "sec_min_dte": 1, "spot": spot,
            "zero_gamma": base - 2.5, "major_pos_vol": base + 30, "major_neg_vol": base - 30,
            "major_pos_oi": base + 25, "major_neg_oi": base - 20, "strikes": strikes,
            "sum_gex_vol": sum(row[1] for row in strikes), "sum_gex_oi": sum(row[2] for row in strikes),
            "delta_risk_reversal": 0.1, "max_priors": []}


def chain(ticker, timestamp, spot, step, count, **levels):
    """A snapshot of `count` strikes `step` apart centred on spot, GEX values of both signs and many sizes; zero
    gamma and the majors at spot unless `levels` says otherwise."""
    base = round(spot / step) * step
    strikes = [[round(base + step * (i - count // 2), 2), float((i * 37 % 23 - 11) * 10 ** (5 + i % 2)),
                float((i * 31 % 17 - 8) * 4e4), []] for i in range(count)]
    return {"timestamp": timestamp, "ticker": ticker, "min_dte": 0, "sec_min_dte": 1, "spot": spot,
            "zero_gamma": base, "major_pos_vol": base, "major_neg_vol": base, "major_pos_oi": base,
            "major_neg_oi": base, "strikes": strikes, "sum_gex_vol": sum(row[1] for row in strikes),
            "sum_gex_oi": sum(row[2] for row in strikes), "delta_risk_reversal": 0.1, "max_priors": [], **levels}


def wait_for(check, what):
    """check()'s first truthy result within WAIT_S seconds."""
    return eventually(check, f"the page showing {what}", WAIT_S, step=0.1)


def choose(driver, select_id, value):
    """Pick value in a select as a user does; the page redraws its options at every refresh, so an option found a
    moment ago may be gone: pick again until the choice holds."""
    def chosen():
        try:
            select = Select(driver.find_element("id", select_id))
            select.select_by_value(value)
            return select.first_selected_option.get_attribute("value") == value
        except StaleElementReferenceException:
            return False

    wait_for(chosen, f"{value} chosen in #{select_id}")


def chart(driver):
    """What the chart's SVG shows: its snapshot, bars (strike, value) per panel, and level lines by class."""
    return driver.execute_script("""
        const svg = document.querySelector('#chart svg.profile');
        if (!svg) return null;
        const bars = (panel) => [...svg.querySelectorAll(`rect.bar.${panel}`)].map(
            (bar) => [Number(bar.dataset.strike), Number(bar.dataset.value)]);
        const levels = {};
        for (const line of svg.querySelectorAll('line.level')) {
            const name = [...line.classList].filter((c) => c !== 'level').join(' ');
            levels[name] = Number(line.dataset.value);
        }
        return {ticker: svg.dataset.ticker, endpoint: svg.dataset.endpoint, timestamp: Number(svg.dataset.timestamp),
                vol: bars('vol'), oi: bars('oi'), levels};
    """)


def expected_chart(payload, endpoint):
    return {"ticker": payload["ticker"], "endpoint": endpoint, "timestamp": payload["timestamp"] * 1000,
            "vol": [[row[0], row[1]] for row in payload["strikes"]],
            "oi": [[row[0], row[2]] for row in payload["strikes"]],
            "levels": {"spot": payload["spot"], "zero-gamma": payload["zero_gamma"],
                       "major-pos major_pos_vol": payload["major_pos_vol"],
                       "major-neg major_neg_vol": payload["major_neg_vol"],
                       "major-pos major_pos_oi": payload["major_pos_oi"],
                       "major-neg major_neg_oi": payload["major_neg_oi"]}}


def shown(driver, payload, endpoint):
    """The chart once it shows payload's snapshot."""
    def drawn():
        found = chart(driver)
        return found if found and (found["ticker"], found["timestamp"]) == (payload["ticker"],
                                                                           payload["timestamp"] * 1000) else None
    return wait_for(drawn, f"the snapshot of {payload['ticker']} at {payload['timestamp']}")


def feed_rows(driver):
    return driver.execute_script("""
        return [...document.querySelectorAll('#feeds tbody tr[data-kind]')].map((row) => [
            row.dataset.ticker, row.dataset.endpoint, row.dataset.kind, row.dataset.stale]);""")


def post(server, payload, endpoint):
    reply = server.post("/gex?ack=ingested", {"endpoint": endpoint, "data": payload})
    assert reply.status == 202, reply.body


def test_the_chart_shows_the_posted_snapshot_and_follows_new_ones(server, browser, tmp_path):
    now = int(time.time())
    first = gex_snapshot("SPX", now - 2, 7138.55, 1.0)
    post(server, gex_snapshot("NDX", now - 86400, 25010.0, -0.5), "gex_full")  # a day old: stale
    post(server, first, "gex_zero")

    browser.get(f"{server.url}/?ticker=SPX&endpoint=gex_zero&refresh=0.3")
    assert shown(browser, first, "gex_zero") == expected_chart(first, "gex_zero")
    caption = browser.find_element("id", "chart-caption").text
    assert caption.startswith("SPX gex_zero") and "13 of 13 strikes shown (spot ± 2.5%)" in caption
    assert wait_for(lambda: feed_rows(browser), "the feeds") == [["NDX", "gex_full", "snapshot", "true"],
                                                                ["SPX", "gex_zero", "snapshot", "false"]]
    assert badge(browser) == ("1 of 2 feeds stale", "badge stale")

    second = gex_snapshot("SPX", now - 1, 7151.0, 1.5)  # other strikes and values: every bar changes
    post(server, second, "gex_zero")
    assert shown(browser, second, "gex_zero") == expected_chart(second, "gex_zero")
    levels = browser.find_element("id", "levels").text
    assert f"spot {second['spot']:g}" in levels and f"zero gamma {second['zero_gamma']:g}" in levels
    assert browser.find_elements("css selector", "#notice:not([hidden])") == []
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []

    # The chart follows the feed as soon as the snapshot is acknowledged; the server facts catch up with its ingest.
    wait_for(lambda: browser.execute_script(
        "return document.querySelector(\"dd[data-fact='waiting for ingest']\").textContent").startswith("0 records"),
        "the snapshot ingested")
    screenshot = Path(os.environ.get("GEXSRV_SCREENSHOT") or tmp_path / "status-page.png")
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_with_authentication_on_the_page_asks_for_the_token_once(start_server, browser):
    server = start_server(None, env={"GEXSRV_AUTH_TOKEN": "page-token"})
    payload = gex_snapshot("SPX", int(time.time()), 7138.55, 1.0)
    reply = server.post("/gex?ack=ingested", {"endpoint": "gex_one", "data": payload},
                        {"Authorization": "Bearer page-token"})
    assert reply.status == 202, reply.body

    browser.get(f"{server.url}/?refresh=0.3")
    form = wait_for(lambda: browser.find_element("id", "auth").is_displayed()
                    and browser.find_element("id", "auth"), "the token form")
    assert "401: missing bearer token" in browser.find_element("id", "notice").text
    assert chart(browser) is None
    browser.find_element("id", "token").send_keys("page-token")
    form.submit()
    assert shown(browser, payload, "gex_one") == expected_chart(payload, "gex_one")
    assert not browser.find_element("id", "auth").is_displayed()


def badge(driver):
    found = driver.find_element("id", "server-status")
    return found.text, found.get_attribute("class")


def url_query(driver):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(driver.current_url).query)


def bar_strikes(driver, payload, count):
    """The strikes the chart's volume panel shows, once it shows payload's snapshot with `count` of them."""
    def drawn():
        found = chart(driver)
        return (found and found["timestamp"] == payload["timestamp"] * 1000 and len(found["vol"]) == count
                and [strike for strike, _ in found["vol"]])
    return wait_for(drawn, f"{count} strikes of {payload['ticker']}")


def within(payload, percent):
    return [row[0] for row in payload["strikes"] if abs(row[0] - payload["spot"]) <= payload["spot"] * percent / 100]


def tick_labels(driver, axis, within="svg"):
    return driver.execute_script(f"return [...document.querySelectorAll('#chart {within} text.tick.{axis}')]"
                                 ".map((tick) => tick.textContent)")


def assert_round(values):
    """Evenly spaced multiples of a step that is 1, 2, 2.5 or 5 times a power of ten."""
    step = values[1] - values[0]
    mantissa = step / 10 ** math.floor(math.log10(step))
    assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5)), (step, values)
    assert all(math.isclose(b - a, step) for a, b in zip(values, values[1:])), values
    assert all(math.isclose(v / step, round(v / step), abs_tol=1e-9) for v in values), values


def scaled(label):
    """A y tick label (-2.5M, 400K, 0) as a number."""
    number, suffix = re.fullmatch(r"(-?\d+(?:\.\d+)?)([KMB]?)", label).groups()
    return float(number) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9}[suffix]


def test_the_band_around_spot_is_the_default_in_the_url_and_changeable(server, browser):
    payload = chain("SPX", int(time.time()), 6651.3, 5, 121, zero_gamma=6640, major_pos_vol=6675,
                    major_neg_vol=6600, major_pos_oi=6700, major_neg_oi=6625)  # 6350 to 6950: spot +-4.5%
    post(server, payload, "gex_zero")

    browser.get(f"{server.url}/?ticker=SPX&refresh=0.3")
    band = within(payload, 2.5)
    assert 40 < len(band) < 121
    assert bar_strikes(browser, payload, len(band)) == band
    assert url_query(browser)["band"] == ["2.5"]
    assert f"{len(band)} of 121 strikes shown (spot ± 2.5%)" in browser.find_element("id", "chart-caption").text
    strikes = [float(label) for label in tick_labels(browser, "x")]
    assert len(strikes) >= 4 * 2  # repeated under each panel
    assert_round(sorted(set(strikes)))
    assert band[0] - 2.5 <= min(strikes) and max(strikes) <= band[-1] + 2.5
    assert all(label == str(int(float(label))) for label in tick_labels(browser, "x"))  # 6625, not 6625.0
    for panel in ("vol", "oi"):
        values = [scaled(label) for label in tick_labels(browser, "y", f"g.panel.{panel}")]
        assert 0 in values and values == sorted(values) and values[0] == -values[-1]
        assert_round(values)
    titles = browser.execute_script(
        "return [...document.querySelectorAll('#chart svg text.axis-title')].map((title) => title.textContent)")
    assert titles.count("net GEX (gexbot units)") == 2 and "strike" in titles
    assert badge(browser) == ("ok", "badge ok")

    choose(browser, "range", "all")
    assert bar_strikes(browser, payload, 121) == [row[0] for row in payload["strikes"]]
    assert url_query(browser)["band"] == ["all"]
    assert "121 of 121 strikes shown (all strikes)" in browser.find_element("id", "chart-caption").text

    browser.get(browser.current_url)  # the link reproduces the view
    assert bar_strikes(browser, payload, 121) == [row[0] for row in payload["strikes"]]
    assert Select(browser.find_element("id", "range")).first_selected_option.text == "all strikes"

    browser.get(f"{server.url}/?ticker=SPX&band=1&refresh=0.3")
    assert bar_strikes(browser, payload, len(within(payload, 1))) == within(payload, 1)
    browser.get(f"{server.url}/?ticker=SPX&band=3&refresh=0.3")  # a band the select does not offer
    assert bar_strikes(browser, payload, len(within(payload, 3))) == within(payload, 3)
    assert Select(browser.find_element("id", "range")).first_selected_option.text == "spot ± 3%"


OVERLAPS = """
    const boxes = [...document.querySelectorAll('#chart svg text')].map((text) => [text.textContent,
        text.getBoundingClientRect()]);
    const found = [];
    boxes.forEach(([a, p], i) => boxes.slice(i + 1).forEach(([b, q]) => {
        if (p.left < q.right && q.left < p.right && p.top < q.bottom && q.top < p.bottom) found.push([a, b]);
    }));
    return [boxes.length, found];
"""


@pytest.mark.parametrize("width", [1280, 420])
def test_level_labels_never_overlap_however_close_the_levels(server, browser, width):
    # SPY: strikes a dollar apart, spot and zero gamma 0.01% apart, the majors on the same strikes.
    payload = chain("SPY", int(time.time()), 660.0, 1, 120, zero_gamma=660.06, major_pos_vol=660,
                    major_neg_vol=660, major_pos_oi=660, major_neg_oi=661)
    post(server, payload, "gex_zero")
    browser.set_window_size(width, 1400)
    browser.get(f"{server.url}/?ticker=SPY&refresh=0.3")
    levels = shown(browser, payload, "gex_zero")["levels"]
    assert levels == expected_chart(payload, "gex_zero")["levels"]
    count, overlapping = browser.execute_script(OVERLAPS)
    labels = browser.execute_script(
        "return [...document.querySelectorAll('#chart svg text.label')].map((label) => label.textContent)")
    assert sorted(labels) == sorted(["Spot 660", "Zero γ 660.06", "+Vol 660", "−Vol 660", "+OI 660", "−OI 661"])
    assert count > 20 and overlapping == []


def test_the_chosen_ticker_is_remembered_and_a_urls_ticker_wins(server, browser):
    now = int(time.time())
    ndx, spx = chain("NDX", now, 25010.0, 10, 40), chain("SPX", now, 6651.3, 5, 40)
    post(server, ndx, "gex_full")
    post(server, spx, "gex_zero")

    browser.get(f"{server.url}/?refresh=0.3")
    assert shown(browser, ndx, "gex_full")["ticker"] == "NDX"  # nothing chosen yet: the first ticker
    choose(browser, "ticker", "SPX")
    assert shown(browser, spx, "gex_zero")["ticker"] == "SPX"
    wait_for(lambda: url_query(browser).get("ticker") == ["SPX"], "SPX in the URL")

    browser.get(f"{server.url}/?refresh=0.3")
    assert shown(browser, spx, "gex_zero")["ticker"] == "SPX"
    assert url_query(browser)["ticker"] == ["SPX"] and url_query(browser)["endpoint"] == ["gex_zero"]
    assert browser.execute_script("return JSON.parse(localStorage.getItem('gexsrv-chosen'))") == {
        "ticker": "SPX", "endpoint": "gex_zero"}

    browser.get(f"{server.url}/?ticker=NDX&refresh=0.3")
    assert shown(browser, ndx, "gex_full")["ticker"] == "NDX"
    assert Select(browser.find_element("id", "ticker")).first_selected_option.text == "NDX"

    # the day view link follows the chosen feed, and the day view opens on it
    link = wait_for(lambda: (a := browser.find_element("id", "day-link")).get_attribute("href").endswith(
        "/day?ticker=NDX&endpoint=gex_full") and a, "the day view link for NDX gex_full")
    link.click()
    feed = "const feed = document.getElementById('feed'); return feed && feed.value"  # '' until its options come
    assert wait_for(lambda: browser.execute_script(feed) == "NDX gex_full", "the day view on NDX gex_full")


def test_the_badge_says_when_feeds_are_stale(server, browser):
    now = int(time.time())
    post(server, chain("NDX", now - 86400, 25010.0, 10, 20), "gex_full")
    post(server, chain("SPX", now - 3600, 6651.3, 5, 20), "gex_zero")
    browser.get(f"{server.url}/?refresh=0.3")
    assert wait_for(lambda: badge(browser)[0] == "all feeds stale" and badge(browser), "every feed stale") == (
        "all feeds stale", "badge stale")
    assert "older than 2 min" in browser.find_element("id", "server-status").get_attribute("title")

    post(server, chain("SPX", now, 6651.3, 5, 20), "gex_zero")
    assert wait_for(lambda: badge(browser)[0] == "1 of 2 feeds stale" and badge(browser), "SPX fresh") == (
        "1 of 2 feeds stale", "badge stale")
    post(server, chain("NDX", now, 25010.0, 10, 20), "gex_full")
    assert wait_for(lambda: badge(browser)[0] == "ok" and badge(browser), "every feed fresh") == ("ok", "badge ok")


SMALL_TEXT = """
    const small = [];
    const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    while (walker.nextNode()) {
        const owner = walker.currentNode.parentElement;
        if (!walker.currentNode.textContent.trim() || !owner.getClientRects().length) continue;  // not shown
        const svg = owner.closest('svg');
        const size = parseFloat(getComputedStyle(owner).fontSize) * (svg ? svg.getScreenCTM().a : 1);
        if (size < 12) small.push([owner.tagName, walker.currentNode.textContent.slice(0, 40), size]);
    }
    return small;
"""


def test_a_phone_reads_the_page_at_420_px(hist, files, browser):
    server = hist()
    now = int(time.time())
    payload = chain("SPX", now, 6651.3, 5, 300, zero_gamma=6640, major_pos_vol=6675, major_neg_vol=6600)
    post(server, payload, "gex_zero")
    post(server, chain("NDX", now - 86400, 25010.0, 10, 20), "gex_full")
    reply = server.post("/gex_history_url", {"url": f"{files.url}/status/404/2025-10-21_SPX_classic_gex_zero.json"})
    assert reply.status == 202, reply.body
    assert wait_job(server, reply.json()["id"])["status"] == "failed"

    browser.set_window_size(420, 1400)
    browser.get(f"{server.url}/?ticker=SPX&refresh=0.3")
    shown(browser, payload, "gex_zero")
    wait_for(lambda: browser.find_elements("css selector", "#jobs tr.job.failed"), "the failed job")
    width, scroll = browser.execute_script("return [innerWidth, document.documentElement.scrollWidth]")
    assert 400 <= width <= 420 and scroll <= width
    tables = browser.execute_script("""return [...document.querySelectorAll('table')].map((table) =>
        [table.id, table.scrollWidth, table.getBoundingClientRect().right])""")
    assert [table for table, scroll_width, right in tables if scroll_width > width or right > width] == []
    assert browser.execute_script(SMALL_TEXT) == []
    assert browser.execute_script(OVERLAPS)[1] == []
