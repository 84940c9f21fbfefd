"""What the original server's clients send (CONTRACT section 6), replayed through a real gexsrv, and asserted row by
row in DuckDB: every value in its column, under the right ticker, endpoint and kind, nothing dropped."""

import json
from concurrent.futures import ThreadPoolExecutor

from helpers import NEW_YORK, TS, poller_maxchange, poller_snapshot, snapshot

def test_uw_gex_envelopes_keep_their_outer_ticker_endpoint_and_kind(start_server):
    server = start_server(None, *NEW_YORK)
    bare = snapshot(n_strikes=3)
    del bare["ticker"]
    replies = [server.post("/uw", {"topic": "gex", "ticker": "spx", "endpoint": endpoint, "kind": "snapshot",
                                   "received_at": "2026-04-29T16:00:01", "payload": bare})
               for endpoint in ("gex_zero", "gex_one", "gex_full")]
    assert [(r.status, r.json()["status"], r.json()["endpoint"], r.json()["duplicate"]) for r in replies] == [
        (200, "received", "gex_zero", False), (200, "received", "gex_one", False), (200, "received", "gex_full", False)]
    server.stop()
    with server.db() as db:
        rows = db.execute("SELECT ticker, endpoint, timestamp, received_at, spot_price, sum_gex_vol FROM gex_snapshots "
                          "ORDER BY endpoint").fetchall()
        strikes = db.execute("SELECT endpoint, count(*) FROM gex_strikes GROUP BY 1 ORDER BY 1").fetchall()
        raw = db.execute("SELECT id::VARCHAR, topic, payload->>'ticker' FROM universal_webhooks ORDER BY id").fetchall()
    assert rows == [("SPX", endpoint, TS * 1000, (TS + 1) * 1000, bare["spot"], bare["sum_gex_vol"])
                    for endpoint in ("gex_full", "gex_one", "gex_zero")]
    assert strikes == [("gex_full", 3), ("gex_one", 3), ("gex_zero", 3)]
    assert raw == sorted((r.json()["id"], "gex", None) for r in replies)


def test_the_original_pollers_snapshot_and_maxchange_land_whole(start_server):
    server = start_server(None, *NEW_YORK)
    replies = [server.post("/uw", poller_snapshot()), server.post("/uw", poller_maxchange())]
    assert [(r.status, r.json()["kind"], r.json()["endpoint"], r.json()["problems"]) for r in replies] == [
        (200, "snapshot", "gex_zero", []), (200, "maxchange", "gex_zero", [])]
    server.stop()
    with server.db() as db:
        snap = db.execute("""SELECT ticker, endpoint, timestamp, received_at, spot_price, zero_gamma, net_gex,
            sum_gex_vol, sum_gex_oi, major_pos_vol, major_pos_oi, major_neg_vol, major_neg_oi FROM gex_snapshots""").fetchall()
        maxchange = db.execute("""SELECT ticker, endpoint, timestamp, current_strike, current_value, one_value,
            five_value, ten_value, fifteen_value, thirty_strike, thirty_value FROM gex_maxchange""").fetchall()
        assert db.execute("SELECT count(*) FROM gex_majors").fetchone() == (0,)
    assert snap == [("SPX", "gex_zero", TS * 1000, TS * 1000 + 1500, 7138.55, 7112.95, 1712585.519, 1712585.519,
                     51521.105, 7135, 7200, 7100, 6900)]
    assert maxchange == [("SPX", "gex_zero", TS * 1000, 7140, 170979.742, 1145886.722, 997473.336, 1106210.715,
                          1128504.809, 7135, 1131150.488)]


def test_a_bare_snapshot_with_net_gex_fields_keeps_its_strikes_and_every_alias(server):
    body = snapshot(n_strikes=4)
    for name in ("sum_gex_vol", "sum_gex_oi"):
        del body[name]
    body.update(net_gex_vol=123.5, net_gex_oi=-45.25)
    reply = server.post("/gex", body)
    assert (reply.status, reply.json()["kind"], reply.json()["problems"]) == (202, "snapshot", [])
    server.stop()
    with server.db() as db:
        snap = db.execute("SELECT net_gex, sum_gex_vol, sum_gex_oi FROM gex_snapshots").fetchall()
        strikes = db.execute("SELECT strike, gamma, oi_gamma, priors FROM gex_strikes ORDER BY strike").fetchall()
    assert snap == [(123.5, 123.5, -45.25)]
    assert strikes == [tuple(row) for row in body["strikes"]]


def test_inputs_the_original_handled_are_accepted_and_stored(start_server):
    server = start_server(None, *NEW_YORK)
    sent = [
        ("/gex", {**snapshot(ticker="$SPX", timestamp="1777493040", n_strikes=2)}),
        ("/gex", {**snapshot(ticker="NDX", n_strikes=2), "timestamp": "2026-04-29T20:00:00Z"}),
        ("/gex", {"ticker": "SPY", "endpoint": "classic/zero", "data": snapshot(ticker="SPY", n_strikes=2)}),
        ("/gex", {"ticker": "SPY", "endpoint": "classic/one", "data": snapshot(ticker="SPY", n_strikes=2)}),
        ("/gex", {"ticker": "QQQ", "endpoint": "state/full", "data": snapshot(
            ticker="QQQ", strikes=[[600, 1.5, 0.5, [1, None, 3, None, 5]], [605], [610, 2.5]],
            max_priors=[[600, None], [605, 7.5]])}),
    ]
    replies = [server.post(path, body) for path, body in sent]
    assert [r.status for r in replies] == [202] * 5
    assert replies[4].json()["problems"] == [
        {"field": "$.data.strikes[1]", "error": "strike row skipped: Expected `array` of at least length 2, got 1"}]
    server.stop()
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp, max_priors FROM gex_snapshots "
                           "ORDER BY ticker, endpoint").fetchall()
        qqq = db.execute("SELECT strike, gamma, oi_gamma, priors FROM gex_strikes WHERE ticker = 'QQQ' "
                         "ORDER BY strike").fetchall()
    priors = json.dumps(snapshot(n_strikes=2)["max_priors"], separators=(",", ":"))
    assert [s[:3] for s in snaps] == [
        ("$SPX", "gex_zero", 1777493040000), ("NDX", "gex_zero", TS * 1000), ("QQQ", "state_gex_full", TS * 1000),
        ("SPY", "gex_one", TS * 1000), ("SPY", "gex_zero", TS * 1000)]
    assert snaps[2][3] == "[[600.0,null],[605.0,7.5]]" and snaps[0][3] == priors
    assert qqq == [(600, 1.5, 0.5, [1, None, 3, None, 5]), (610, 2.5, None, None)]


def test_trailing_slashes_name_the_same_routes_for_post_and_options(server):
    assert server.post("/gex/", snapshot()).status == 202
    for path in ("/gex/", "/uw/", "/gex_history_url/", "/gex", "/uw", "/gex_history_url"):
        reply = server.request("OPTIONS", path, headers={"Origin": "https://unusualwhales.com"})
        assert (reply.status, reply.headers["Access-Control-Allow-Origin"]) == (204, "https://unusualwhales.com"), path
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
    assert server.request("OPTIONS", "/nowhere/").status == 204  # a preflight is answered on every path
    assert server.post("/uw/", poller_snapshot("NDX")).status == 200
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT ticker FROM gex_snapshots ORDER BY ticker").fetchall() == [("NDX",), ("SPX",)]


def test_one_payload_that_cannot_be_stored_is_refused_alone(server):
    """A min_dte of 2^31 once failed the whole group commit: the requests sharing its batch got 503."""
    bodies = [snapshot(timestamp=TS + i, n_strikes=2) for i in range(60)]
    bodies[17]["min_dte"] = 2**31
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda body: server.post("/gex", body), bodies))
    assert [r.status for r in replies] == [202] * 17 + [400] + [202] * 42
    assert replies[17].json()["field"] == "$.min_dte"
    server.stop()
    with server.db() as db:
        stored = [ts for (ts,) in db.execute("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1").fetchall()]
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone() == (118,)
    assert stored == [TS + i for i in range(60) if i != 17]
