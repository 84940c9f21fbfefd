"""A payload dated far ahead of the server's clock (past --future-tolerance-s) is stored, listed in the reply's
problems, and never becomes the latest of its ticker or feed: not in /api/latest, latest.json or the feeds, and not
after a restart either, when the view is loaded back from DuckDB. A real server, restarted."""

import json
import time

from helpers import eventually, latest, majors, snapshot, wait_loaded

Y2099 = 4_070_908_800  # 2099-01-01, inside the 2000..2100 bound
GEX = "/gex?ack=ingested"  # the views show what is stored


def feed_timestamps(server):
    """{(ticker, endpoint, kind): newest timestamp ms} as the status page shows the feeds."""
    return {(f["ticker"], f["endpoint"], f["kind"]): f["timestamp"] for f in server.get("/api/status").json()["feeds"]}


def outputs_view(folder, want, timeout=30):
    """latest.json once it holds `want` (it is replaced at most once a second)."""
    def holds_want():
        path = folder / "latest.json"
        return path.exists() and json.loads(path.read_bytes()) == want and want

    return eventually(holds_want, f"latest.json holding {want}", timeout)


def test_a_far_future_timestamp_is_stored_but_never_the_latest(start_server, tmp_path):
    now = int(time.time())
    soon = now + 3600  # an hour ahead: within the default tolerance (a day), so it is the latest
    folder = tmp_path / "outputs"
    server = start_server(None, "--outputs-dir", str(folder))
    wait_loaded(server)
    replies = [server.post(GEX, snapshot(timestamp=now - 60, n_strikes=2, spot=100.0)),
               server.post(GEX, snapshot(timestamp=Y2099, n_strikes=2, spot=999.0)),
               server.post(GEX, majors("SPX", Y2099, 999.0)),
               server.post(GEX, snapshot(timestamp=soon, n_strikes=2, spot=101.0)),
               server.post(GEX, majors("SPX", now, 102.0))]
    assert [r.status for r in replies] == [202] * 5
    problems = [r.json()["problems"] for r in replies]
    assert [p == [] for p in problems] == [True, False, False, True, True]
    for p in problems[1:3]:
        assert [x["field"] for x in p] == ["$.timestamp"] and "ahead of the server's clock" in p[0]["error"], p
    view = latest(server, "?ticker=SPX")
    feeds = feed_timestamps(server)
    written = outputs_view(folder, {"SPX": view})
    server.stop()

    expected_feeds = {("SPX", "gex_zero", "snapshot"): soon * 1000, ("SPX", "gex_zero", "majors"): now * 1000}
    assert (view["snapshot"]["timestamp"], view["combined"]["spot"], view["majors"]["timestamp"]) == (soon, 101.0, now)
    assert feeds == expected_feeds
    assert written == {"SPX": view}
    with server.db() as db:  # stored all the same
        assert db.execute("SELECT timestamp // 1000, spot_price FROM gex_snapshots ORDER BY 1").fetchall() == [
            (now - 60, 100.0), (soon, 101.0), (Y2099, 999.0)]
        assert db.execute("SELECT timestamp // 1000, spot FROM gex_majors ORDER BY 1").fetchall() == [
            (now, 102.0), (Y2099, 999.0)]

    server.start()
    assert wait_loaded(server)["latest"]["load"] == "done"
    reloaded = latest(server, "?ticker=SPX")
    reloaded_feeds = feed_timestamps(server)
    server.stop()
    assert (reloaded["snapshot"]["timestamp"], reloaded["combined"]["spot"], reloaded["majors"]["timestamp"]) == (
        soon, 101.0, now)
    assert reloaded_feeds == expected_feeds
