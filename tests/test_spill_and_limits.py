"""Behaviour that had no test (issue 19), each against a real server, checked row by row in DuckDB: the 422 of
`?ack=ingested` for a record the database refuses on its own (the quarantine), the `ingest_memory_mb` spill path
(bodies read back from the journal), the `backlog_max_mb` bound, and a clean stop on SIGINT."""

import json
import signal
from pathlib import Path

import duckdb
import pytest

from helpers import database_held, eventually, snapshot

TS = 1777492800
BIG_STRIKES = 400  # ~18 KB a body: a few dozen of them make a MiB
TRADE = {
    "id": "t-good", "option_chain_id": "ARM260116C00118000", "executed_at": "2025-10-21T14:30:01.123456Z",
    "price": "1.25", "size": 3, "premium": "375.00", "volume": 1200, "open_interest": 5000,
}


def uw_trade(**changes):
    return [None, None, "option_trades", "new_msg", {**TRADE, **changes}]


def raw_journal_lines(data_dir):
    segments = sorted((Path(data_dir) / "journal").glob("*.ndjson"))
    return [line for path in segments for line in path.read_bytes().splitlines(keepends=True)]


def journal_lines(data_dir):
    return [json.loads(line) for line in raw_journal_lines(data_dir)]


def health(server):
    return server.get("/health").json()


def all_ingested(server, seq):
    """/health once ingest reached seq with nothing waiting, or None."""
    found = health(server)
    ingest = found["ingest"]
    done = ingest["position"]["seq"] == seq and ingest["records_waiting"] == 0
    return found if done and found["storage"]["state"] == "writable" else None


def expected_strikes(bodies):
    """(timestamp ms, strike, gamma, oi_gamma, priors) of every strike row the bodies carry."""
    return sorted((body["timestamp"] * 1000, s, g, oi, priors)
                  for body in bodies for s, g, oi, priors in body["strikes"])


def stored_strikes(db):
    return sorted(db.execute("SELECT timestamp, strike, gamma, oi_gamma, priors FROM gex_strikes").fetchall())


def stored_snapshots(db):
    return db.execute("SELECT timestamp, ticker, endpoint, spot_price, source FROM gex_snapshots "
                      "ORDER BY timestamp").fetchall()


# ---- the 422: a record the database refuses on its own ----

@pytest.mark.slow
def test_a_record_the_database_refuses_gets_422_with_ack_ingested_and_the_records_behind_it_land(start_server,
                                                                                              tmp_path):
    """The decoder checks every value against gexsrv's own columns, so only a database adopted as it is can refuse a
    record on its own: here a legacy option_trades_events whose size is an INTEGER, given a trade size that fits the
    BIGINT the decoder checks for but not that column. The 422 names DuckDB's reason, the record is quarantined with
    its journal line, and the records behind it land (a refusal used to be able to leave its transaction open: every
    later ingest failed, `cannot start a transaction within a transaction`)."""
    data = tmp_path / "data"
    start_server(data).stop()
    with duckdb.connect(str(data / "gex_data.db")) as db:
        db.execute("ALTER TABLE option_trades_events ALTER size TYPE INTEGER")
    server = start_server(data, "--ack-ingested-timeout-s", "10")
    bad = uw_trade(id="t-bad", size=2**40)
    refused = server.post("/uw?ack=ingested", bad)
    good = server.post("/uw?ack=ingested", uw_trade())
    gex = server.post("/gex?ack=ingested", snapshot(timestamp=TS))
    after = health(server)
    lines = journal_lines(server.data_dir)
    assert server.stop() == 0

    with server.db() as db:
        ((error,),) = db.execute("SELECT error FROM gexsrv_quarantine").fetchall()
    assert "1099511627776" in error and "out of range" in error, error
    assert (refused.status, refused.json()) == (422, {
        "status": "error",
        "error": f"journaled, but the database refused it on its own; it is kept in the quarantine "
                 f"(gexsrv_quarantine): {error}"}), refused.body
    assert (good.status, good.json()["duplicate"], good.json()["rows"]) == (200, False, 1), good.body
    assert (gex.status, gex.json()["duplicate"]) == (202, False), gex.body
    assert (after["status"], after["storage"]["state"], after["storage"]["quarantined"]) == ("ok", "writable", 1)
    assert after["ingest"]["position"]["seq"] == 3 and after["ingest"]["stored_since_start"]["quarantined"] == 1
    assert [(line["seq"], line["kind"], line["path"]) for line in lines] == [
        (1, "uw", "/uw"), (2, "uw", "/uw"), (3, "snapshot", "/gex")]
    with server.db() as db:
        quarantine = db.execute("SELECT seq, line, error FROM gexsrv_quarantine").fetchall()
        webhooks = db.execute("SELECT topic, payload::VARCHAR FROM universal_webhooks").fetchall()
        trades = db.execute("SELECT trade_id, size, quantity, option_symbol FROM option_trades_events").fetchall()
        snapshots = stored_snapshots(db)
        strikes = stored_strikes(db)
    assert [(seq, json.loads(line), reason) for seq, line, reason in quarantine] == [(1, lines[0], error)]
    assert lines[0]["body"] == bad
    assert [(topic, json.loads(payload)) for topic, payload in webhooks] == [("option_trades", uw_trade()[4])]
    assert trades == [("t-good", 3, 3.0, "ARM260116C00118000")]
    assert snapshots == [(TS * 1000, "SPX", "gex_zero", 7138.55, "live")]
    assert strikes == expected_strikes([snapshot(timestamp=TS)])


# ---- ingest_memory_mb: bodies past the budget are read back from the journal ----

def held_bytes(sizes, budget):
    """(bytes, bodies) that ingest keeps in memory of bodies journaled while nothing is ingested (Ingester.add)."""
    held = count = 0
    for size in sizes:
        if held + size <= budget:
            held, count = held + size, count + 1
    return held, count


@pytest.mark.slow
@pytest.mark.parametrize("memory_mb", [0, 1])
def test_bodies_past_ingest_memory_mb_are_read_back_from_the_journal_and_all_land(start_server, tmp_path,
                                                                                  memory_mb):
    data = tmp_path / "data"
    bodies = [snapshot(timestamp=TS + i, n_strikes=BIG_STRIKES) for i in range(80)]
    encoded = [json.dumps(body).encode() for body in bodies]
    held, kept = held_bytes(map(len, encoded), memory_mb << 20)
    assert kept <= 60  # 20 bodies or more are not held: ingest reads them back from the journal
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--ingest-memory-mb", str(memory_mb))
        replies = [server.post("/gex", body) for body in encoded]
        waiting = health(server)
    assert [r.status for r in replies] == [202] * 80
    assert waiting["storage"]["cause"] == "locked"
    # With --processes 2 the engine ingests, and it reads every body back from the journal: it holds none.
    held_for_ingest = 0 if "processes" in waiting else held
    assert (waiting["ingest"]["records_waiting"], waiting["ingest"]["held_mb"]) == (
        80, round(held_for_ingest / 2**20, 1))

    # The position moves on the ingest thread; what is held and what was stored are settled on the event loop
    # a moment later, so a /health in between may show the first without the others.
    settled = {"held_mb": 0.0, "stored_since_start": {"snapshot": 80, "strike_rows": 80 * BIG_STRIKES}}
    eventually(lambda: (found := all_ingested(server, 80)) and {name: found["ingest"][name] for name in settled}
               == settled, "the 80 journaled snapshots ingested, counted and let go of", timeout=90)
    assert server.stop() == 0
    with server.db() as db:
        snapshots = stored_snapshots(db)
        strikes = stored_strikes(db)
    assert snapshots == [((TS + i) * 1000, "SPX", "gex_zero", 7138.55, "live") for i in range(80)]
    assert strikes == expected_strikes(bodies)


@pytest.mark.slow
def test_with_ingest_memory_mb_0_live_ingest_reads_every_kind_back_from_the_journal(start_server):
    """The database writable: each ingest (not the recovery after a hold) finds no record in memory and decodes
    the journal's lines again, /uw frames and their GEX records (two lines for one frame) included."""
    server = start_server(None, "--ingest-memory-mb", "0")
    bodies = [snapshot(timestamp=TS + i, n_strikes=BIG_STRIKES) for i in range(10)]
    gex = [server.post("/gex?ack=ingested", body) for body in bodies]
    gex_frame = {"topic": "gex", "payload": snapshot(ticker="SPY", timestamp=TS, n_strikes=2)}
    via_uw = server.post("/uw?ack=ingested", gex_frame)
    trade = server.post("/uw?ack=ingested", uw_trade())
    again = server.post("/gex?ack=ingested", bodies[0])
    found = health(server)["ingest"]
    assert server.stop() == 0

    assert [(r.status, r.json()["duplicate"]) for r in gex] == [(202, False)] * 10
    assert (via_uw.status, via_uw.json()["duplicate"], trade.status, trade.json()["rows"]) == (200, False, 200, 1)
    assert (again.status, again.json()["duplicate"]) == (202, True)
    assert (found["held_mb"], found["records_waiting"], found["position"]["seq"]) == (0.0, 0, 14)
    assert found["stored_since_start"] == {"snapshot": 11, "uw": 2, "strike_rows": 10 * BIG_STRIKES + 2,
                                           "duplicates": 1}
    with server.db() as db:
        snapshots = db.execute("SELECT ticker, timestamp, source FROM gex_snapshots ORDER BY ALL").fetchall()
        strikes = stored_strikes(db)
        webhooks = db.execute("SELECT topic, payload::VARCHAR FROM universal_webhooks ORDER BY topic").fetchall()
        trades = db.execute("SELECT trade_id, size, option_symbol FROM option_trades_events").fetchall()
    assert snapshots == [("SPX", (TS + i) * 1000, "live") for i in range(10)] + [("SPY", TS * 1000, "live")]
    assert strikes == expected_strikes(bodies + [gex_frame["payload"]])
    assert [(topic, json.loads(payload)) for topic, payload in webhooks] == [
        ("gex", gex_frame["payload"]), ("option_trades", uw_trade()[4])]
    assert trades == [("t-good", 3, "ARM260116C00118000")]


# ---- backlog_max_mb: past it writes get 503 and nothing of them is journaled ----

@pytest.mark.slow
def test_writes_past_backlog_max_mb_get_503_not_stored_and_only_the_accepted_land(start_server, tmp_path):
    data = tmp_path / "data"
    bodies = [snapshot(timestamp=TS + i, n_strikes=BIG_STRIKES) for i in range(80)]
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--backlog-max-mb", "1")
        replies = [server.post("/gex", body) for body in bodies]
        refusing = health(server)
        raw = raw_journal_lines(data)
    lines = [json.loads(line) for line in raw]

    statuses = [r.status for r in replies]
    accepted = statuses.count(202)
    assert 0 < accepted < 80 and statuses == [202] * accepted + [503] * (80 - accepted), statuses
    # Refused from the first write that found a MiB of journal waiting: the one before it had found less.
    journaled = sum(map(len, raw))
    assert journaled - len(raw[-1]) < 2**20 <= journaled, (journaled, len(raw[-1]))
    for reply in replies[accepted:]:
        assert (reply.headers["Retry-After"], reply.json()) == ("1", {
            "status": "error", "outcome": "not stored",
            "error": "server busy, not stored: 1 MiB of journal are waiting for ingest"})
    assert refusing["journal"]["refused_busy"] == 80 - accepted
    assert refusing["ingest"]["records_waiting"] == accepted
    assert [line["ts"] for line in lines] == [(TS + i) * 1000 for i in range(accepted)]  # nothing of the refused

    eventually(lambda: all_ingested(server, accepted), f"the {accepted} accepted snapshots ingested", timeout=90)
    again = server.post("/gex", bodies[accepted])  # the backlog is gone: a refused write is taken now
    assert again.status == 202, again.body
    assert server.stop() == 0
    with server.db() as db:
        snapshots = stored_snapshots(db)
        strikes = stored_strikes(db)
    landed = bodies[:accepted + 1]
    assert snapshots == [(b["timestamp"] * 1000, "SPX", "gex_zero", 7138.55, "live") for b in landed]
    assert strikes == expected_strikes(landed)


# ---- SIGINT ----

def test_sigint_stops_the_server_cleanly_and_ingests_what_was_journaled(start_server):
    """As on SIGTERM (tests/test_faults.py): exit 0 and, without a restart, every journaled record in DuckDB. The
    interval and batch size keep ingest from running before the signal, so the shutdown's ingest is the one."""
    server = start_server(None, "--ingest-interval-ms", "3600000", "--ingest-batch-records", "100000")
    bodies = [snapshot(timestamp=TS + i, n_strikes=3) for i in range(20)]
    assert [server.post("/gex", body).status for body in bodies] == [202] * 20
    before = health(server)["ingest"]
    assert (before["records_waiting"], before["position"]["seq"]) == (20, 0)
    assert server.stop(signal.SIGINT) == 0
    log = server.log_path.read_text()
    assert "Traceback" not in log and "KeyboardInterrupt" not in log and "stopped" in log
    with server.db() as db:
        snapshots = stored_snapshots(db)
        strikes = stored_strikes(db)
        position = db.execute("SELECT seq FROM gexsrv_ingest").fetchall()
    assert snapshots == [((TS + i) * 1000, "SPX", "gex_zero", 7138.55, "live") for i in range(20)]
    assert strikes == expected_strikes(bodies)
    assert position == [(20,)]
