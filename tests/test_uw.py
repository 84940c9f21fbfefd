"""POST /uw against a real server: each frame shape lands raw in universal_webhooks and typed in its table.

The cases share one server: each sends frames of its own (its own trade ids, content, tickers) and reads the rows
of its own webhook ids, those of the frames it sent, stored or refused (a frame is keyed by its content hash)."""

import datetime as dt
import hashlib
import itertools
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexsrv import kinds
from gexsrv.decode import Rules
from gexsrv.store import Store
from gexsrv.uw.payloads import decode_uw
from helpers import TS, all_ingested, phoenix, snapshot, sql_list, stored_rows

UTC = dt.timezone.utc


def trade(**changes):
    """An option trade as the Unusual Whales browser socket sends it: decimals as strings."""
    body = {
        "id": "7c0f6a3e-3b9c-4f0e-9a53-1d2f3e4a5b6c", "option_chain_id": "ARM260116C00118000",
        "executed_at": "2025-10-21T14:30:01.123456Z", "price": "1.25", "size": 3, "premium": "375.00",
        "volume": 1200, "open_interest": 5000, "nbbo_bid": "1.20", "nbbo_ask": "1.30", "underlying_price": "117.52",
        "implied_volatility": "0.456789", "delta": "0.512", "gamma": "0.0213", "theta": "-0.105", "vega": "0.221",
        "rho": "0.012", "theo": "1.2431", "exchange": "CBOE", "tags": ["ask_side", "bullish"], "ask_vol": 900,
        "bid_vol": 250, "mid_vol": 40, "no_side_vol": 10, "multi_vol": 5, "stock_multi_vol": 1,
        "report_flags": ["late"], "is_agg": False, "sector": "Technology", "issue_type": "Common Stock",
    }
    body.update(changes)
    return body


def canonical_sha256(body):
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def frame_id(body):
    """The id a frame is stored under: the first 16 bytes of its canonical content hash."""
    return str(uuid.UUID(bytes=bytes.fromhex(canonical_sha256(body))[:16]))


def ids_if_stored(bodies):
    """The ids the bodies that are JSON would be stored under: a case asserts that none of its refused or ignored
    frames landed by filtering its rows by these too."""
    ids = []
    for body in bodies:
        try:
            ids.append(frame_id(json.loads(body) if isinstance(body, bytes) else body))
        except ValueError:  # not JSON, or not UTF-8: nothing that could be stored
            pass
    return ids


TRADE_COLUMNS = """trade_id, executed_at, option_symbol, underlying_symbol, root, expiration, option_type, strike,
    price, size, premium, volume, open_interest, nbbo_bid, nbbo_ask, underlying_price, implied_volatility, delta,
    gamma, theta, vega, rho, theo, exchange, tags, ask_vol, bid_vol, mid_vol, no_side_vol, multi_vol,
    stock_multi_vol, report_flags, is_agg, trade_ids, symbol, side, quantity"""


def test_trades_in_all_three_shapes_land_raw_and_typed_field_by_field(shared_server):
    official = trade(id="t-official", option_chain_id=None, option_symbol="SPY   260116P00600500",
                     underlying_symbol="SPY", executed_at=1761057001123, price=2, size="7", tags=["bid_side"],
                     open_interest="", implied_volatility=None)
    aggregate = trade(id="t-agg", option_chain_id="SPXW251021C06800000", nbbo_bid=None, nbbo_ask=None,
                      ewma_nbbo_bid="10.1", ewma_nbbo_ask="10.3", is_agg=True, trade_ids=["a1", "a2"])
    bodies = [
        phoenix("option_trades_super_algo", {"data": trade()}),
        ["option_trades:SPY", official],
        {"topic": "option_trades_super_algo:SPX", "eventType": "trade", "payload": {"data": [aggregate]}},
    ]
    replies = [shared_server.post("/uw?ack=ingested", body, {"User-Agent": "uw-test/1"}) for body in bodies]
    assert [r.status for r in replies] == [200] * 3
    ids = [frame_id(b) for b in bodies]
    assert [r.json() for r in replies] == [
        {"status": "received", "message": "Universal webhook processed", "id": ids[0], "topic": "option_trades_super_algo", "event": "new_msg",
         "duplicate": False, "table": "option_trades_events", "rows": 1, "normalized": True, "problems": []},
        {"status": "received", "message": "Universal webhook processed", "id": ids[1], "topic": "option_trades:SPY", "event": None,
         "duplicate": False, "table": "option_trades_events", "rows": 1, "normalized": True, "problems": []},
        {"status": "received", "message": "Universal webhook processed", "id": ids[2], "topic": "option_trades_super_algo:SPX", "event": "trade",
         "duplicate": False, "table": "option_trades_events", "rows": 1, "normalized": True, "problems": []},
    ]
    own = sql_list(r.json()["id"] for r in replies)
    raw = stored_rows(shared_server, f"""SELECT id::VARCHAR, shape, topic, event, payload, source_addr, user_agent,
        content_sha256, problems FROM universal_webhooks WHERE id IN ({own}) ORDER BY received_at, id""")
    rows = stored_rows(shared_server, f"SELECT {TRADE_COLUMNS}, webhook_id::VARCHAR, raw_payload "
                       "FROM universal_webhooks w JOIN option_trades_events t ON t.webhook_id = w.id "
                       f"WHERE w.id IN ({own}) ORDER BY w.received_at")
    (received,) = stored_rows(shared_server, "SELECT bool_and(t.received_at = w.received_at) "
                              "FROM option_trades_events t JOIN universal_webhooks w ON t.webhook_id = w.id "
                              f"WHERE w.id IN ({own})")
    payloads = [bodies[0][4], bodies[1][1], bodies[2]["payload"]]
    assert sorted(r[0] for r in raw) == sorted(ids)
    raw = sorted(raw, key=lambda r: ids.index(r[0]))
    assert [(r[1], r[2], r[3]) for r in raw] == [("phoenix", "option_trades_super_algo", "new_msg"),
                                                 ("channel", "option_trades:SPY", None),
                                                 ("envelope", "option_trades_super_algo:SPX", "trade")]
    assert [json.loads(r[4]) for r in raw] == payloads
    assert {(r[5], r[6]) for r in raw} == {("127.0.0.1", "uw-test/1")}
    assert [r[7] for r in raw] == [canonical_sha256(b) for b in bodies]
    assert [r[8] for r in raw] == [[], [], []]
    assert received == (True,)

    first, second, third = sorted(rows, key=lambda r: ["7c0f", "t-of", "t-ag"].index(r[0][:4]))
    assert first[:-2] == (
        "7c0f6a3e-3b9c-4f0e-9a53-1d2f3e4a5b6c", dt.datetime(2025, 10, 21, 14, 30, 1, 123456, tzinfo=UTC),
        "ARM260116C00118000", "ARM", "ARM", dt.date(2026, 1, 16), "call", 118.0, 1.25, 3, 375.0, 1200, 5000,
        1.2, 1.3, 117.52, 0.456789, 0.512, 0.0213, -0.105, 0.221, 0.012, 1.2431, "CBOE", ["ask_side", "bullish"],
        900, 250, 40, 10, 5, 1, ["late"], False, None, "ARM", "ask", 3.0)
    assert first[-2] == ids[0] and json.loads(first[-1]) == trade()
    assert second[:10] == ("t-official", dt.datetime(2025, 10, 21, 14, 30, 1, 123000, tzinfo=UTC),
                           "SPY   260116P00600500", "SPY", "SPY", dt.date(2026, 1, 16), "put", 600.5, 2.0, 7)
    assert (second[12], second[16], second[34], second[35]) == (None, None, "SPY", "bid")
    assert (third[2:8], third[13:15]) == (("SPXW251021C06800000", "SPX", "SPXW", dt.date(2025, 10, 21), "call",
                                           6800.0), (10.1, 10.3))
    assert (third[32], third[33]) == (True, ["a1", "a2"])


def test_trade_executions_are_stored_one_row_per_execution(shared_server):
    payload = {
        "alert": {"symbol": "SPY", "action": "BUY", "quantity": 2, "price": "1.50", "strike": 600,
                  "option_type": "C", "expiration": "2026-01-16", "order_type": "LMT"},
        "executions": [{"dry_run": True, "broker": "ibkr", "quantity": 2, "execution_price": "1.49"},
                       {"dry_run": False, "venue": "tasty", "quantity": "1", "price": 1.5, "status": "filled"}],
    }
    body = {"topic": "option_trades_super_algo", "event_type": "execution", "payload": payload}
    no_executions = {"topic": "option_trades_super_algo", "payload": {
        "alert": {"symbol": "QQQ260116P00590000", "action": "SELL", "quantity": 1, "order_type": "MKT"}}}
    replies = [shared_server.post("/uw", body), shared_server.post("/uw", no_executions)]
    assert [(r.status, r.json()["rows"], r.json()["normalized"]) for r in replies] == [(200, 2, True), (200, 1, True)]
    raw_ids = [uuid.UUID(r.json()["id"]) for r in replies]
    all_ingested(shared_server)
    rows = stored_rows(shared_server, f"""SELECT trade_id, webhook_id, symbol, side, quantity, price, strike,
        option_type, expiration, order_type, execution_status, broker, execution_qty, execution_price, dry_run,
        option_symbol, underlying_symbol, executed_at, raw_payload FROM option_trades_events
        WHERE webhook_id IN ({sql_list(raw_ids)}) ORDER BY symbol, execution_qty DESC""")
    spy = ("SPY", "BUY", 2.0, 1.5, 600.0, "call", dt.date(2026, 1, 16), "LMT")
    assert [r[:-1] for r in rows] == [
        (str(uuid.uuid5(raw_ids[1], "alert")), str(raw_ids[1]), "QQQ260116P00590000", "SELL", 1.0, None, 590.0,
         "put", dt.date(2026, 1, 16), "MKT", "unknown", None, None, None, None, "QQQ260116P00590000", "QQQ", None),
        (str(uuid.uuid5(raw_ids[0], "execution/0")), str(raw_ids[0]), *spy, "dry_run", "ibkr", 2.0, 1.49, True,
         None, "SPY", None),
        (str(uuid.uuid5(raw_ids[0], "execution/1")), str(raw_ids[0]), *spy, "live", "tasty", 1.0, 1.5, False,
         None, "SPY", None),
    ]
    assert json.loads(rows[1][-1]) == payload


def test_replays_are_stored_once_even_in_one_batch_and_shared_trades_once(shared_server):
    shared = trade(id="t-replayed")
    body = phoenix("option_trades_super_algo", {"data": shared})
    reordered = json.dumps(dict(reversed(list({"x": 1, "frame": body}.items())))).encode()  # same content
    same_trade_other_frame = ["option_trades:ARM", shared]
    first = shared_server.post("/uw?ack=ingested", body)
    with ThreadPoolExecutor(8) as pool:
        replays = list(pool.map(lambda _: shared_server.post("/uw", body), range(8)))
        others = list(pool.map(lambda _: shared_server.post("/uw", same_trade_other_frame), range(4)))
    again = shared_server.post("/uw", json.dumps(body, indent=2).encode())
    assert first.json()["duplicate"] is False
    assert [r.json()["duplicate"] for r in replays + [again]] == [True] * 9
    # the first of the others is a frame not seen before: new or older than the index, it cannot tell
    assert sorted(str(r.json()["duplicate"]) for r in others) == ["None", "True", "True", "True"]
    assert {r.json()["id"] for r in replays + [again, first]} == {first.json()["id"]}
    new_order = shared_server.post("/uw?ack=ingested", reordered)
    assert new_order.json()["duplicate"] is False
    same_order = shared_server.post("/uw", b'{"frame": ' + json.dumps(body).encode() + b', "x": 1}')
    assert same_order.json()["duplicate"] is True
    all_ingested(shared_server)
    own = sql_list({r.json()["id"] for r in [first, *replays, *others, again, new_order, same_order]})
    assert stored_rows(shared_server, f"SELECT topic, count(*) FROM universal_webhooks WHERE id IN ({own}) "
                       "GROUP BY ALL ORDER BY 1 NULLS FIRST") == [
        (None, 1), ("option_trades:ARM", 1), ("option_trades_super_algo", 1)]
    assert stored_rows(shared_server, "SELECT trade_id, webhook_id::VARCHAR FROM option_trades_events "
                       f"WHERE webhook_id IN ({own})") == [
        (shared["id"], first.json()["id"])]


CONTROL = [
    (["1", "1", "option_trades_super_algo", "phx_join", {}], "control frame: phx_join"),
    (["1", "2", "option_trades_super_algo", "phx_reply", {"status": "ok", "response": {}}], "control frame: phx_reply"),
    ([None, "3", "phoenix", "heartbeat", {}], "control frame: heartbeat"),
    ([None, "4", "phoenix", "noop", {}], "control frame: phoenix topic"),
    (["1", None, "market_agg_socket", "phx_close", {}], "control frame: phx_close"),
    (["option_trades:TSLA", {"response": {}, "status": "ok"}], "control frame: join reply"),
    ({"topic": "option_trades", "event_type": "heartbeat"}, "control frame: heartbeat"),
    ({"topic": "x", "eventType": "PHX_ERROR", "payload": {}}, "control frame: phx_error"),
]


def test_control_frames_are_ignored_and_other_topics_are_stored_raw_only(shared_server):
    replies = [shared_server.post("/uw", body) for body, _ in CONTROL]
    assert [(r.status, r.json()) for r in replies] == [
        (200, {"status": "ignored", "reason": reason}) for _, reason in CONTROL]
    unknown = shared_server.post("/uw", {"topic": "news", "event": "headline", "payload": {"title": "hi"}})
    bare = shared_server.post("/uw", {"anything": [1, 2.5, "x"]})
    assert (unknown.json()["table"], unknown.json()["rows"], unknown.json()["normalized"]) == (None, 0, True)
    assert bare.json()["topic"] is None
    all_ingested(shared_server)
    own = sql_list([unknown.json()["id"], bare.json()["id"], *ids_if_stored(body for body, _ in CONTROL)])
    assert stored_rows(shared_server, "SELECT shape, topic, event, payload FROM universal_webhooks "
                       f"WHERE id IN ({own}) ORDER BY topic") == [
        ("envelope", "news", "headline", '{"title": "hi"}'), ("envelope", None, None, '{"anything": [1, 2.5, "x"]}')]
    assert stored_rows(shared_server, f"SELECT count(*) FROM option_trades_events WHERE webhook_id IN ({own})") == [
        (0,)]


def test_market_agg_and_flow_alerts_land_in_their_tables(shared_server):
    agg = {"date": "2025-10-21", "call_premium": "1234567.5", "put_premium": "987654", "call_volume": 120000,
           "put_volume": "95000", "put_call_ratio": "0.79", "net_call_premium": "5"}
    alert = {"id": "fa-1", "rule_name": "RepeatedHits", "ticker": "DIA", "option_chain": "DIA241018C00415000",
             "executed_at": 1726670167412, "price": "1.10", "underlying_price": "414.2", "total_premium": "52000",
             "total_size": 470, "total_ask_side_prem": "50000", "total_bid_side_prem": "2000", "volume": 900,
             "open_interest": "310", "trade_count": 12, "has_sweep": True, "has_floor": False,
             "has_multileg": False, "all_opening_trades": True}
    replies = [shared_server.post("/uw", phoenix("market_agg_socket", {"data": agg})),
               shared_server.post("/uw", ["flow-alerts", alert])]
    assert [(r.status, r.json()["table"], r.json()["rows"]) for r in replies] == [
        (200, "uw_market_agg", 1), (200, "uw_flow_alerts", 1)]
    all_ingested(shared_server)
    own = sql_list(r.json()["id"] for r in replies)
    aggs = stored_rows(shared_server, f"""SELECT webhook_id::VARCHAR, date, call_premium, put_premium, call_volume,
        put_volume, put_call_ratio, data FROM uw_market_agg WHERE webhook_id IN ({own})""")
    alerts = stored_rows(shared_server, f"""SELECT webhook_id::VARCHAR, alert_id, rule_name, ticker, option_chain,
        expiration, option_type, strike, executed_at, price, underlying_price, total_premium, total_size,
        total_ask_side_prem, total_bid_side_prem, volume, open_interest, trade_count, has_sweep, has_floor,
        has_multileg, all_opening_trades, data FROM uw_flow_alerts WHERE webhook_id IN ({own})""")
    assert (len(aggs), len(alerts)) == (1, 1)
    assert aggs[0][:-1] == (replies[0].json()["id"], dt.date(2025, 10, 21), 1234567.5, 987654.0, 120000, 95000, 0.79)
    assert json.loads(aggs[0][-1]) == agg
    assert alerts[0][:-1] == (
        replies[1].json()["id"], "fa-1", "RepeatedHits", "DIA", "DIA241018C00415000", dt.date(2024, 10, 18), "call",
        415.0, dt.datetime(2024, 9, 18, 14, 36, 7, 412000, tzinfo=UTC), 1.1, 414.2, 52000.0, 470, 50000.0, 2000.0,
        900, 310, 12, True, False, False, True)
    assert json.loads(alerts[0][-1]) == alert


BAD = [
    (b"{not json", "$", "invalid JSON"),
    (b"42", "$", "Expected `object | array`"),
    (b"[1, 2, 3]", "$", "got an array of 3 items"),
    (json.dumps([None, None, 7, "new_msg", {}]).encode(), "$[2]", "Expected `str`"),
    (json.dumps([None, None, "option_trades", ["e"], {}]).encode(), "$[3]", "Expected `str`"),
    (json.dumps([{"channel": 1}, {}]).encode(), "$[0]", "Expected `str`"),
    (json.dumps({"topic": 5, "payload": {}}).encode(), "$.topic", "Expected `str | null`"),
    (b'[null, null, "t", "e", {"a": "\xff"}]', "$", "not UTF-8"),
    (b'{"topic": "gex", "payload": {"ticker": "SPX", "timestamp": "soon"}}', "$.payload.timestamp", "ISO-8601"),
    (json.dumps({"topic": "gex", "payload": {"ticker": "SPX", "data": {"timestamp": TS, "min_dte": 2**40}}}).encode(),
     "$.payload.data.min_dte", "<= 2147483647"),
    (json.dumps({"topic": "gex", "ticker": "A/B", "payload": {"timestamp": TS}}).encode(), "$.ticker", "Parquet lake"),
]


def test_malformed_frames_get_400_and_malformed_trades_are_stored_raw_with_their_problems(shared_server):
    for body, field, reason in BAD:
        reply = shared_server.post("/uw", body)
        assert (reply.status, reply.json()["field"]) == (400, field), body
        assert reason in reply.json()["error"], body
    bad_trades = phoenix("option_trades_super_algo", {"data": [
        trade(id="good"), trade(id="bad-1", price="1.2.3", size="many", executed_at="noon"),
        trade(id="bad-2", option_chain_id="ARM261316C00118000"), {"id": "bad-3", "price": {"value": 1}},
        trade(id=None)]})
    reply = shared_server.post("/uw", bad_trades)
    assert reply.status == 200
    assert (reply.json()["normalized"], reply.json()["rows"]) == (False, 1)
    problems = [
        {"field": "$[4].data[1].price", "error": "expected a decimal number, got '1.2.3'"},
        {"field": "$[4].data[1].size", "error": "expected a decimal number, got 'many'"},
        {"field": "$[4].data[1].executed_at", "error": "expected an ISO-8601 datetime or epoch number, got 'noon'"},
        {"field": "$[4].data[2].option_chain_id", "error": "OCC symbol 'ARM261316C00118000' has no valid expiry date"},
        {"field": "$[4].data[3].price", "error": "Expected `float | str | null`, got `object`"},
        {"field": "$[4].data[4].id", "error": "missing trade id"},
    ]
    assert reply.json()["problems"] == problems
    not_a_trade = shared_server.post("/uw", ["option_trades:ARM", "just text"])
    assert not_a_trade.json()["problems"] == [{"field": "$[1]", "error": "Expected `object`, got `str`"}]
    all_ingested(shared_server)
    own = sql_list([reply.json()["id"], not_a_trade.json()["id"], *ids_if_stored(body for body, _, _ in BAD)])
    assert stored_rows(shared_server, f"SELECT problems FROM universal_webhooks WHERE id IN ({own}) "
                       "ORDER BY topic") == [
        (["$[1]: Expected `object`, got `str`"],), ([f"{p['field']}: {p['error']}" for p in problems],)]
    assert stored_rows(shared_server, f"SELECT trade_id FROM option_trades_events WHERE webhook_id IN ({own})") == [
        ("good",)]


def test_gex_topic_envelopes_are_stored_raw_and_as_gex_data(shared_server):
    envelope = {"topic": "gex", "eventType": "snapshot",
                "payload": {"ticker": "ndx", "endpoint": "one", "data": snapshot(ticker=None, n_strikes=3)}}
    bare = {"topic": "gex", "payload": snapshot(ticker="SPY", timestamp=TS + 1, n_strikes=2)}
    replies = [shared_server.post("/uw", body) for body in (envelope, bare, envelope)]
    assert [r.status for r in replies] == [200] * 3
    received = {"status": "received", "message": "Universal webhook processed", "topic": "gex", "kind": "snapshot",
                "problems": []}
    assert [{k: v for k, v in r.json().items() if k != "id"} for r in replies] == [
        {**received, "ticker": "NDX", "endpoint": "gex_one", "timestamp": TS * 1000, "duplicate": False},
        {**received, "ticker": "SPY", "endpoint": "gex_zero", "timestamp": (TS + 1) * 1000, "duplicate": False},
        {**received, "ticker": "NDX", "endpoint": "gex_one", "timestamp": TS * 1000, "duplicate": True},
    ]
    all_ingested(shared_server)
    # the module's only case that sends gex data: every row of its tickers is one it sent
    assert stored_rows(shared_server, "SELECT ticker, endpoint, timestamp, spot_price, source FROM gex_snapshots "
                       "WHERE ticker IN ('NDX', 'SPY') ORDER BY timestamp") == [
        ("NDX", "gex_one", TS * 1000, 7138.55, "live"), ("SPY", "gex_zero", (TS + 1) * 1000, 7138.55, "live")]
    assert stored_rows(shared_server, "SELECT ticker, count(*) FROM gex_strikes WHERE ticker IN ('NDX', 'SPY') "
                       "GROUP BY 1 ORDER BY 1") == [("NDX", 3), ("SPY", 2)]
    own = sql_list(r.json()["id"] for r in replies)
    assert sorted(stored_rows(shared_server, f"SELECT id::VARCHAR, topic FROM universal_webhooks WHERE id IN ({own})"
                              )) == sorted({(r.json()["id"], "gex") for r in replies})


ORDER_COLUMNS = """trade_id, webhook_id, symbol, side, quantity, price, strike, option_type, expiration, order_type,
    execution_status, broker, execution_qty, execution_price, dry_run, underlying_symbol"""


def test_super_algo_orders_flat_wrapped_and_camel_cased_are_read_as_the_original_read_them(shared_server):
    flat = phoenix("option_trades_super_algo", {"symbol": "SPY", "action": "buy", "quantity": 2, "price": "1.50"})
    by_ticker = {"topic": "option_trades_super_algo",
                 "payload": {"data": {"ticker": "IWM", "side": "sell", "quantity": "5", "price": 0.5}}}
    camel = phoenix("option_trades_super_algo:SPX", {"data": {
        "alert": {"symbol": "SPX", "action": "Buy", "strike": "6800", "optionType": "C", "exp": "2025-10-21",
                  "orderType": "LMT"},
        "quantity": 3, "price": "12.5",
        "executions": [{"dry_run": False, "venue": "tasty", "quantity": 3, "price": "12.4", "execution_price": "99"},
                       {"dry_run": True, "broker": "ibkr", "quantity": "1", "execution_price": "12.6"}]}})
    listed = {"topic": "option_trades_super_algo", "payload": {"data": [
        {"alert": {"symbol": "QQQ", "action": "sell", "quantity": 1, "price": 2}, "executions": []},
        {"symbol": "DIA", "action": "buy", "quantity": 4, "price": 1}]}}
    replies = [shared_server.post("/uw", body) for body in (flat, by_ticker, camel, listed)]
    assert [(r.status, r.json()["rows"], r.json()["problems"]) for r in replies] == [
        (200, 1, []), (200, 1, []), (200, 2, []), (200, 2, [])]
    ids = [uuid.UUID(r.json()["id"]) for r in replies]
    all_ingested(shared_server)
    rows = stored_rows(shared_server, f"SELECT {ORDER_COLUMNS} FROM option_trades_events "
                       f"WHERE webhook_id IN ({sql_list(ids)}) ORDER BY symbol, execution_qty")
    unknown = ("unknown", None, None, None, None)
    assert rows == [
        (str(uuid.uuid5(ids[3], ".data[1]/alert")), str(ids[3]), "DIA", "BUY", 4.0, 1.0, None, None, None, None,
         *unknown, "DIA"),
        (str(uuid.uuid5(ids[1], ".data/alert")), str(ids[1]), "IWM", "SELL", 5.0, 0.5, None, None, None, None,
         *unknown, "IWM"),
        (str(uuid.uuid5(ids[3], ".data[0]/alert")), str(ids[3]), "QQQ", "SELL", 1.0, 2.0, None, None, None, None,
         *unknown, "QQQ"),
        (str(uuid.uuid5(ids[2], ".data/execution/1")), str(ids[2]), "SPX", "BUY", 3.0, 12.5, 6800.0, "call",
         dt.date(2025, 10, 21), "LMT", "dry_run", "ibkr", 1.0, 12.6, True, "SPX"),
        # an execution's own price comes before its execution_price, as in the original
        (str(uuid.uuid5(ids[2], ".data/execution/0")), str(ids[2]), "SPX", "BUY", 3.0, 12.5, 6800.0, "call",
         dt.date(2025, 10, 21), "LMT", "live", "tasty", 3.0, 12.4, False, "SPX"),
        (str(uuid.uuid5(ids[0], "alert")), str(ids[0]), "SPY", "BUY", 2.0, 1.5, None, None, None, None,
         *unknown, "SPY"),
    ]


def test_unreadable_super_algo_orders_are_stored_raw_with_their_problems(shared_server):
    body = phoenix("option_trades_super_algo", {"data": [
        {"action": "buy", "quantity": "1.5", "price": "abc"},
        {"alert": {"symbol": "SPY", "action": "buy"}, "executions": [{"dry_run": "yes"}]},
        {"alert": {"symbol": "SPY", "optionType": "straddle", "exp": "soon"}},
        {"symbol": "QQQ", "action": "buy", "quantity": 1, "price": 1}]})
    reply = shared_server.post("/uw", body)
    problems = [
        {"field": "$[4].data[0].symbol", "error": "missing symbol (alert.symbol, symbol or ticker)"},
        {"field": "$[4].data[0].quantity", "error": "expected a whole number, got 1.5"},
        {"field": "$[4].data[0].price", "error": "expected a decimal number, got 'abc'"},
        {"field": "$[4].data[1].executions[0].dry_run", "error": "Expected `bool | null`, got `str`"},
        {"field": "$[4].data[2].alert.optionType", "error": "expected call or put, got 'straddle'"},
        {"field": "$[4].data[2].alert.exp", "error": "expected a date YYYY-MM-DD, got 'soon'"},
    ]
    assert (reply.status, reply.json()["rows"], reply.json()["normalized"]) == (200, 1, False)
    assert reply.json()["problems"] == problems
    all_ingested(shared_server)
    own = reply.json()["id"]
    assert stored_rows(shared_server, f"SELECT problems FROM universal_webhooks WHERE id = '{own}'") == [
        ([f"{p['field']}: {p['error']}" for p in problems],)]
    assert stored_rows(shared_server, "SELECT symbol, side, quantity, price, execution_status "
                       f"FROM option_trades_events WHERE webhook_id = '{own}'") == [("QQQ", "BUY", 1.0, 1.0, "unknown")]


def test_a_trade_size_beyond_what_a_double_holds_exactly_is_stored_exact_with_its_quantity_rounded(shared_server):
    """size is BIGINT and is kept exact; quantity, the original's DOUBLE copy of it, takes the nearest double. A size
    past 2**53 used to fail the Arrow conversion of quantity at ingest: the frame acknowledged, then quarantined whole."""
    size = 2**53 + 1
    frame = phoenix("option_trades_super_algo", {"data": trade(id="big", size=size)})
    reply = shared_server.post("/uw?ack=ingested", frame)
    assert (reply.status, reply.json()["rows"], reply.json()["problems"]) == (200, 1, [])
    health = shared_server.get("/health").json()
    # none of this module's cases has a frame quarantined: on the shared server the count is still 0
    assert health["storage"]["quarantined"] == 0
    own = reply.json()["id"]
    rows = stored_rows(shared_server, "SELECT trade_id, size, quantity FROM option_trades_events "
                       f"WHERE webhook_id = '{own}'")
    ((raw,),) = stored_rows(shared_server, f"SELECT count(*) FROM universal_webhooks WHERE id = '{own}'")
    assert (rows, raw) == ([("big", size, float(size))], 1)


# Whatever numbers a trade carries, a frame the decoder takes is stored: the trade row with its values when the
# decoder found no problem in it, else the frame raw with its problems. Decoded and written as ingest does, on a real
# DuckDB file: a value the decoder passes but the Arrow conversion or a column refuses would quarantine an
# acknowledged frame whole (a size past 2**53 once did, through the DOUBLE quantity).

RECEIVED_MS = 1_777_400_000_000
IDS = (f"t-{n}" for n in itertools.count())
WHOLE = st.one_of(st.integers(-2**63, 2**63 - 1), st.integers(-2**70, 2**70), st.integers(-2**63, 2**63).map(str))
COUNT = st.one_of(WHOLE, st.floats(allow_nan=False, allow_infinity=False), st.just(""), st.none())
NUMBER = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.floats(width=32).map(str),
                   st.integers(-2**70, 2**70), st.just(""), st.none())
# epoch numbers of every unit and size (JSON integers have none), and text
TIME = st.one_of(st.integers(-10**400, 10**400), st.integers(946_684_800, 4_102_444_800_000_000_000),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30))


@pytest.fixture(scope="module")
def uw_store(tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("uw") / "data"), kinds.WRITERS)
    store.open()
    yield store
    store.close()


@settings(max_examples=150, deadline=dt.timedelta(seconds=5), database=None, print_blob=True)
@given(size=COUNT, volume=COUNT, ask_vol=COUNT, price=NUMBER, premium=NUMBER, executed_at=TIME)
def test_a_trade_the_decoder_takes_is_stored(uw_store, size, volume, ask_vol, price, premium, executed_at):
    trade_id = next(IDS)
    body = trade(id=trade_id, size=size, volume=volume, ask_vol=ask_vol, price=price, premium=premium,
                 executed_at=executed_at)
    frame = decode_uw(json.dumps(phoenix("option_trades_super_algo", {"data": body})).encode(), Rules(), RECEIVED_MS)
    record = frame.held()
    assert uw_store.write([record], uw_store.prepare([record])) == [True]
    rows = uw_store.read("SELECT size, volume, ask_vol, price, premium, quantity FROM option_trades_events "
                         "WHERE trade_id = ?", [trade_id])
    if frame.problems:
        assert rows == []
        return
    (row,) = frame.rows
    assert rows == [(row["size"], row["volume"], row["ask_vol"], row["price"], row["premium"], row["quantity"])]


def test_an_epoch_number_beyond_any_date_is_a_problem_of_its_field_not_a_500(shared_server):
    """JSON allows integers of any size: one past a double's range (OverflowError from float arithmetic), or
    nanoseconds and microseconds past year 9999 or before year 1 (OverflowError from datetime), reached the client
    as a 500 with nothing stored. Each is a time out of range: the frame is stored raw with the field named."""
    times = [10**400, 5 * 10**20, -10**16]
    replies = [shared_server.post("/uw", phoenix("option_trades_super_algo",
                                                 {"data": trade(id=f"t{i}", executed_at=t)}))
               for i, t in enumerate(times)]
    problem = "time is outside 2000-01-01 .. 2100-01-01"
    assert [(r.status, r.json()["normalized"], r.json()["rows"], r.json()["problems"]) for r in replies] == [
        (200, False, 0, [{"field": "$[4].data.executed_at", "error": problem}])] * 3
    all_ingested(shared_server)
    own = sql_list(r.json()["id"] for r in replies)
    assert stored_rows(shared_server, f"SELECT problems FROM universal_webhooks WHERE id IN ({own})") == [
        ([f"$[4].data.executed_at: {problem}"],)] * 3
