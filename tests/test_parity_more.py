"""Issue 9's points that tests/test_parity.py proves only with settings or reply fields the server before the fix
lacked (--naive-time-zone, `problems`): each replayed here through default settings, asserted row by row in
DuckDB, so that it fails on that server for the point's own reason.

The cases share one server; each sends tickers of its own and reads every row of them, or of its webhook ids."""

import pytest

from helpers import TS, Server, all_ingested, phoenix, poller_snapshot, snapshot, sql_list, stored_rows

# "local", the default naive_time_zone, reads the original poller's naive times in the server's zone
NEW_YORK = {"TZ": "America/New_York"}


@pytest.fixture(scope="module")
def new_york_server(tmp_path_factory):
    """One running gexsrv for the module's cases, with default settings in New York's zone (NEW_YORK); the cases
    that send no naive time pass in any zone."""
    srv = Server(tmp_path_factory.mktemp("parity-more") / "data", env=NEW_YORK).start()
    yield srv
    srv.stop()


def test_uw_gex_envelopes_are_filed_by_their_outer_ticker_endpoint_and_kind(new_york_server):
    frames = [{"topic": "gex", "ticker": "RUT", "endpoint": endpoint, "payload": snapshot(ticker="RUT", n_strikes=2)}
              for endpoint in ("gex_zero", "gex_one", "gex_full")]
    no_ticker = snapshot(n_strikes=2)
    del no_ticker["ticker"]
    frames.append({"topic": "gex", "ticker": "xsp", "endpoint": "gex_zero", "payload": no_ticker})
    frames.append({"topic": "gex", "ticker": "DIA", "endpoint": "gex_one", "kind": "majors",
                   "payload": {"ticker": "DIA", "timestamp": TS, "spot": 600.5, "mpos_oi": 610.0, "mneg_oi": 590.0}})
    replies = [new_york_server.post("/uw", frame) for frame in frames]
    all_ingested(new_york_server)
    snaps = stored_rows(new_york_server, "SELECT ticker, endpoint, timestamp FROM gex_snapshots "
                        "WHERE ticker IN ('RUT', 'XSP', 'DIA') ORDER BY ALL")
    strikes = stored_rows(new_york_server, "SELECT ticker, endpoint, count(*) FROM gex_strikes "
                          "WHERE ticker IN ('RUT', 'XSP', 'DIA') GROUP BY ALL ORDER BY ALL")
    majors = stored_rows(new_york_server, "SELECT ticker, endpoint, timestamp, spot, mpos_oi, mneg_oi FROM gex_majors "
                         "WHERE ticker IN ('RUT', 'XSP', 'DIA')")
    raw = stored_rows(new_york_server, "SELECT id::VARCHAR, topic FROM universal_webhooks "
                      f"WHERE id IN ({sql_list(r.json()['id'] for r in replies)}) ORDER BY ALL")
    assert snaps == [("RUT", "gex_full", TS * 1000), ("RUT", "gex_one", TS * 1000), ("RUT", "gex_zero", TS * 1000),
                     ("XSP", "gex_zero", TS * 1000)]
    assert strikes == [("RUT", "gex_full", 2), ("RUT", "gex_one", 2), ("RUT", "gex_zero", 2), ("XSP", "gex_zero", 2)]
    assert majors == [("DIA", "gex_one", TS * 1000, 600.5, 610.0, 590.0)]
    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(200, False)] * 5
    assert raw == sorted((r.json()["id"], "gex") for r in replies)


def test_the_original_pollers_snapshot_is_stored_as_a_snapshot_with_its_values(new_york_server):
    reply = new_york_server.post("/uw", poller_snapshot("VIX"))
    all_ingested(new_york_server)
    snaps = stored_rows(new_york_server, """SELECT ticker, endpoint, timestamp, received_at, spot_price, net_gex,
        sum_gex_oi, major_pos_vol, major_neg_oi FROM gex_snapshots WHERE ticker = 'VIX'""")
    majors = stored_rows(new_york_server, "SELECT ticker, mpos_vol, net_gex_vol FROM gex_majors WHERE ticker = 'VIX'")
    assert (snaps, majors) == ([("VIX", "gex_zero", TS * 1000, TS * 1000 + 1500, 7138.55, 1712585.519, 51521.105,
                                 7135, 6900)], [])
    assert (reply.status, reply.json()["kind"]) == (200, "snapshot")


def test_a_bare_snapshot_that_also_carries_net_gex_vol_is_a_snapshot_with_its_strikes(new_york_server):
    body = snapshot(ticker="TSLA", n_strikes=3)
    body["net_gex_vol"] = body["sum_gex_vol"]
    reply = new_york_server.post("/gex", body)
    all_ingested(new_york_server)
    snaps = stored_rows(new_york_server, "SELECT ticker, timestamp, spot_price, sum_gex_vol FROM gex_snapshots "
                        "WHERE ticker = 'TSLA'")
    strikes = stored_rows(new_york_server, "SELECT strike, gamma, oi_gamma, priors FROM gex_strikes "
                          "WHERE ticker = 'TSLA' ORDER BY strike")
    (majors,) = stored_rows(new_york_server, "SELECT count(*) FROM gex_majors WHERE ticker = 'TSLA'")
    assert snaps == [("TSLA", TS * 1000, body["spot"], body["sum_gex_vol"])]
    assert strikes == [tuple(row) for row in body["strikes"]]
    assert majors == (0,)
    assert (reply.status, reply.json()["kind"]) == (202, "snapshot")


def test_net_gex_vol_and_net_gex_oi_of_a_snapshot_land_in_their_columns(new_york_server):
    data = snapshot(ticker="AAPL", n_strikes=2, net_gex_vol=123.5, net_gex_oi=-45.25)
    for name in ("sum_gex_vol", "sum_gex_oi"):
        del data[name]
    assert new_york_server.post("/gex", {"ticker": "AAPL", "kind": "snapshot", "data": data}).status == 202
    all_ingested(new_york_server)
    assert stored_rows(new_york_server, "SELECT net_gex, sum_gex_vol, sum_gex_oi FROM gex_snapshots "
                       "WHERE ticker = 'AAPL'") == [(123.5, 123.5, -45.25)]


def test_each_input_the_original_read_is_accepted_and_stored(new_york_server):
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
    statuses = {name: new_york_server.post("/gex", body).status for name, body in sent.items()}
    all_ingested(new_york_server)
    assert statuses == dict.fromkeys(sent, 202)
    tickers = sql_list(["SPX", "NDX", "SPY", "QQQ", "IWM", "$SPX"])
    snaps = stored_rows(new_york_server, "SELECT ticker, endpoint, timestamp, max_priors FROM gex_snapshots "
                        f"WHERE ticker IN ({tickers}) ORDER BY ALL")
    strikes = stored_rows(new_york_server, "SELECT ticker, endpoint, strike, priors FROM gex_strikes "
                          f"WHERE ticker IN ({tickers}) ORDER BY ALL")
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


def test_super_algo_orders_flat_or_executed_are_stored_with_upper_case_sides_and_live_or_dry_run(new_york_server):
    flat = phoenix("option_trades_super_algo", {"symbol": "SPY", "action": "buy", "quantity": 2, "price": 1.5})
    executed = {"topic": "option_trades_super_algo", "payload": {
        "alert": {"symbol": "QQQ", "action": "sell", "quantity": 1, "price": 2.5},
        "executions": [{"dry_run": False, "broker": "tasty", "quantity": 1, "price": 2.4, "status": "filled"},
                       {"dry_run": False, "broker": "schwab", "quantity": 1, "price": 2.45},
                       {"dry_run": True, "broker": "ibkr", "quantity": 1, "price": 2.5}]}}
    replies = [new_york_server.post("/uw", body) for body in (flat, executed)]
    all_ingested(new_york_server)
    rows = stored_rows(new_york_server, f"""SELECT symbol, side, quantity, price, execution_status, broker, dry_run
        FROM option_trades_events WHERE webhook_id IN ({sql_list(r.json()["id"] for r in replies)})
        ORDER BY symbol, broker""")
    assert rows == [("QQQ", "SELL", 1.0, 2.5, "dry_run", "ibkr", True),
                    ("QQQ", "SELL", 1.0, 2.5, "live", "schwab", False),
                    ("QQQ", "SELL", 1.0, 2.5, "live", "tasty", False),
                    ("SPY", "BUY", 2.0, 1.5, "unknown", None, None)]
    assert [(r.status, r.json()["rows"], r.json()["problems"]) for r in replies] == [(200, 1, []), (200, 3, [])]
