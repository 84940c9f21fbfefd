"""The status page (GET /) in headless Chromium, driven by selenium, against a real server: the GEX profile chart
shows the posted strikes by volume and by OI, spot, zero gamma and the major levels, and follows a new snapshot on
its own; stale feeds are highlighted. Saves a screenshot in the test's temporary folder, or where
GEXSRV_SCREENSHOT says (`make screenshot` refreshes the README's docs/status-page.png), so a test run leaves the
clone as it was.

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); skips, saying so, where they are missing."""

import os
import time
from pathlib import Path

import pytest

from helpers import CHROMIUM, CHROMEDRIVER, eventually

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


def wait_for(check, what):
    """check()'s first truthy result within WAIT_S seconds."""
    return eventually(check, f"the page showing {what}", WAIT_S, step=0.1)


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
        return found if found and found["timestamp"] == payload["timestamp"] * 1000 else None
    return wait_for(drawn, f"the snapshot of {payload['timestamp']}")


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
    assert caption.startswith("SPX gex_zero") and "13 strikes" in caption
    assert wait_for(lambda: feed_rows(browser), "the feeds") == [["NDX", "gex_full", "snapshot", "true"],
                                                                ["SPX", "gex_zero", "snapshot", "false"]]
    assert browser.find_element("css selector", "#server-status").text == "ok"

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
