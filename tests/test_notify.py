"""Notifications (gexsrv.notify) against a local stand-in for Discord's REST API and an alert webhook receiver on
127.0.0.1: trade proposals of /uw option_trades_super_algo frames, alerts of failed history jobs, and a dead
Discord that must cost a request nothing."""

import asyncio
import datetime as dt
import socket
import time

import pytest

from filesrv import DM_CHANNEL, DM_OPEN, FakeDiscord
from helpers import database_held, eventually
from gexsrv.notify import Notifier, proposal_messages

TOKEN, CHANNEL, USER = "test-bot-token", "1234", "5678"
# the original's environment names
DISCORD_ENV = {"DISCORD_BOT_TOKEN": TOKEN, "ALT_CHANNEL_OPTION_TRADES": CHANNEL, "DISCORD_DM_USER_ID": USER}
CHANNEL_MESSAGES = f"/api/v10/channels/{CHANNEL}/messages"
DM_MESSAGES = f"/api/v10/channels/{DM_CHANNEL}/messages"


@pytest.fixture
def discord(tmp_path):
    with FakeDiscord(tmp_path) as fake:
        yield fake


@pytest.fixture
def dead_url():
    """A port nothing listens on: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hanging_url():
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def phoenix(topic, payload):
    return [None, None, topic, "new_msg", payload]


QQQ_ORDER = {"alert": {"symbol": "QQQ", "action": "sell", "quantity": "4", "price": 2.5, "strike": "590",
                       "option_type": "put", "expiration": "2026-01-16", "order_type": "LMT"},
             "executions": [{"dry_run": True, "broker": "ibkr", "quantity": 4, "execution_price": "2.45"}]}
FRAMES = [
    phoenix("option_trades_super_algo", {"symbol": "SPY", "action": "buy", "quantity": 3, "price": "1.25"}),
    {"topic": "option_trades_super_algo", "payload": {"data": QQQ_ORDER}},
    phoenix("option_trades_super_algo:SPX", {
        "alert": {"symbol": "SPXW251021C06800000", "action": "BUY", "quantity": 1, "price": "10"},
        "executions": [{"dry_run": False, "venue": "tasty", "quantity": 1, "price": "10.5"}]}),
    # no proposals: an Unusual Whales trade on the same topic, an order on another topic, a replay
    phoenix("option_trades_super_algo", {"data": {
        "id": "uw-1", "option_chain_id": "ARM260116C00118000", "executed_at": "2025-10-21T14:30:01Z",
        "price": "1.25", "size": 3, "tags": ["ask_side"]}}),
    ["option_trades:TSLA", {"alert": {"symbol": "TSLA", "action": "buy", "quantity": 2, "price": "3"}}],
    {"topic": "option_trades_super_algo", "payload": {"data": QQQ_ORDER}},
]


def test_super_algo_orders_are_stored_then_proposed_on_the_discord_channel_and_by_dm(start_server, discord):
    server = start_server(None, "--discord-api-url", discord.url, "--alert-webhook-url", f"{discord.url}/hook",
                          env=DISCORD_ENV)
    replies = [server.post("/uw?ack=ingested", frame) for frame in FRAMES]
    assert [(r.status, r.json()["rows"], r.json()["duplicate"]) for r in replies] == [
        (200, 1, False)] * 5 + [(200, 0, True)]
    discord.wait_for(7)
    server.stop()  # waits for the sends still in flight
    proposals = [
        ("CONFIRM PROPOSAL — SPY BUY qty 3 -> propose half 1 LMT @ $1.25", "Trade proposal: SPY BUY qty 3 @ $1.25"),
        ("CONFIRM PROPOSAL — QQQ SELL qty 4 -> propose half 2 LMT @ $2.45", "Trade proposal: QQQ SELL qty 4 @ $2.45"),
        ("CONFIRM PROPOSAL — SPXW251021C06800000 BUY qty 1 -> propose half 1 LMT @ $10.50",
         "Trade proposal: SPXW251021C06800000 BUY qty 1 @ $10.50"),
    ]
    assert len(discord.seen) == 7
    assert {(s.authorization, s.content_type) for s in discord.seen} == {(f"Bot {TOKEN}", "application/json")}
    assert sorted(s.body["content"] for s in discord.to(CHANNEL_MESSAGES)) == sorted(p[0] for p in proposals)
    # the DM channel is opened once, before the first DM, and reused
    assert discord.seen.index(discord.to(DM_OPEN)[0]) < discord.seen.index(discord.to(DM_MESSAGES)[0])
    assert [s.body for s in discord.to(DM_OPEN)] == [{"recipient_id": USER}]
    assert sorted(s.body["content"] for s in discord.to(DM_MESSAGES)) == sorted(p[1] for p in proposals)
    assert discord.to("/hook") == []
    with server.db() as db:
        rows = db.execute("""SELECT w.topic, symbol, side, quantity, t.price, strike, option_type, expiration,
            order_type, execution_status, broker, execution_qty, execution_price
            FROM option_trades_events t JOIN universal_webhooks w ON t.webhook_id = w.id ORDER BY symbol""").fetchall()
    assert rows == [
        ("option_trades_super_algo", "ARM", "ask", 3.0, 1.25, 118.0, "call", dt.date(2026, 1, 16), None, None, None,
         None, None),
        ("option_trades_super_algo", "QQQ", "SELL", 4.0, 2.5, 590.0, "put", dt.date(2026, 1, 16), "LMT", "dry_run",
         "ibkr", 4.0, 2.45),
        ("option_trades_super_algo:SPX", "SPXW251021C06800000", "BUY", 1.0, 10.0, 6800.0, "call",
         dt.date(2025, 10, 21), None, "live", "tasty", 1.0, 10.5),
        ("option_trades_super_algo", "SPY", "BUY", 3.0, 1.25, None, None, None, None, "unknown", None, None, None),
        ("option_trades:TSLA", "TSLA", "BUY", 2.0, 3.0, None, None, None, None, "unknown", None, None, None),
    ]


def test_a_failed_history_job_alerts_the_webhook_and_the_user_by_dm(start_server, discord):
    server = start_server(None, "--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32",
                          "--discord-api-url", discord.url, "--alert-webhook-url", f"{discord.url}/hook",
                          env=DISCORD_ENV)
    url = f"{discord.url}/status/404"
    job = server.post("/gex_history_url", {"url": url, "ticker": "SPX", "endpoint": "zero"}).json()
    discord.wait_for(3)
    server.stop()
    [hook] = discord.to("/hook")
    message = hook.body["text"]
    assert message.startswith(f"gexsrv: history job {job['id']} failed ({url}): ") and "404" in message
    assert (hook.body, hook.authorization) == ({"content": message, "text": message}, None)
    assert [(s.path, s.body) for s in discord.seen if s.path != "/hook"] == [
        (DM_OPEN, {"recipient_id": USER}), (DM_MESSAGES, {"content": message})]
    assert f"ALERT {message}" in server.log_path.read_text()


def test_a_dead_discord_neither_slows_nor_fails_uw(start_server, dead_url):
    server = start_server(None, "--discord-api-url", dead_url, "--alert-webhook-url", f"{dead_url}/hook",
                          env=DISCORD_ENV)
    started = time.monotonic()
    replies = [server.post("/uw", phoenix("option_trades_super_algo",
                                          {"symbol": "SPY", "action": "buy", "quantity": n, "price": "1"}))
               for n in range(1, 6)]
    elapsed = time.monotonic() - started
    assert [(r.status, r.json()["rows"]) for r in replies] == [(200, 1)] * 5
    assert elapsed < 2.0, f"5 requests took {elapsed:.2f} s"
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT symbol, side, quantity, execution_status FROM option_trades_events "
                          "ORDER BY quantity").fetchall() == [("SPY", "BUY", float(n), "unknown") for n in range(1, 6)]
    log = server.log_path.read_text()
    assert log.count("discord_channel notification failed") == 5
    assert log.count("discord_dm notification failed") == 5


def run(coroutine_function):
    return asyncio.run(coroutine_function())


ROW = {"symbol": "SPY", "side": "BUY", "quantity": 4.0, "price": 1.5, "execution_price": None}


def counts(enabled, sent=0, failed=0, dropped=0):
    return {"enabled": enabled, "sent": sent, "failed": failed, "dropped": dropped}


def test_report_counts_sends_and_failures_per_channel(discord, dead_url, caplog):
    async def notify_both():
        reports = []
        for api in (discord.url, dead_url):
            notifier = Notifier(f"{api}/hook", api, TOKEN, CHANNEL, USER)
            notifier.alert("disk full")
            notifier.trade_proposal(ROW)
            await notifier.close()
            reports.append(notifier.report())
        return reports

    good, dead = run(notify_both)
    assert good == {"in_flight": 0, "webhook": counts(True, sent=1), "discord_channel": counts(True, sent=1),
                    "discord_dm": counts(True, sent=2)}
    assert dead == {"in_flight": 0, "webhook": counts(True, failed=1), "discord_channel": counts(True, failed=1),
                    "discord_dm": counts(True, failed=2)}
    assert [s.body for s in discord.to(DM_OPEN)] == [{"recipient_id": USER}]
    assert sorted((s.path, s.body["content"]) for s in discord.seen if s.path != DM_OPEN) == [
        ("/api/v10/channels/1234/messages", "CONFIRM PROPOSAL — SPY BUY qty 4 -> propose half 2 LMT @ $1.50"),
        (DM_MESSAGES, "Trade proposal: SPY BUY qty 4 @ $1.50"), (DM_MESSAGES, "disk full"), ("/hook", "disk full")]
    assert [s.body for s in discord.to("/hook")] == [{"content": "disk full", "text": "disk full"}]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["ALERT disk full"] * 2


def test_without_a_bot_token_nothing_goes_to_discord(discord, caplog):
    async def notify():
        notifier = Notifier("", discord.url, "", CHANNEL, USER)
        notifier.alert("disk full")
        notifier.trade_proposal(ROW)
        await notifier.close()
        return notifier.report()

    assert run(notify) == {"in_flight": 0, "webhook": counts(False), "discord_channel": counts(False),
                           "discord_dm": counts(False)}
    assert discord.seen == []
    assert "discord_bot_token is empty" in caplog.text


def test_sends_past_the_bound_are_dropped_and_counted(hanging_url):
    async def flood():
        notifier = Notifier("", hanging_url, TOKEN, CHANNEL, "", max_in_flight=2, timeout=0.3)
        for _ in range(5):
            notifier.trade_proposal(ROW)
        during = notifier.report()
        started = time.monotonic()
        await notifier.close()
        return during, notifier.report(), time.monotonic() - started

    during, after, closing = run(flood)
    assert during == {"in_flight": 2, "webhook": counts(False), "discord_channel": counts(True, dropped=3),
                      "discord_dm": counts(False)}
    # the two sends that never got an answer time out, and close waits only that long
    assert after == {"in_flight": 0, "webhook": counts(False), "discord_channel": counts(True, failed=2, dropped=3),
                     "discord_dm": counts(False)}
    assert closing < 2.0


@pytest.mark.parametrize("row, channel, dm", [
    ({"symbol": "SPY", "side": "BUY", "quantity": 1.0, "price": 1.5},
     "CONFIRM PROPOSAL — SPY BUY qty 1 -> propose half 1 LMT @ $1.50", "Trade proposal: SPY BUY qty 1 @ $1.50"),
    ({"symbol": "QQQ", "side": "SELL", "quantity": 7.0, "price": 2.0, "execution_price": 1.95},
     "CONFIRM PROPOSAL — QQQ SELL qty 7 -> propose half 3 LMT @ $1.95", "Trade proposal: QQQ SELL qty 7 @ $1.95"),
    ({"symbol": "IWM", "side": None, "quantity": None, "price": None},
     "CONFIRM PROPOSAL — IWM ? qty 0 -> propose half 1 LMT @ $0.00", "Trade proposal: IWM ? qty 0 @ $0.00"),
])
def test_proposal_messages_are_the_originals(row, channel, dm):
    assert proposal_messages(row) == (channel, dm)


def test_orders_journaled_while_the_database_is_held_are_proposed_once_it_is_back(start_server, discord, tmp_path):
    """The replay that stores them when the database is back tells the same observers a normal ingest does."""
    data = tmp_path / "data"
    data.mkdir()
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--discord-api-url", discord.url, env=DISCORD_ENV)
        replies = [server.post("/uw", frame) for frame in FRAMES[:2]]
    eventually(lambda: server.get("/health").json()["ingest"]["records_waiting"] == 0, "nothing waiting")
    eventually(lambda: len(discord.to(CHANNEL_MESSAGES)) >= 2, "two channel messages")
    server.stop()
    assert [r.status for r in replies] == [200, 200]
    assert sorted(s.body["content"] for s in discord.to(CHANNEL_MESSAGES)) == [
        "CONFIRM PROPOSAL — QQQ SELL qty 4 -> propose half 2 LMT @ $2.45",
        "CONFIRM PROPOSAL — SPY BUY qty 3 -> propose half 1 LMT @ $1.25"]
    dms = [s.body["content"] for s in discord.to(DM_MESSAGES)]
    assert len([dm for dm in dms if dm.startswith("Trade proposal:")]) == 2
