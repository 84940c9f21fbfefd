"""POST /gex against a real server: every accepted shape lands in DuckDB, every bad input is refused."""

import json

import pytest

from helpers import TS, all_ingested, database_held, snapshot, stored_rows


def test_snapshot_lands_with_its_values_strikes_and_priors(shared_server):
    body = snapshot(ticker="LAND", n_strikes=4)
    reply = shared_server.post("/gex", body)
    assert reply.status == 202
    assert reply.json() == {"status": "ok", "ticker": "LAND", "endpoint": "gex_zero", "kind": "snapshot",
                            "timestamp": TS * 1000, "duplicate": False, "problems": []}
    all_ingested(shared_server)
    row = stored_rows(shared_server, """SELECT timestamp, ticker, endpoint, spot_price, zero_gamma, net_gex,
        sum_gex_vol, sum_gex_oi, min_dte, sec_min_dte, major_pos_vol, major_neg_oi, delta_risk_reversal, max_priors,
        source FROM gex_snapshots WHERE ticker = 'LAND'""")
    strikes = stored_rows(shared_server, "SELECT timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors "
                                         "FROM gex_strikes WHERE ticker = 'LAND' ORDER BY strike")
    assert row == [(TS * 1000, "LAND", "gex_zero", body["spot"], body["zero_gamma"], body["sum_gex_vol"],
                    body["sum_gex_vol"], body["sum_gex_oi"], 0, 1, body["major_pos_vol"], body["major_neg_oi"],
                    0.118, json.dumps(body["max_priors"], separators=(",", ":")), "live")]
    assert strikes == [(TS * 1000, "LAND", "gex_zero", s[0], s[1], s[2], s[3]) for s in body["strikes"]]


# The envelope case's own tickers: the shared server holds the other cases' rows too.
ENVELOPE_TICKERS = "('ENV_NDX', 'ENV_SPX', 'ENV_QQQ', 'ENV_SPY')"


def test_envelopes_majors_maxchange_and_aliases_land_in_their_tables(shared_server):
    server = shared_server
    replies = [
        server.post("/gex", {"ticker": "env_ndx", "endpoint": "one", "kind": "snapshot",
                             "received_at": "2026-04-29T20:00:01Z",
                             "data": {**snapshot(ticker=None, timestamp=TS, n_strikes=2), "ticker": None}}),
        server.post("/gex", {"ticker": "ENV_SPX", "endpoint": "full", "payload": {
            "timestamp": TS, "spot": 7138.5, "zero_gamma": 7112.9, "mpos_vol": 7135, "mpos_oi": 7200,
            "mneg_vol": 7100, "mneg_oi": 6900, "net_gex_vol": 1712585.5, "net_gex_oi": 51521.1}}),
        server.post("/gex", {"ticker": "ENV_SPX", "endpoint": "gex_maxchange", "data": {
            "timestamp": TS, "current": [7140, 170979.7], "one": [7135, 1145886.7], "five": [7135, 997473.3],
            "ten": [7135, 1106210.7], "fifteen": [7135, 1128504.8], "thirty": [7135, 1131150.4]}}),
        server.post("/gex", {"timestamp": TS + 1, "ticker": "env_qqq", "current": [600, 1.5]}),
        server.post("/gex", {"timestamp": "2026-04-29T20:00:02Z", "ticker": "env_spy", "net_gex": 42.5,
                             "strikes": [[600, 1.0]]}),
        server.post("/gex", {"timestamp": (TS + 3) * 1000, "ticker": "ENV_SPY", "endpoint": "gex_full", "spot": 601}),
    ]
    assert [r.status for r in replies] == [202] * 6
    assert [(r.json()["kind"], r.json()["ticker"], r.json()["endpoint"]) for r in replies] == [
        ("snapshot", "ENV_NDX", "gex_one"), ("majors", "ENV_SPX", "gex_full"), ("maxchange", "ENV_SPX", "gex_zero"),
        ("maxchange", "ENV_QQQ", "gex_zero"), ("snapshot", "ENV_SPY", "gex_zero"),
        ("snapshot", "ENV_SPY", "gex_full")]
    all_ingested(server)
    snaps = stored_rows(server, "SELECT ticker, endpoint, timestamp, net_gex, sum_gex_vol FROM gex_snapshots "
                                f"WHERE ticker IN {ENVELOPE_TICKERS} ORDER BY timestamp, ticker")
    majors = stored_rows(server, "SELECT ticker, endpoint, timestamp, mpos_vol, mneg_oi, net_gex_oi FROM gex_majors "
                                 f"WHERE ticker IN {ENVELOPE_TICKERS}")
    maxchange = stored_rows(server, "SELECT ticker, timestamp, current_strike, current_value, thirty_value "
                                    f"FROM gex_maxchange WHERE ticker IN {ENVELOPE_TICKERS} ORDER BY timestamp")
    spy_strikes = stored_rows(server, "SELECT strike, gamma, oi_gamma, priors FROM gex_strikes "
                                      "WHERE ticker = 'ENV_SPY'")
    ndx = snapshot(n_strikes=2)
    assert snaps == [("ENV_NDX", "gex_one", TS * 1000, ndx["sum_gex_vol"], ndx["sum_gex_vol"]),
                     ("ENV_SPY", "gex_zero", (TS + 2) * 1000, 42.5, 42.5),
                     ("ENV_SPY", "gex_full", (TS + 3) * 1000, None, None)]
    assert majors == [("ENV_SPX", "gex_full", TS * 1000, 7135.0, 6900.0, 51521.1)]
    assert maxchange == [("ENV_SPX", TS * 1000, 7140.0, 170979.7, 1131150.4),
                         ("ENV_QQQ", (TS + 1) * 1000, 600.0, 1.5, None)]
    assert spy_strikes == [(600.0, 1.0, None, None)]


BAD = [
    (b"{not json", "$", "invalid JSON"),
    (b'{"timestamp": 1777492800, "ticker": "SP\xff"}', "$", "not UTF-8"),
    (b"[1, 2]", "$", "Expected `object`, got `array`"),
    (json.dumps({"ticker": "SPX", "spot": 1}).encode(), "$.timestamp", "missing required field `timestamp`"),
    (json.dumps({"timestamp": TS, "spot": 1}).encode(), "$.ticker", "missing required field `ticker`"),
    (json.dumps({"timestamp": TS, "ticker": "SPX", "spot": "7100"}).encode(), "$.spot", "Expected `float | null`"),
    (b'{"timestamp": 1777492800, "ticker": "SPX", "spot": 1e999}', "$.spot", "finite"),
    (json.dumps({"ticker": "SPX", "data": {"timestamp": "yesterday"}}).encode(), "$.data.timestamp", "ISO-8601"),
    (json.dumps({"ticker": "SPX", "data": [1]}).encode(), "$.data", "Expected `object`"),
    (json.dumps({"timestamp": 17774928, "ticker": "SPX"}).encode(), "$.timestamp", "outside 2000-01-01"),
    (json.dumps({"timestamp": TS, "ticker": "S P X"}).encode(), "$.ticker", "Parquet lake"),
    (json.dumps({"ticker": "SPX", "kind": "candles", "data": {"timestamp": TS}}).encode(), "$.kind", "Invalid enum"),
    (json.dumps({"ticker": "A/B", "timestamp": TS}).encode(), "$.ticker", "Parquet lake"),
    (json.dumps({"ticker": "SPX", "timestamp": TS, "min_dte": 2**31}).encode(), "$.min_dte", "2147483647"),
    (b" \n", "$", "empty request body"),
]


@pytest.mark.parametrize("body, field, reason", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_gets_400_naming_the_field(shared_server, body, field, reason):
    reply = shared_server.post("/gex", body)
    assert reply.status == 400
    assert reply.json()["field"] == field
    assert reason in reply.json()["error"]


def test_bad_input_stores_nothing(server):
    server.post("/gex", snapshot(ticker="QQQ"))
    assert [server.post("/gex", body).status for body, _, _ in BAD] == [400] * len(BAD)
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT ticker FROM gex_snapshots").fetchall() == [("QQQ",)]
        assert db.execute("SELECT count(*) FROM gex_strikes WHERE ticker <> 'QQQ'").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM gex_majors").fetchone() == (0,)
        assert db.execute("SELECT count(*) FROM gex_maxchange").fetchone() == (0,)


def test_same_snapshot_twice_is_stored_once_and_said_to_be_a_duplicate(server):
    first = server.post("/gex", snapshot(n_strikes=3))
    again = server.post("/gex", {"ticker": "spx", "endpoint": "zero", "data": snapshot(n_strikes=3)})
    other_endpoint = server.post("/gex?ack=ingested", snapshot(n_strikes=3, endpoint="gex_one"))
    assert (first.json()["duplicate"], again.json()["duplicate"], other_endpoint.json()["duplicate"]) == (
        False, True, False)
    assert server.get("/health").json()["stored_since_start"] == {"snapshot": 2, "strike_rows": 6, "duplicates": 1}
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT endpoint, count(*) FROM gex_snapshots GROUP BY 1 ORDER BY 1").fetchall() == [
            ("gex_one", 1), ("gex_zero", 1)]
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone() == (6,)


def test_oversized_bodies_get_413_by_length_and_when_chunked(start_server):
    server = start_server(None, "--max-body-bytes", "2000")
    small = server.post("/gex", snapshot(n_strikes=2))
    big = json.dumps(snapshot(n_strikes=80)).encode()
    by_length = server.post("/gex", big)
    chunked = server.request("POST", "/gex", iter([big[:1000], big[1000:]]),
                             {"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    assert (small.status, by_length.status, chunked.status) == (202, 413, 413)
    assert "2000-byte limit" in by_length.json()["error"]
    assert "2000-byte limit" in chunked.json()["error"]
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT count(*) FROM gex_snapshots").fetchone() == (1,)


def test_options_gets_204_with_cors_and_unknown_paths_get_json_404(shared_server):
    options = shared_server.request("OPTIONS", "/gex", headers={"Origin": "https://www.gexbot.com"})
    assert options.status == 204
    assert options.headers["Access-Control-Allow-Origin"] == "https://www.gexbot.com"
    assert "POST" in options.headers["Access-Control-Allow-Methods"]
    missing = shared_server.get("/nowhere")
    assert missing.status == 404
    assert missing.json() == {"status": "error", "error": "no such path: /nowhere"}
    assert shared_server.request("PUT", "/gex", b"{}").status == 405


def test_health_reports_storage_journal_ingest_and_counts(server):
    before = server.get("/health").json()
    server.post("/gex?ack=ingested", snapshot(n_strikes=7))
    after = server.get("/health").json()
    assert before["status"] == "ok" and before["storage"]["state"] == "writable"
    assert before["storage"]["path"] == str(server.data_dir / "gex_data.db")
    assert before["storage"]["quarantined"] == 0 and before["history"] == {"pending_jobs": 0}
    assert before["journal"]["next_seq"] == 1 and before["ingest"]["records_waiting"] == 0
    assert after["journal"]["durable_seq"] == 1 and after["journal"]["fsyncs"] >= 1
    assert after["ingest"]["position"]["seq"] == 1 and after["ingest"]["records_waiting"] == 0
    assert after["ingest"]["recent"]["ingests"] == 1 and after["ingest"]["recent"]["records_mean"] == 1
    assert after["journal"]["bytes_waiting"] == 0 and after["stored_since_start"] == {"snapshot": 1, "strike_rows": 7}
    assert after["uptime_s"] >= before["uptime_s"] and after["version"]


@pytest.mark.slow
def test_while_another_process_holds_the_database_writes_are_journaled_and_land_after(start_server, tmp_path):
    data = tmp_path / "data"
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--ack-ingested-timeout-s", "0.5")
        health = server.get("/health").json()
        journaled = server.post("/gex", snapshot())
        waited = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 1))
    assert health["status"] == "degraded" and health["storage"]["state"] == "failing"
    assert "lock" in health["storage"]["error"]
    assert journaled.status == 202
    assert waited.status == 503 and waited.headers["Retry-After"] == "1"
    assert waited.json()["outcome"] == "journaled" and "database is failing" in waited.json()["error"]
    server.stop()
    server.start()  # the lock is gone: the journal is replayed into DuckDB before writes are answered
    assert server.get("/health").json()["ingest"]["position"]["seq"] == 2
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1").fetchall() == [(TS,), (TS + 1,)]
