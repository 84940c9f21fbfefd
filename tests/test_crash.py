"""The write-ahead journal end to end, with real processes and files: SIGKILL at random moments under load, a
replay of 100,000 journaled records, what each ack promises, 503 on a full ingest backlog, and the quarantine."""

import json
import signal
import time
from pathlib import Path

import duckdb
import msgspec
import pytest
from filesrv import FileServer
from forkserver import run_gexsrv
from helpers import (TS, Poster, crash_moments, database_held, history_folder, queue_history, snapshot, stored_keys,
                     wait_job)

from gexsrv import archive
from gexsrv.decode import Rules, decode_gex
from gexsrv.journal import segment_name
from gexsrv.journalline import check_line, encode_line, gex_header

# Nothing is ingested while the server runs: an hour between ingests, and no batch ever large enough.
NO_INGEST = ("--ingest-interval-ms", "3600000", "--ingest-batch-records", "100000000")


def journal_lines(data_dir):
    """Every line of the journal's segments, oldest first."""
    segments = sorted((Path(data_dir) / "journal").glob("*.ndjson"))
    return [line for path in segments for line in path.read_bytes().splitlines(keepends=True)]


def journal_line(seq, header, body):
    return b"".join(encode_line({"seq": seq, **header}, body))


def gex_line(seq, payload, **changes):
    """The journal line the server writes for a POST /gex of payload (its header as gexsrv.intake makes it),
    with changes to the header."""
    body = json.dumps(payload).encode()
    header = msgspec.structs.asdict(gex_header(decode_gex(body, Rules(), payload["timestamp"] * 1000 + 500), "/gex"))
    return journal_line(seq, {**header, "dup": False, **changes}, body)


# ---- SIGKILL at random moments under load ----

CRASH_SEED = 20261202  # the same moments on every run (CI); CRASH_SEED=random in the environment for new ones

KILLS = 24
LOAD_STRIKES = 20
TICKERS = ("SPX", "NDX", "SPY")



HISTORY_TICKER, HISTORY_SNAPSHOTS = "QQQ", 3_000
# Everything that writes runs while the kills come: segments archived every fraction of a second, the lake
# exported as often, a history file imported in chunks, and each start's replay of the journal.
BUSY = ("--journal-segment-seconds", "0.3", "--archive-interval-s", "0.1", "--lake-export-interval", "0.3", "--history-allowed-hosts", "127.0.0.1",
        "--history-allowed-networks", "127.0.0.1/32")


def journaled_and_archived(data_dir):
    """[(seq, kind, key)] of every record in the journal's segments and the raw archive."""
    paths = sorted(Path(data_dir, "journal").glob("*.ndjson"))
    found = [line for path in paths for line in path.read_bytes().splitlines(keepends=True)]
    for _, path in archive.files(archive.archive_dir(str(data_dir))):
        found += [line for _, line in archive.lines(path)]
    headers = [json.loads(check_line(line) + b"}") for line in found]
    return [(h["seq"], h["kind"], (h.get("ticker"), h.get("endpoint"), h.get("ts"))) for h in headers]


def lake_keys(data_dir):
    """{(ticker, endpoint, timestamp ms): strike rows} of the Parquet lake."""
    with duckdb.connect() as db:
        rows = db.execute(f"SELECT ticker, endpoint, timestamp, count(*) FROM read_parquet("
                          f"'{data_dir}/parquet/gexbot/**/*.strikes.parquet') GROUP BY ALL").fetchall()
    return {(ticker, endpoint, ts): n for ticker, endpoint, ts, n in rows}


@pytest.mark.slow
def test_every_acknowledged_snapshot_survives_sigkills_at_random_moments_under_load(start_server, tmp_path):
    seed, rng = crash_moments("SIGKILL loop", CRASH_SEED)
    with FileServer(history_folder(tmp_path / "files", HISTORY_SNAPSHOTS, HISTORY_TICKER)) as origin:
        server = start_server(None, *BUSY)
        queued = queue_history(server, origin, HISTORY_TICKER)
        acked_per_run = []
        with Poster(TICKERS, LOAD_STRIKES) as load:
            for _ in range(KILLS):
                before = len(load.acked)
                load.url = server.url
                time.sleep(rng.uniform(0.05, 1.0))
                server.stop(signal.SIGKILL)
                load.url = None
                assert server.proc.returncode == -signal.SIGKILL
                acked_per_run.append(len(load.acked) - before)
                server.start()  # replays what the journal holds past the last ingest
        job = wait_job(server, queued.json()["id"], timeout=60)
        health = server.get("/health").json()
        assert server.stop() == 0

    print(f"acknowledged per run: {acked_per_run}; sent {len(load.sent)}, acknowledged {len(load.acked)}")
    with server.db() as db:
        snapshots = stored_keys(db)
        strikes = stored_keys(db, "gex_strikes")
        quarantined = db.execute("SELECT count(*) FROM gexsrv_quarantine").fetchone()[0]
        position = db.execute("SELECT seq FROM gexsrv_ingest").fetchone()[0]
    live = {key: n for key, n in snapshots.items() if key[0] != HISTORY_TICKER}
    imported = {key for key in snapshots if key[0] == HISTORY_TICKER}
    assert queued.status == 202 and job["status"] == "completed", job
    assert not load.refused, f"seed {seed}"
    assert sum(1 for n in acked_per_run if n) >= KILLS // 2, f"seed {seed}: the load hardly ran"
    assert not load.acked - live.keys(), f"seed {seed}: acknowledged, then lost"
    assert set(snapshots.values()) == {1}, f"seed {seed}: stored twice"
    assert live.keys() <= load.sent, f"seed {seed}: stored, never sent"
    assert len(imported) == HISTORY_SNAPSHOTS, f"seed {seed}: history snapshots lost"
    assert strikes == {key: LOAD_STRIKES if key in live else 20 for key in snapshots}, (
        f"seed {seed}: strike rows lost or doubled")
    assert quarantined == 0 and health["storage"]["quarantined"] == 0
    # every record journaled is ingested: the records stored live are the journal's, and nothing else
    assert position == health["journal"]["next_seq"] - 1 == len(live), f"seed {seed}"
    # the journal and its archive hold every acknowledged request once, under seqs 1..position each once
    records = journaled_and_archived(server.data_dir)
    assert sorted(seq for seq, *_ in records) == list(range(1, position + 1)), f"seed {seed}"
    assert sorted(key for _, kind, key in records) == sorted(live), f"seed {seed}"
    assert health["archive"]["files"] > 0
    assert lake_keys(server.data_dir) == strikes, f"seed {seed}: the lake lacks or doubles strike rows"
    checked = run_gexsrv(["validate", "--data-dir", str(server.data_dir)])
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- replaying 100,000 journaled records ----

REPLAYED = 100_000
SEGMENT_MB = 8


def write_journal(folder, lines, first_seq, segment_bytes):
    """Append lines from first_seq on as the server does: into the newest segment until it reaches
    segment_bytes, then into a new one named after its first seq."""
    path = max(folder.glob("*.ndjson"))
    out = open(path, "ab")
    try:
        for seq, line in enumerate(lines, first_seq):
            if out.tell() >= segment_bytes:
                out.close()
                out = open(folder / segment_name(seq), "ab")
            out.write(line)
    finally:
        out.close()


@pytest.mark.slow
def test_a_restart_replays_100000_journaled_records_before_answering(start_server, tmp_path):
    data = tmp_path / "data"
    server = start_server(data, "--journal-segment-mb", str(SEGMENT_MB), *NO_INGEST)
    body = json.dumps(snapshot(timestamp=TS, n_strikes=2)).encode()
    assert server.post("/gex", body).status == 202
    server.stop(signal.SIGKILL)

    # The other 99,999 lines are made from the server's own first one: only seq, ts, received and the body's
    # timestamp differ, so they are exactly what it would have written.
    (first,) = journal_lines(data)
    header = {k: v for k, v in json.loads(first).items() if k not in ("seq", "body", "crc")}
    assert journal_line(1, header, body) == first
    tail = body[len(b'{"timestamp": %d' % TS):]
    lines = (journal_line(seq, {**header, "ts": (TS + seq - 1) * 1000, "received": header["received"] + seq},
                          b'{"timestamp": %d' % (TS + seq - 1) + tail) for seq in range(2, REPLAYED + 1))
    write_journal(data / "journal", lines, 2, SEGMENT_MB << 20)
    segments = sorted((data / "journal").glob("*.ndjson"))
    assert len(segments) > 1 and sum(len(p.read_bytes().splitlines()) for p in segments) == REPLAYED
    end = {"segment": int(segments[-1].stem), "offset": segments[-1].stat().st_size, "seq": REPLAYED}

    started = time.monotonic()
    server.start(timeout=240)  # ingest is held back as before: the replay at start is what ingests them
    print(f"start with a replay of {REPLAYED} journaled records: {time.monotonic() - started:.1f} s")
    position = server.get("/health").json()["ingest"]["position"]
    assert server.stop() == 0

    assert position == end
    assert f"replayed {REPLAYED} journaled records" in server.log_path.read_text()
    with server.db() as db:
        assert db.execute("SELECT count(*), count(DISTINCT timestamp), min(timestamp), max(timestamp) "
                          "FROM gex_snapshots WHERE ticker = 'SPX' AND endpoint = 'gex_zero'").fetchone() == (
            REPLAYED, REPLAYED, TS * 1000, (TS + REPLAYED - 1) * 1000)
        assert db.execute("SELECT count(*) FROM gex_snapshots").fetchone() == (REPLAYED,)
        assert db.execute("SELECT count(*), count(DISTINCT timestamp) FROM gex_strikes").fetchone() == (
            2 * REPLAYED, REPLAYED)
        assert db.execute('SELECT segment, "offset", seq FROM gexsrv_ingest').fetchall() == [tuple(end.values())]


# ---- what each ack promises ----

def test_ack_ingested_means_the_row_is_in_duckdb_when_the_reply_comes(start_server):
    server = start_server()
    reply = server.post("/gex?ack=ingested", snapshot(n_strikes=3))
    server.stop(signal.SIGKILL)  # no shutdown ingest, no restart: what is in DuckDB was there at the reply
    assert reply.status == 202 and reply.json()["duplicate"] is False
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", TS * 1000): 1}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", TS * 1000): 3}
        assert db.execute("SELECT seq FROM gexsrv_ingest").fetchall() == [(1,)]


def test_a_request_waiting_for_ingest_starts_it_rather_than_waiting_out_the_interval(start_server):
    """With ack=ingested clients only, ingests must follow them, or each client gets one reply per interval."""
    server = start_server(None, "--ingest-interval-ms", "600000", "--ack-ingested-timeout-s", "20")
    replies = [server.post("/gex?ack=ingested", snapshot(timestamp=TS + i, n_strikes=2)) for i in range(3)]
    assert [r.status for r in replies] == [202] * 3, [r.body for r in replies]
    assert server.get("/health").json()["ingest"]["records_waiting"] == 0


def test_ack_journal_means_the_row_is_journaled_and_lands_at_the_next_start(start_server):
    server = start_server(None, *NO_INGEST)
    assert server.post("/gex", snapshot(n_strikes=3)).status == 202
    server.stop(signal.SIGKILL)
    with server.db() as db:
        assert stored_keys(db) == {}
        assert db.execute("SELECT count(*) FROM gexsrv_ingest").fetchone() == (0,)
    assert [json.loads(line)["ts"] for line in journal_lines(server.data_dir)] == [TS * 1000]

    server.start()
    server.stop(signal.SIGKILL)  # the replay was committed before the server listened
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", TS * 1000): 1}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", TS * 1000): 3}


# ---- a full ingest backlog ----

@pytest.mark.slow
def test_a_full_backlog_refuses_writes_with_503_and_journals_nothing_of_them(start_server, tmp_path):
    data = tmp_path / "data"
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--backlog-max-records", "5", "--ack-ingested-timeout-s", "0.5")
        journaled = [server.post("/gex", snapshot(timestamp=TS + i)) for i in range(4)]
        waited = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 4))
        refused = server.post("/gex", snapshot(timestamp=TS + 5))
        health = server.get("/health").json()
        lines = journal_lines(data)
        assert server.stop() == 0

    assert [r.status for r in journaled] == [202] * 4
    assert waited.status == 503 and waited.headers["Retry-After"] == "1"
    assert waited.json()["outcome"] == "journaled" and "not ingested within 0.5 s" in waited.json()["error"]
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    assert refused.json() == {"status": "error", "outcome": "not stored",
                              "error": "server busy, not stored: 5 journaled records are waiting for ingest"}
    assert health["journal"]["refused_busy"] == 1 and health["ingest"]["records_waiting"] == 5
    assert [(json.loads(line)["seq"], json.loads(line)["ts"]) for line in lines] == [
        (i + 1, (TS + i) * 1000) for i in range(5)]

    server.start()  # the lock is gone: the five are replayed
    assert server.get("/health").json()["ingest"]["position"]["seq"] == 5
    server.stop()
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", (TS + i) * 1000): 1 for i in range(5)}


# ---- the quarantine ----

MAJORS = {"timestamp": TS, "ticker": "SPX", "spot": 7100.0, "zero_gamma": 7080.0, "mpos_vol": 7105.0,
          "mpos_oi": 7105.0, "mneg_vol": 7090.0, "mneg_oi": 7090.0, "net_gex_vol": 10.0, "net_gex_oi": 4.0}


def unstorable_line(seq):
    """A majors record journaled without an endpoint: gex_majors.endpoint is NOT NULL, so no try can store it."""
    return gex_line(seq, MAJORS, endpoint=None)


def append_to_journal(data_dir, *lines):
    with open(max((Path(data_dir) / "journal").glob("*.ndjson")), "ab") as f:
        f.write(b"".join(lines))


@pytest.mark.slow
def test_a_record_that_cannot_be_stored_is_quarantined_and_the_records_behind_it_land(start_server):
    server = start_server()
    assert server.post("/gex?ack=ingested", snapshot(timestamp=TS - 1)).status == 202
    server.stop()
    bad = unstorable_line(2)
    append_to_journal(server.data_dir, bad, gex_line(3, snapshot(timestamp=TS + 1, n_strikes=3)))
    segment = max((server.data_dir / "journal").glob("*.ndjson"))
    end = {"segment": int(segment.stem), "offset": segment.stat().st_size, "seq": 3}

    server.start()
    health = server.get("/health").json()
    after = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 2))
    server.stop()

    assert (health["storage"]["state"], health["storage"]["quarantined"]) == ("writable", 1)
    assert health["ingest"]["position"] == end
    assert after.status == 202
    with server.db() as db:
        quarantine = db.execute("SELECT seq, line, error FROM gexsrv_quarantine").fetchall()
        majors = db.execute("SELECT count(*) FROM gex_majors").fetchone()[0]
        snapshots = stored_keys(db)
        strikes = stored_keys(db, "gex_strikes")
    assert quarantine == [(2, bad.decode(), "Constraint Error: NOT NULL constraint failed: gex_majors.endpoint")]
    assert majors == 0
    assert snapshots == {("SPX", "gex_zero", (TS + i) * 1000): 1 for i in (-1, 1, 2)}
    assert strikes == {("SPX", "gex_zero", (TS - 1) * 1000): 5, ("SPX", "gex_zero", (TS + 1) * 1000): 3,
                       ("SPX", "gex_zero", (TS + 2) * 1000): 5}


@pytest.mark.slow
def test_an_unstorable_record_last_in_the_journal_is_quarantined_and_the_server_starts(start_server):
    server = start_server()
    assert server.post("/gex?ack=ingested", snapshot(timestamp=TS - 1)).status == 202
    server.stop()
    append_to_journal(server.data_dir, unstorable_line(2))

    server.start()
    health = server.get("/health").json()
    server.stop()
    assert health["storage"]["quarantined"] == 1 and health["ingest"]["position"]["seq"] == 2
