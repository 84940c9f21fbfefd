"""Issue 9's points that tests/test_parity.py proves only with settings or reply fields the server before the fix
lacked (--naive-time-zone, `problems`): each replayed here through default settings, asserted row by row in
DuckDB, so that it fails on that server for the point's own reason."""

from helpers import TS, phoenix, poller_snapshot, snapshot

# "local", the default naive_time_zone, reads the original poller's naive times in the server's zone
NEW_YORK = {"TZ": "America/New_York"}


def test_uw_gex_envelopes_are_filed_by_their_outer_ticker_endpoint_and_kind(server):
    frames = [{"topic": "gex", "ticker": "SPX", "endpoint": endpoint, "payload": snapshot(n_strikes=2)}
              for endpoint in ("gex_zero", "gex_one", "gex_full")]
    no_ticker = snapshot(n_strikes=2)
    del no_ticker["ticker"]
    frames.append({"topic": "gex", "ticker": "ndx", "endpoint": "gex_zero", "payload": no_ticker})
    frames.append({"topic": "gex", "ticker": "QQQ", "endpoint": "gex_one", "kind": "majors",
                   "payload": {"ticker": "QQQ", "timestamp": TS, "spot": 600.5, "mpos_oi": 610.0, "mneg_oi": 590.0}})
    replies = [server.post("/uw", frame) for frame in frames]
    server.stop()
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp FROM gex_snapshots ORDER BY ALL").fetchall()
        strikes = db.execute("SELECT ticker, endpoint, count(*) FROM gex_strikes GROUP BY ALL ORDER BY ALL").fetchall()
        majors = db.execute("SELECT ticker, endpoint, timestamp, spot, mpos_oi, mneg_oi FROM gex_majors").fetchall()
        raw = db.execute("SELECT id::VARCHAR, topic FROM universal_webhooks ORDER BY ALL").fetchall()
    assert snaps == [("NDX", "gex_zero", TS * 1000), ("SPX", "gex_full", TS * 1000), ("SPX", "gex_one", TS * 1000),
                     ("SPX", "gex_zero", TS * 1000)]
    assert strikes == [("NDX", "gex_zero", 2), ("SPX", "gex_full", 2), ("SPX", "gex_one", 2), ("SPX", "gex_zero", 2)]
    assert majors == [("QQQ", "gex_one", TS * 1000, 600.5, 610.0, 590.0)]
    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(200, False)] * 5
    assert raw == sorted((r.json()["id"], "gex") for r in replies)


def test_the_original_pollers_snapshot_is_stored_as_a_snapshot_with_its_values(start_server):
    server = start_server(None, env=NEW_YORK)
    reply = server.post("/uw", poller_snapshot())
    server.stop()
    with server.db() as db:
        snaps = db.execute("""SELECT ticker, endpoint, timestamp, received_at, spot_price, net_gex, sum_gex_oi,
            major_pos_vol, major_neg_oi FROM gex_snapshots""").fetchall()
        majors = db.execute("SELECT ticker, mpos_vol, net_gex_vol FROM gex_majors").fetchall()
    assert (snaps, majors) == ([("SPX", "gex_zero", TS * 1000, TS * 1000 + 1500, 7138.55, 1712585.519, 51521.105,
                                 7135, 6900)], [])
    assert (reply.status, reply.json()["kind"]) == (200, "snapshot")


def test_a_bare_snapshot_that_also_carries_net_gex_vol_is_a_snapshot_with_its_strikes(server):
    body = snapshot(n_strikes=3)
    body["net_gex_vol"] = body["sum_gex_vol"]
    reply = server.post("/gex", body)
    server.stop()
    with server.db() as db:
        snaps = db.execute("SELECT ticker, timestamp, spot_price, sum_gex_vol FROM gex_snapshots").fetchall()
        strikes = db.execute("SELECT strike, gamma, oi_gamma, priors FROM gex_strikes ORDER BY strike").fetchall()
        majors = db.execute("SELECT count(*) FROM gex_majors").fetchone()
    assert snaps == [("SPX", TS * 1000, body["spot"], body["sum_gex_vol"])]
    assert strikes == [tuple(row) for row in body["strikes"]]
    assert majors == (0,)
    assert (reply.status, reply.json()["kind"]) == (202, "snapshot")


def test_net_gex_vol_and_net_gex_oi_of_a_snapshot_land_in_their_columns(server):
    data = snapshot(n_strikes=2, net_gex_vol=123.5, net_gex_oi=-45.25)
    for name in ("sum_gex_vol", "sum_gex_oi"):
        del data[name]
    assert server.post("/gex", {"ticker": "SPX", "kind": "snapshot", "data": data}).status == 202
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT net_gex, sum_gex_vol, sum_gex_oi FROM gex_snapshots").fetchall() == [
            (123.5, 123.5, -45.25)]


def test_each_input_the_original_read_is_accepted_and_stored(server):
    sent = {
        "numeric text timestamp": snapshot(ticker="SPX", timestamp="1777493040", n_strikes=1),
        "ISO with Z, no seconds": snapshot(ticker="NDX", timestamp="2026-04-29T20:00Z", n_strikes=1),
        "classic/zero": {"ticker": "SPY", "endpoint": "classic/zero", "data": snapshot(ticker="SPY", n_strikes=1)},
        "classic/one": {"ticker": "SPY", "endpoint": "classic/one", "data": snapshot(ticker="SPY", n_strikes=1)},
        "null in priors": snapshot(ticker="QQQ", strikes=[[600, 1.5, 0.5, [1, None, 3, None, 5]]],
                                   max_priors=[[600, None]]),
        "one-item strike row": snapshot(ticker="IWM", strikes=[[200, 1.0], [205]]),
        "$SPX": snapshot(ticker="$SPX", n_strikes=1),
    }
    statuses = {name: server.post("/gex", body).status for name, body in sent.items()}
    server.stop()
    assert statuses == dict.fromkeys(sent, 202)
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp, max_priors FROM gex_snapshots ORDER BY ALL").fetchall()
        strikes = db.execute("SELECT ticker, endpoint, strike, priors FROM gex_strikes ORDER BY ALL").fetchall()
    assert [s[:3] for s in snaps] == [
        ("$SPX", "gex_zero", TS * 1000), ("IWM", "gex_zero", TS * 1000), ("NDX", "gex_zero", TS * 1000),
        ("QQQ", "gex_zero", TS * 1000), ("SPX", "gex_zero", 1777493040000), ("SPY", "gex_one", TS * 1000),
        ("SPY", "gex_zero", TS * 1000)]
    assert snaps[3][3] == "[[600.0,null]]"
    strike, _, _, priors = snapshot(n_strikes=1)["strikes"][0]  # the strike row of each one-strike snapshot
    assert strikes == [
        ("$SPX", "gex_zero", strike, priors), ("IWM", "gex_zero", 200, None), ("NDX", "gex_zero", strike, priors),
        ("QQQ", "gex_zero", 600, [1, None, 3, None, 5]), ("SPX", "gex_zero", strike, priors),
        ("SPY", "gex_one", strike, priors), ("SPY", "gex_zero", strike, priors)]


def test_super_algo_orders_flat_or_executed_are_stored_with_upper_case_sides_and_live_or_dry_run(server):
    flat = phoenix("option_trades_super_algo", {"symbol": "SPY", "action": "buy", "quantity": 2, "price": 1.5})
    executed = {"topic": "option_trades_super_algo", "payload": {
        "alert": {"symbol": "QQQ", "action": "sell", "quantity": 1, "price": 2.5},
        "executions": [{"dry_run": False, "broker": "tasty", "quantity": 1, "price": 2.4, "status": "filled"},
                       {"dry_run": False, "broker": "schwab", "quantity": 1, "price": 2.45},
                       {"dry_run": True, "broker": "ibkr", "quantity": 1, "price": 2.5}]}}
    replies = [server.post("/uw", body) for body in (flat, executed)]
    server.stop()
    with server.db() as db:
        rows = db.execute("""SELECT symbol, side, quantity, price, execution_status, broker, dry_run
            FROM option_trades_events ORDER BY symbol, broker""").fetchall()
    assert rows == [("QQQ", "SELL", 1.0, 2.5, "dry_run", "ibkr", True),
                    ("QQQ", "SELL", 1.0, 2.5, "live", "schwab", False),
                    ("QQQ", "SELL", 1.0, 2.5, "live", "tasty", False),
                    ("SPY", "BUY", 2.0, 1.5, "unknown", None, None)]
    assert [(r.status, r.json()["rows"], r.json()["problems"]) for r in replies] == [(200, 1, []), (200, 3, [])]
