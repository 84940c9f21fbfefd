"""The day view (GET /day) in headless Chromium against a real server: a generated day's heatmap has the grid's
dimensions, the hover readout and the colour of a few cells are what DuckDB says of them, the slider shows the
profile of the moment chosen, the page fits a 420-pixel-wide window, today's view grows as snapshots arrive, the
token is asked for when authentication is on, and a day whose lake holds strike rows only is shown whole.
Saves a screenshot in the test's temporary folder, or where GEXSRV_SCREENSHOT says (`make screenshot` refreshes
the README's docs/day-view.png).

Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them); skips, saying so, where they are missing."""

import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys

from dayfixture import DAY_MS, DAY_QUERY, DAY_START, day_snapshots, expected, import_day, reference
from helpers import CHROMEDRIVER, CHROMIUM, Server, eventually, snapshot

WAIT_S = 30
NULL_RGB = [236, 239, 243]  # day.js: a cell without a value

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless Chromium: install Debian's chromium and chromium-driver (.ci/run does, when it may)")


def wait_for(check, what):
    return eventually(check, f"the page showing {what}", WAIT_S, step=0.1)


def canvas(driver):
    """The heatmap's dimensions and plot area (CSS pixels), from its data-* attributes."""
    found = driver.execute_script("return {...document.getElementById('heatmap').dataset}")
    return {name: float(value) for name, value in found.items()}


def drawn(driver, columns):
    return wait_for(lambda: (found := canvas(driver)) and found.get("columns") == columns and found, f"{columns} "
                    "columns")


def cell_point(map_, i, j):
    """The centre of cell (time i, strike j) in the canvas, strikes counted from the bottom."""
    return (map_["left"] + (i + 0.5) * map_["width"] / map_["columns"],
            map_["top"] + (map_["rows"] - j - 0.5) * map_["height"] / map_["rows"])


def hover(driver, map_, i, j):
    """Point at cell (i, j) and return the readout's data and five pixels drawn in the cell (a level line may
    cross one of them)."""
    element = driver.find_element("id", "heatmap")
    x, y = cell_point(map_, i, j)
    ActionChains(driver).move_to_element_with_offset(element, round(x - element.size["width"] / 2),
                                                     round(y - element.size["height"] / 2)).perform()
    return driver.execute_script("""
        const [x, y, w, h] = arguments;
        const canvas = document.getElementById('heatmap');
        const ratio = canvas.width / canvas.clientWidth;
        const ctx = canvas.getContext('2d');
        const pixels = [[0, 0], [-0.3, -0.3], [0.3, -0.3], [-0.3, 0.3], [0.3, 0.3]].map(([dx, dy]) => [
            ...ctx.getImageData(Math.round((x + dx * w) * ratio), Math.round((y + dy * h) * ratio), 1, 1).data]);
        return {...document.getElementById('readout').dataset, text: document.getElementById('readout').textContent,
                pixels: pixels.map((p) => p.slice(0, 3))};""", x, y, map_["width"] / map_["columns"],
        map_["height"] / map_["rows"])


def hue(pixels):
    """What most of a cell's pixels show: "pos" (green), "neg" (red) or "none" (the grey of an empty cell)."""
    kinds = ["none" if p == NULL_RGB else "pos" if p[1] > p[0] else "neg" for p in pixels]
    return max(set(kinds), key=kinds.count)


def profile(driver):
    return driver.execute_script("""
        const svg = document.querySelector('#profile svg.profile');
        const levels = {};
        for (const line of svg.querySelectorAll('line.level')) levels[line.dataset.level] = Number(line.dataset.value);
        return {time: Number(svg.dataset.time), levels,
                bars: [...svg.querySelectorAll('rect.bar')].map((b) => [Number(b.dataset.strike),
                                                                         Number(b.dataset.value)])};""")


def expected_profile(want, i):
    time_ = want["times"][i]
    bars = [[strike, want["cells"][(time_, strike)]] for strike in want["strikes"] if (time_, strike) in want["cells"]]
    return time_, bars


@pytest.fixture
def day_server(tmp_path):
    data = tmp_path / "data"
    import_day(data, day_snapshots())
    srv = Server(data).start()
    yield srv
    srv.stop()


def test_the_day_view_shows_the_grid_the_levels_and_any_moment(day_server, browser, tmp_path):
    want = expected(reference(day_snapshots()), DAY_START, DAY_START + DAY_MS, band=2.5)  # the page's default band
    browser.get(f"{day_server.url}/day?{DAY_QUERY}")
    map_ = drawn(browser, len(want["times"]))
    assert map_["rows"] == len(want["strikes"]) and map_["scale"] > 0
    caption = browser.find_element("id", "caption").text
    assert caption.startswith(f"SPX gex_zero 2025-10-21: {len(want['times'])} buckets × {len(want['strikes'])} "
                              "strikes, the last snapshot of each 60 s bucket")

    last, top = len(want["times"]) - 1, len(want["strikes"]) - 1
    null = next(((i, j) for i, t in enumerate(want["times"]) for j, s in enumerate(want["strikes"])
                 if (t, s) not in want["cells"]))
    for i, j in [(0, 0), (last // 2, top // 2), (last, top), (3, top), null]:
        time_, strike = want["times"][i], want["strikes"][j]
        found = hover(browser, map_, i, j)
        assert (int(found["time"]), float(found["strike"])) == (time_, strike)
        value = want["cells"].get((time_, strike))
        assert (float(found["value"]) if found["value"] else None) == value
        assert f"strike {strike:g}" in found["text"]
        assert hue(found["pixels"]) == ("none" if value is None else "pos" if value > 0 else "neg")
    # The slider starts at the day's last bucket; Home, then three steps right, profiles the fourth.
    assert profile(browser)["time"] == want["times"][last]
    slider = browser.find_element("id", "moment")
    slider.send_keys(Keys.HOME, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT, Keys.ARROW_RIGHT)
    shown = wait_for(lambda: (found := profile(browser))["time"] == want["times"][3] and found, "the fourth bucket")
    assert [shown["time"], shown["bars"]] == list(expected_profile(want, 3))
    assert shown["levels"]["spot"] == want["series"]["spot"][3]
    assert shown["levels"]["zero_gamma"] == want["series"]["zero_gamma"][3]
    assert "12 snapshots" in browser.find_element("id", "moment-label").text
    assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    screenshot = Path(os.environ.get("GEXSRV_SCREENSHOT") or tmp_path / "day-view.png")
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000

    # A phone-width window: nothing wider than it, the same grid.
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 420, "height": 900, "deviceScaleFactor": 1, "mobile": True})
    browser.get(f"{day_server.url}/day?{DAY_QUERY}")
    narrow = drawn(browser, len(want["times"]))
    assert narrow["rows"] == len(want["strikes"]) and narrow["width"] < 420
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 420


def test_todays_view_grows_as_snapshots_arrive(start_server, browser):
    server = start_server()
    now = int(time.time())
    midnight = now - now % 86400
    first = max(midnight, now - 120) // 30 * 30

    def post(timestamp, value):
        payload = snapshot(timestamp=timestamp)
        payload["strikes"][2][1] = value
        assert server.post("/gex?ack=ingested", payload).status == 202

    post(first, 1.5)
    post(first + 5, 2.5)  # the same 30 s bucket: the last one shows
    today = dt.datetime.fromtimestamp(first, dt.timezone.utc).date().isoformat()
    browser.get(f"{server.url}/day?ticker=SPX&endpoint=gex_zero&date={today}&bucket_s=30&band=&refresh=0.3")
    map_ = drawn(browser, 1)
    assert not browser.find_element("id", "live").get_attribute("hidden")
    assert float(hover(browser, map_, 0, 2)["value"]) == 2.5
    post(first + 30, -7.25)
    post(first + 60, 9.0)
    map_ = drawn(browser, 3)
    assert float(hover(browser, map_, 1, 2)["value"]) == -7.25
    assert wait_for(lambda: profile(browser)["time"] == (first + 60) * 1000, "the newest bucket profiled")
    assert [7138.55, 9.0] in profile(browser)["bars"]


def test_with_authentication_on_the_page_asks_for_the_token(start_server, browser):
    server = start_server(None, env={"GEXSRV_AUTH_TOKEN": "day-token"})
    reply = server.post("/gex?ack=ingested", snapshot(), {"Authorization": "Bearer day-token"})
    assert reply.status == 202, reply.body
    browser.get(f"{server.url}/day?ticker=SPX&endpoint=gex_zero&date=2026-04-29&band=")
    form = wait_for(lambda: browser.find_element("id", "auth").is_displayed() and browser.find_element("id", "auth"),
                    "the token form")
    assert "401" in browser.find_element("id", "notice").text
    browser.find_element("id", "token").send_keys("day-token")
    form.submit()
    assert drawn(browser, 1)["rows"] == 5  # helpers.snapshot's five strikes
    assert not browser.find_element("id", "auth").is_displayed()


def test_a_day_whose_lake_holds_strike_rows_only_is_shown_whole(tmp_path, browser):
    data = tmp_path / "data"
    snaps = day_snapshots()
    import_day(data, snaps)
    with duckdb.connect(str(data / "gex_data.db")) as db:  # the day leaves the database
        db.execute("DELETE FROM gex_strikes")
        db.execute("DELETE FROM gex_snapshots")
    (data / "parquet/gexbot/SPX/gex_zero/20251021.snapshots.parquet").unlink()
    server = Server(data).start()
    try:
        browser.get(f"{server.url}/day")  # the band around spot, by default, cannot be drawn: every strike is
        want = expected(reference(snaps), DAY_START, DAY_START + DAY_MS)
        assert drawn(browser, len(want["times"]))["rows"] == len(want["strikes"])
        assert "holds its strike rows but not its spot" in browser.find_element("id", "notice").text
        assert "from the lake (which holds its strike rows only" in browser.find_element("id", "caption").text
        assert browser.find_element("id", "date").get_attribute("value") == "2025-10-21"
    finally:
        server.stop()
