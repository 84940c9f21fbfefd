"""What the original server's clients send (CONTRACT section 6), replayed through a real gexsrv, and asserted row by
row in DuckDB: every value in its column, under the right ticker, endpoint and kind, nothing dropped.

The cases share one server, which reads naive local times as New York's as the original did (those that send none
pass under any zone); each sends tickers of its own and reads every row of them."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import (NEW_YORK, TS, Server, all_ingested, poller_maxchange, poller_snapshot, snapshot, sql_list,
                     stored_rows)


@pytest.fixture(scope="module")
def new_york_server(tmp_path_factory):
    """One running gexsrv for the module's cases, with the original's zone for naive local times (NEW_YORK)."""
    srv = Server(tmp_path_factory.mktemp("parity") / "data", *NEW_YORK).start()
    yield srv
    srv.stop()


def test_uw_gex_envelopes_keep_their_outer_ticker_endpoint_and_kind(new_york_server):
    bare = snapshot(n_strikes=3)
    del bare["ticker"]
    replies = [new_york_server.post("/uw", {"topic": "gex", "ticker": "rut", "endpoint": endpoint,
                                            "kind": "snapshot", "received_at": "2026-04-29T16:00:01", "payload": bare})
               for endpoint in ("gex_zero", "gex_one", "gex_full")]
    assert [(r.status, r.json()["status"], r.json()["endpoint"], r.json()["duplicate"]) for r in replies] == [
        (200, "received", "gex_zero", False), (200, "received", "gex_one", False), (200, "received", "gex_full", False)]
    all_ingested(new_york_server)
    rows = stored_rows(new_york_server, "SELECT ticker, endpoint, timestamp, received_at, spot_price, sum_gex_vol "
                       "FROM gex_snapshots WHERE ticker = 'RUT' ORDER BY endpoint")
    strikes = stored_rows(new_york_server, "SELECT endpoint, count(*) FROM gex_strikes WHERE ticker = 'RUT' "
                          "GROUP BY 1 ORDER BY 1")
    raw = stored_rows(new_york_server, "SELECT id::VARCHAR, topic, payload->>'ticker' FROM universal_webhooks "
                      f"WHERE id IN ({sql_list(r.json()['id'] for r in replies)}) ORDER BY id")
    assert rows == [("RUT", endpoint, TS * 1000, (TS + 1) * 1000, bare["spot"], bare["sum_gex_vol"])
                    for endpoint in ("gex_full", "gex_one", "gex_zero")]
    assert strikes == [("gex_full", 3), ("gex_one", 3), ("gex_zero", 3)]
    assert raw == sorted((r.json()["id"], "gex", None) for r in replies)


def test_the_original_pollers_snapshot_and_maxchange_land_whole(new_york_server):
    replies = [new_york_server.post("/uw", body) for body in (poller_snapshot("XSP"), poller_maxchange("XSP"))]
    assert [(r.status, r.json()["kind"], r.json()["endpoint"], r.json()["problems"]) for r in replies] == [
        (200, "snapshot", "gex_zero", []), (200, "maxchange", "gex_zero", [])]
    all_ingested(new_york_server)
    snap = stored_rows(new_york_server, """SELECT ticker, endpoint, timestamp, received_at, spot_price, zero_gamma,
        net_gex, sum_gex_vol, sum_gex_oi, major_pos_vol, major_pos_oi, major_neg_vol, major_neg_oi FROM gex_snapshots
        WHERE ticker = 'XSP'""")
    maxchange = stored_rows(new_york_server, """SELECT ticker, endpoint, timestamp, current_strike, current_value,
        one_value, five_value, ten_value, fifteen_value, thirty_strike, thirty_value FROM gex_maxchange
        WHERE ticker = 'XSP'""")
    assert stored_rows(new_york_server, "SELECT count(*) FROM gex_majors WHERE ticker = 'XSP'") == [(0,)]
    assert snap == [("XSP", "gex_zero", TS * 1000, TS * 1000 + 1500, 7138.55, 7112.95, 1712585.519, 1712585.519,
                     51521.105, 7135, 7200, 7100, 6900)]
    assert maxchange == [("XSP", "gex_zero", TS * 1000, 7140, 170979.742, 1145886.722, 997473.336, 1106210.715,
                          1128504.809, 7135, 1131150.488)]


def test_a_bare_snapshot_with_net_gex_fields_keeps_its_strikes_and_every_alias(new_york_server):
    body = snapshot(ticker="VIX", n_strikes=4)
    for name in ("sum_gex_vol", "sum_gex_oi"):
        del body[name]
    body.update(net_gex_vol=123.5, net_gex_oi=-45.25)
    reply = new_york_server.post("/gex", body)
    assert (reply.status, reply.json()["kind"], reply.json()["problems"]) == (202, "snapshot", [])
    all_ingested(new_york_server)
    snap = stored_rows(new_york_server, "SELECT net_gex, sum_gex_vol, sum_gex_oi FROM gex_snapshots "
                       "WHERE ticker = 'VIX'")
    strikes = stored_rows(new_york_server, "SELECT strike, gamma, oi_gamma, priors FROM gex_strikes "
                          "WHERE ticker = 'VIX' ORDER BY strike")
    assert snap == [(123.5, 123.5, -45.25)]
    assert strikes == [tuple(row) for row in body["strikes"]]


def test_inputs_the_original_handled_are_accepted_and_stored(new_york_server):
    sent = [
        ("/gex", {**snapshot(ticker="$SPX", timestamp="1777493040", n_strikes=2)}),
        ("/gex", {**snapshot(ticker="NDX", n_strikes=2), "timestamp": "2026-04-29T20:00:00Z"}),
        ("/gex", {"ticker": "SPY", "endpoint": "classic/zero", "data": snapshot(ticker="SPY", n_strikes=2)}),
        ("/gex", {"ticker": "SPY", "endpoint": "classic/one", "data": snapshot(ticker="SPY", n_strikes=2)}),
        ("/gex", {"ticker": "QQQ", "endpoint": "state/full", "data": snapshot(
            ticker="QQQ", strikes=[[600, 1.5, 0.5, [1, None, 3, None, 5]], [605], [610, 2.5]],
            max_priors=[[600, None], [605, 7.5]])}),
    ]
    replies = [new_york_server.post(path, body) for path, body in sent]
    assert [r.status for r in replies] == [202] * 5
    assert replies[4].json()["problems"] == [
        {"field": "$.data.strikes[1]", "error": "strike row skipped: Expected `array` of at least length 2, got 1"}]
    all_ingested(new_york_server)
    snaps = stored_rows(new_york_server, "SELECT ticker, endpoint, timestamp, max_priors FROM gex_snapshots "
                        "WHERE ticker IN ('$SPX', 'NDX', 'QQQ', 'SPY') ORDER BY ticker, endpoint")
    qqq = stored_rows(new_york_server, "SELECT strike, gamma, oi_gamma, priors FROM gex_strikes WHERE ticker = 'QQQ' "
                      "ORDER BY strike")
    priors = json.dumps(snapshot(n_strikes=2)["max_priors"], separators=(",", ":"))
    assert [s[:3] for s in snaps] == [
        ("$SPX", "gex_zero", 1777493040000), ("NDX", "gex_zero", TS * 1000), ("QQQ", "state_gex_full", TS * 1000),
        ("SPY", "gex_one", TS * 1000), ("SPY", "gex_zero", TS * 1000)]
    assert snaps[2][3] == "[[600.0,null],[605.0,7.5]]" and snaps[0][3] == priors
    assert qqq == [(600, 1.5, 0.5, [1, None, 3, None, 5]), (610, 2.5, None, None)]


def test_trailing_slashes_name_the_same_routes_for_post_and_options(new_york_server):
    assert new_york_server.post("/gex/", snapshot(ticker="AAPL")).status == 202
    for path in ("/gex/", "/uw/", "/gex_history_url/", "/gex", "/uw", "/gex_history_url"):
        reply = new_york_server.request("OPTIONS", path, headers={"Origin": "https://unusualwhales.com"})
        assert (reply.status, reply.headers["Access-Control-Allow-Origin"]) == (204, "https://unusualwhales.com"), path
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert new_york_server.request("OPTIONS", "/nowhere/").status == 204  # a preflight is answered on every path
    assert new_york_server.post("/uw/", poller_snapshot("MSFT")).status == 200
    all_ingested(new_york_server)
    assert stored_rows(new_york_server, "SELECT ticker FROM gex_snapshots WHERE ticker IN ('AAPL', 'MSFT') "
                       "ORDER BY ticker") == [("AAPL",), ("MSFT",)]


def test_one_payload_that_cannot_be_stored_is_refused_alone(new_york_server):
    """A min_dte of 2^31 once failed the whole group commit: the requests sharing its batch got 503."""
    bodies = [snapshot(timestamp=TS + i, n_strikes=2) for i in range(60)]
    bodies[17]["min_dte"] = 2**31
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda body: new_york_server.post("/gex", body), bodies))
    assert [r.status for r in replies] == [202] * 17 + [400] + [202] * 42
    assert replies[17].json()["field"] == "$.min_dte"
    all_ingested(new_york_server)
    stored = [ts for (ts,) in stored_rows(new_york_server, "SELECT timestamp // 1000 FROM gex_snapshots "
                                          "WHERE ticker = 'SPX' ORDER BY 1")]
    assert stored_rows(new_york_server, "SELECT count(*) FROM gex_strikes WHERE ticker = 'SPX'") == [(118,)]
    assert stored == [TS + i for i in range(60) if i != 17]
