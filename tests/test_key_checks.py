"""The checks of a key's ticker and timestamp, over HTTP: a timestamp's 2000..2100 bound applies to the value
stored, after rounding to milliseconds; a ticker is checked for ASCII before it is upper-cased (Unicode case
folding would turn `ß` into `SS` and `ſpx` into `SPX`), on every way in and in the read API's parameters."""

import json
import urllib.parse

from forkserver import run_gexsrv
from helpers import REPO, snapshot

LAST_MS = 4_102_444_799_999  # 2100-01-01 less a millisecond: the newest timestamp stored
FIRST_MS = 946_684_800_000  # 2000-01-01


def refused(reply, field):
    assert reply.status == 400, reply.body
    assert reply.json()["field"] == field, reply.body
    return reply.json()["error"]


def test_the_timestamp_bound_applies_after_rounding(server):
    for ticker, ts in [("A", 4102444799.9996), ("B", 4102444799999.6), ("C", 946684799.9994)]:
        assert "outside 2000-01-01 .. 2100-01-01" in refused(server.post("/gex", snapshot(ticker, ts, 1)),
                                                             "$.timestamp")
    for ticker, ts in [("D", 4102444799.9994), ("E", 4102444799999.4), ("F", 946684799.9996)]:
        reply = server.post("/gex?ack=ingested", snapshot(ticker, ts, 1))
        assert reply.status == 202, reply.body
    refused(server.get("/api/snapshots?ticker=SPX&until=4102444799.9996"), "until")
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT ticker, timestamp FROM gex_snapshots ORDER BY ticker").fetchall() == [
            ("D", LAST_MS), ("E", LAST_MS), ("F", FIRST_MS)]


def test_tickers_that_only_case_folding_makes_ascii_are_refused(server):
    for name in ("ß", "ſpx"):
        assert name in refused(server.post("/gex", snapshot(name, 1777492800, 1)), "$.ticker")
        frame = {"topic": "gex", "ticker": "SPX", "endpoint": "gex_zero", "payload": snapshot(name, 1777492801, 1)}
        refused(server.post("/uw", frame), "$.payload.ticker")
        history = {"url": "https://hist.gex.bot/2026-04-29_SPX_classic_gex_zero.json", "ticker": name}
        refused(server.post("/gex_history_url", history), "$.ticker")
        quoted = urllib.parse.quote(name)
        for path in (f"/api/latest?ticker={quoted}", f"/api/snapshots?ticker={quoted}",
                     f"/api/strikes?ticker={quoted}&endpoint=gex_zero"):
            refused(server.get(path), "ticker")
    assert server.post("/gex?ack=ingested", snapshot("spx", 1777492802, 1)).status == 202
    assert server.get("/api/latest?ticker=spx").status == 200
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT ticker, timestamp FROM gex_snapshots").fetchall() == [("SPX", 1777492802000)]
        assert db.execute("SELECT count(*) FROM gex_history_queue").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM universal_webhooks").fetchone()[0] == 0


def test_the_import_command_refuses_such_a_ticker(tmp_path):
    path = tmp_path / "2026-04-29_SPX_classic_gex_zero.json"
    path.write_text(json.dumps([snapshot("SPX", 1777492800, 1)]))
    done = run_gexsrv(["import", str(path), "--ticker", "ſpx", "--data-dir", str(tmp_path / "data"),
                       "--no-progress"], cwd=REPO)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--ticker: ticker 'ſpx' must be" in done.stderr
    assert not (tmp_path / "data" / "gex_data.db").exists()
