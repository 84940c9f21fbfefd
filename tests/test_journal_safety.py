"""The journal's numbering and the ingest position against what an operator or a fault does to the files, with real
processes: a journal emptied or removed while another process holds the database, a database restored from a
backup or moved aside, a request waiting for ingest across a recovery, and views that show only what was stored."""

import json
import shutil
import threading

import pytest

from helpers import TS, database_held, eventually, snapshot

from gexsrv import archive
from gexsrv.journal import segment_name

STRIKES = 4


def post_ingested(server, payloads):
    replies = [server.post("/gex?ack=ingested", p) for p in payloads]
    assert [r.status for r in replies] == [202] * len(payloads), [r.body for r in replies]


def stored(server):
    """{timestamp s: (spot, strike rows)} of every stored snapshot, each key once (the server is stopped)."""
    with server.db() as db:
        keys = db.execute("SELECT count(*), count(DISTINCT timestamp) FROM gex_snapshots").fetchone()
        rows = db.execute("""SELECT s.timestamp // 1000, s.spot_price, count(k.strike) FROM gex_snapshots s
            LEFT JOIN gex_strikes k USING (ticker, endpoint, timestamp) GROUP BY ALL""").fetchall()
    assert keys[0] == keys[1]
    return {ts: (spot, strikes) for ts, spot, strikes in rows}


def archive_the_journal(data):
    """What the archiver does with every segment, the newest too: compress it into the archive, remove it."""
    for path in sorted((data / "journal").glob("*.ndjson")):
        archive.compress(str(path), archive.archive_dir(str(data)))
        path.unlink(missing_ok=True)


def health(server):
    return server.get("/health").json()


def wait_ingested(server, seq):
    return eventually(lambda: (h := health(server))["status"] == "ok" and h["ingest"]["position"]["seq"] >= seq
                      and h, f"seq {seq} ingested")


@pytest.mark.slow
@pytest.mark.parametrize("emptied", ["an empty segment left", "the journal folder removed", "journal and archive removed"])
def test_a_start_under_a_foreign_lock_after_the_journal_emptied_never_reuses_a_seq(start_server, tmp_path, emptied):
    """Restarted while another process holds the database, the journal cannot ask it how far ingest got: numbering
    from 1 again made ingest take the new records for ones stored long ago (5 acknowledged, 0 stored)."""
    data = tmp_path / "data"
    first = [snapshot(timestamp=TS + i, n_strikes=STRIKES, spot=100.0 + i) for i in range(20)]
    server = start_server(data)
    post_ingested(server, first)
    server.stop()
    archive_the_journal(data)
    if emptied == "an empty segment left":  # a rotation onto a full disk: the new segment got no line
        (data / "journal" / segment_name(21)).write_bytes(b"")
    elif emptied == "the journal folder removed":
        shutil.rmtree(data / "journal")
    else:  # nothing left to count from: the database's position is checked against the records themselves
        shutil.rmtree(data / "journal")
        shutil.rmtree(data / "source" / "live")

    later = [snapshot(timestamp=TS + 100 + i, n_strikes=STRIKES, spot=200.0 + i) for i in range(5)]
    with database_held(data / "gex_data.db"):
        restarted = start_server(data)
        replies = [restarted.post("/gex", p) for p in later]
        held = health(restarted)
    recovered = eventually(lambda: (h := health(restarted))["status"] == "ok"
                           and h["ingest"]["records_waiting"] == 0 and h, "recovered, nothing waiting")
    restarted.stop()

    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(202, None)] * 5
    assert held["status"] == "degraded" and held["ingest"]["records_waiting"] == 5
    if emptied != "journal and archive removed":
        assert held["journal"]["next_seq"] == 26
    assert recovered["stored_since_start"]["snapshot"] == 5
    assert stored(restarted) == {p["timestamp"]: (p["spot"], STRIKES) for p in first + later}


@pytest.mark.slow
def test_a_waiter_for_ingest_is_answered_by_the_recovery_that_stores_its_record(start_server, tmp_path):
    """A ?ack=ingested request journaled while the database is held is stored by the replay when it is back: it
    gets its 202, not a 503 "not ingested" after the whole timeout."""
    data = tmp_path / "data"
    data.mkdir()
    replies = []
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--ack-ingested-timeout-s", "60")
        waiting = threading.Thread(target=lambda: replies.append(
            server.post("/gex?ack=ingested", snapshot(timestamp=TS, n_strikes=STRIKES))))
        waiting.start()
        eventually(lambda: health(server)["journal"]["durable_seq"] == 1, "seq 1 durable")
    waiting.join(timeout=60)
    after = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 1, n_strikes=STRIKES))
    report = health(server)
    server.stop()

    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(202, False)]
    assert (after.status, after.json()["duplicate"]) == (202, False)
    assert report["ingest"]["records_waiting"] == 0
    assert set(stored(server)) == {TS, TS + 1}


@pytest.mark.slow
@pytest.mark.parametrize("restored", ["moved aside", "a backup"])
def test_a_fresh_or_restored_database_is_filled_again_from_the_archive_and_the_journal(start_server, tmp_path,
                                                                                      restored):
    """The README's remedy for a damaged database: restore a backup, or move it aside. Once the journal's oldest
    segments were archived, its position is older than the journal; the raw archive fills the gap."""
    data = tmp_path / "data"
    backup = tmp_path / "backup.db"
    payloads = [snapshot(timestamp=TS + i, n_strikes=STRIKES, spot=100.0 + i) for i in range(30)]
    server = start_server(data, "--journal-segment-seconds", "0.3")
    post_ingested(server, payloads[:10])
    server.stop()
    shutil.copy(data / "gex_data.db", backup)
    server = start_server(data, "--journal-segment-seconds", "0.3")
    for i in range(10, 30):
        post_ingested(server, payloads[i:i + 1])
        if i % 5 == 0:  # a segment ages out, the next post starts another, the archive takes the old one
            eventually(lambda: health(server)["archive"]["files"] >= (i - 5) // 5, "segments archived")
    # What the backup lacks is partly in the archive only: seq 11's segment archived (on a loaded machine the
    # segments hold other seqs than on a quiet one, so the archive's file count says nothing of it).
    eventually(lambda: min((int(p.name[:16]) for p in (data / "journal").glob("*.ndjson")), default=1 << 62) > 11,
               "the segment of seq 11 archived")
    server.stop()
    (data / "gex_data.db").rename(tmp_path / "damaged.db")
    if restored == "a backup":
        shutil.copy(backup, data / "gex_data.db")

    restarted = start_server(data)
    report = wait_ingested(restarted, 30)
    restarted.stop()
    log = restarted.log_path.read_text()

    assert "from the raw archive: " in log and "records ingested; the journal follows" in log
    assert report["ingest"]["records_waiting"] == 0
    assert stored(restarted) == {p["timestamp"]: (p["spot"], STRIKES) for p in payloads}


def test_views_show_what_was_stored_not_what_was_sent_again(start_server, tmp_path):
    """A key stored before a restart (now older than the duplicate horizon: `duplicate` null) sent again with
    another spot: DuckDB keeps the first, and so must /api/latest, /api/strikes and spot_series.jsonl."""
    data, outputs = tmp_path / "data", tmp_path / "outputs"
    server = start_server(data, "--outputs-dir", str(outputs))
    post_ingested(server, [snapshot(timestamp=TS, n_strikes=STRIKES, spot=100.0)])
    server.stop()
    restarted = start_server(data, "--outputs-dir", str(outputs))
    again = restarted.post("/gex", snapshot(timestamp=TS, n_strikes=STRIKES, spot=200.0))
    eventually(lambda: health(restarted)["stored_since_start"].get("duplicates") == 1, "one duplicate counted")
    latest = restarted.get("/api/latest?ticker=SPX").json()
    strikes = restarted.get("/api/strikes?ticker=SPX&endpoint=gex_zero").json()
    restarted.stop()

    assert (again.status, again.json()["duplicate"]) == (202, None)
    assert latest["combined"]["spot"] == 100.0 and latest["snapshot"]["spot"] == 100.0
    assert strikes["spot"] == 100.0 and len(strikes["strikes"]) == STRIKES
    lines = [json.loads(line) for line in (outputs / "spot_series.jsonl").read_text().splitlines()]
    assert lines == [{"timestamp": TS, "spot": 100.0, "ticker": "SPX"}]
    assert stored(restarted) == {TS: (100.0, STRIKES)}


@pytest.mark.slow
def test_a_start_without_the_database_counts_as_waiting_only_what_was_not_ingested(start_server, tmp_path):
    """Every record ever journaled counted as waiting while the database was held: past --backlog-max-records
    every write got 503 while nothing waited."""
    data = tmp_path / "data"
    server = start_server(data)
    post_ingested(server, [snapshot(timestamp=TS + i, n_strikes=STRIKES) for i in range(12)])
    server.stop()
    with database_held(data / "gex_data.db"):
        restarted = start_server(data, "--backlog-max-records", "10")
        held = health(restarted)
        replies = [restarted.post("/gex", snapshot(timestamp=TS + 100 + i, n_strikes=STRIKES)) for i in range(3)]
    wait_ingested(restarted, 15)
    restarted.stop()

    assert held["ingest"]["records_waiting"] == 0
    assert [r.status for r in replies] == [202] * 3
    assert len(stored(restarted)) == 15
