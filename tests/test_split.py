"""processes = 2 with real processes: the front (HTTP, the journal) and the engine (gex_data.db, ingest, history,
the lake, every read), forked by the front's spawner. Writes and reads through both; SIGKILL of the engine at
random moments under load, of the front alone, of both, of the spawner; SIGTERM; a damaged and a held database; a
history import in the engine whose keys reach the front's duplicate index; an engine that stops answering or ends
while answering; replies without a body passed back; ?ack=ingested starting an ingest; /metrics' labels while the
engine is down."""

import http.client
import json
import os
import random
import re
import signal
import threading
import time
import urllib.parse
from collections import Counter

import procstat
import pytest
from filesrv import FileServer
from forkserver import run_gexsrv
from helpers import (FRAME, HISTORY_NAME, HISTORY_SNAPS, HISTORY_STRIKES, TS, Poster, Server, crash_moments,
                     database_held, eventually, history_folder, process_state, queue_history, snapshot, stored_keys,
                     wait_job, write_history)
from prometheus_client.parser import text_string_to_metric_families

SPLIT = ("--processes", "2")
# Nothing is ingested while the server runs but at a start's replay and a stop: an hour between ingests, and no
# batch ever large enough (ack=journal requests only: one with ack=ingested starts an ingest).
NO_INGEST = ("--ingest-interval-ms", "3600000", "--ingest-batch-records", "100000000")


# ---- the processes ----

def processes(server):
    return server.get("/health").json()["processes"]


def engine_up(server, not_pid=None, timeout=30):
    """The pid of the engine once one (other than not_pid) runs and has said so (its Status: it serves then)."""
    def up():
        engine = processes(server)["engine"]
        running = engine["pid"] not in (None, not_pid) and engine["uptime_s"] is not None
        return engine["pid"] if running else None

    return eventually(up, "an engine up" + (f" other than pid {not_pid}" if not_pid else ""), timeout)


def parent(pid):
    """The parent pid of a running process (/proc/PID/stat's fourth field)."""
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def ended(pid):
    """Gone, or a zombie nobody reaped yet (an orphan's parent is then PID 1): it runs no more."""
    return process_state(pid) in ("gone", "Z")


def alive(pid):
    return not ended(pid)


def tree(server):
    """(front, spawner, engine) pids: the engine is the spawner's child, the spawner the front's."""
    engine = engine_up(server)
    spawner = parent(engine)
    assert parent(spawner) == server.proc.pid
    return server.proc.pid, spawner, engine


def unix_sockets(pid):
    """The paths of the Unix sockets bound by a process' open descriptors (/proc/net/unix by their inodes)."""
    fds = f"/proc/{pid}/fd"
    links = [link_of(f"{fds}/{fd}") for fd in os.listdir(fds)]
    inodes = {link[len("socket:["):-1] for link in links if link.startswith("socket:[")}
    with open("/proc/net/unix") as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return {row[7] for row in rows if len(row) > 7 and row[6] in inodes}


def link_of(path):
    try:
        return os.readlink(path)
    except FileNotFoundError:  # a descriptor closed since it was listed
        return ""


def all_ingested(server, seq):
    """The front's view of the engine once it reported every seq through `seq` ingested."""
    def ingested():
        engine = processes(server)["engine"]
        return engine if engine["position"]["seq"] >= seq and engine["records_waiting"] == 0 else None

    return eventually(ingested, f"seq {seq} ingested")


def post_keys(server, timestamps, ticker="SPX", ack="journal", n_strikes=3):
    """POST /gex a snapshot per timestamp; the keys (ticker, endpoint, ms) the 2xx replies acknowledged."""
    keys = []
    for ts in timestamps:
        reply = server.post(f"/gex?ack={ack}", snapshot(ticker, ts, n_strikes=n_strikes))
        assert reply.status == 202, reply.body
        answer = reply.json()
        keys.append((answer["ticker"], answer["endpoint"], answer["timestamp"]))
    return keys


def sql(server, query):
    reply = server.get("/api/sql?" + urllib.parse.urlencode({"q": query}))
    assert reply.status == 200, reply.body
    return reply.json()["rows"]


def log_of(server):
    return server.log_path.read_text()


# ---- writes and reads through both processes ----

MAJORS = {"ticker": "SPX", "endpoint": "full", "payload": {
    "timestamp": TS, "spot": 7138.5, "zero_gamma": 7112.9, "mpos_vol": 7135, "mpos_oi": 7200, "mneg_vol": 7100,
    "mneg_oi": 6900, "net_gex_vol": 1712585.5, "net_gex_oi": 51521.1}}
MAXCHANGE = {"ticker": "SPX", "endpoint": "gex_maxchange", "data": {
    "timestamp": TS, "current": [7140, 170979.7], "one": [7135, 1145886.7], "five": [7135, 997473.3],
    "ten": [7135, 1106210.7], "fifteen": [7135, 1128504.8], "thirty": [7135, 1131150.4]}}
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (\S+) ", re.M)


def command_name(pid):
    with open(f"/proc/{pid}/comm") as comm:
        return comm.read().strip()


@pytest.mark.parametrize("processes, names", [("1", ["gexsrv"]),
                                              ("2", ["gexsrv-front", "gexsrv-spawner", "gexsrv-engine"])])
def test_ps_and_top_name_each_process(start_server, processes, names):
    """Each process' command line is `python -m gexsrv`; its name says which one it is."""
    server = start_server(None, "--processes", processes)
    pids = tree(server) if processes == "2" else [server.proc.pid]
    assert [command_name(pid) for pid in pids] == names


def test_writes_and_reads_pass_through_both_processes(start_server):
    server = start_server(None, *SPLIT)
    front, spawner, engine = tree(server)
    spx = snapshot(n_strikes=4)
    first = server.post("/gex?ack=ingested", spx)
    again = server.post("/gex?ack=ingested", spx)
    others = [server.post("/gex", MAJORS), server.post("/gex", MAXCHANGE),
              server.post("/gex", {"ticker": "ndx", "endpoint": "one", "data": {**snapshot(timestamp=TS + 1,
                                                                                            n_strikes=2),
                                                                                "ticker": None}})]
    frames = [server.post("/uw", [*FRAME[:4], {"title": f"news {i}"}]) for i in range(3)]
    all_ingested(server, 8)
    snapshots = server.get("/api/snapshots?ticker=SPX")
    strikes = server.get("/api/strikes?ticker=SPX&endpoint=gex_zero")
    rows = sql(server, "SELECT ticker, endpoint, timestamp, spot_price FROM gex_snapshots ORDER BY ticker")
    health = server.get("/health").json()
    metrics = server.request("GET", "/metrics", headers={"Accept": "text/plain"})
    running = [alive(pid) for pid in (front, spawner, engine)]
    assert server.stop() == 0

    assert (first.status, first.json()["duplicate"], again.status, again.json()["duplicate"]) == (202, False, 202,
                                                                                                 True)
    assert [(r.status, r.json()["kind"], r.json()["ticker"], r.json()["endpoint"]) for r in others] == [
        (202, "majors", "SPX", "gex_full"), (202, "maxchange", "SPX", "gex_zero"), (202, "snapshot", "NDX", "gex_one")]
    assert [(r.status, r.json()["topic"], r.json()["duplicate"]) for r in frames] == [(200, "news", None)] * 3
    # reads: answered by the engine, passed back by the front
    assert (snapshots.status, strikes.status) == (200, 200), (snapshots.body, strikes.body)
    found = snapshots.json()
    assert [s.pop("received_at") > TS * 1000 for s in found["snapshots"]] == [True]
    fields = {"spot": spx["spot"], "zero_gamma": spx["zero_gamma"], "min_dte": 0, "sec_min_dte": 1,
              **{name: spx[name] for name in ("major_pos_vol", "major_pos_oi", "major_neg_vol", "major_neg_oi",
                                              "sum_gex_vol", "sum_gex_oi", "delta_risk_reversal")}}
    assert found == {"ticker": "SPX", "endpoint": None, "since": 946684800000, "until": 4102444800000,
                     "limit": 500, "more": False, "snapshots": [
                         {"timestamp": TS * 1000, "endpoint": "gex_zero", "source": "live", **fields}]}
    held = strikes.json()
    assert (held["ticker"], held["endpoint"], held["timestamp"], held["strikes"]) == (
        "SPX", "gex_zero", TS * 1000, spx["strikes"])
    assert rows == [["NDX", "gex_one", (TS + 1) * 1000, spx["spot"]], ["SPX", "gex_zero", TS * 1000, spx["spot"]]]
    # both processes, alive, distinct
    assert health["status"] == "ok" and health["storage"]["state"] == "writable", health
    procs = health["processes"]
    assert (procs["front"]["pid"], procs["engine"]["pid"]) == (front, engine) and front != engine
    assert running == [True, True, True]
    assert procs["front"]["cpu_s"] > 0 and procs["engine"]["cpu_s"] > 0
    assert procs["front"]["uptime_s"] > 0 and procs["engine"]["uptime_s"] > 0
    assert {name: procs["engine"][name] for name in ("restarts", "last_exit", "fatal", "records_waiting",
                                                     "untold", "settled")} == {
        "restarts": 0, "last_exit": None, "fatal": None, "records_waiting": 0, "untold": 0,
        "settled": {"stored": 7, "duplicates": 1, "quarantined": 0}}
    assert procs["engine"]["position"]["seq"] == health["ingest"]["position"]["seq"] == 8
    # /metrics: a family both processes have, one sample of each
    assert metrics.status == 200
    families = {family.name: family for family in text_string_to_metric_families(metrics.body.decode())}
    cpu = families["process_cpu_seconds"].samples
    text = metrics.body.decode()
    assert 'process_cpu_seconds_total{proc="front"} ' in text and 'process_cpu_seconds_total{proc="engine"} ' in text
    assert sorted(sample.labels["proc"] for sample in cpu) == ["engine", "front"]
    assert all(sample.value > 0 for sample in cpu)
    # the log: every line says which process speaks, and both do
    speakers = Counter(LOG_LINE.findall(log_of(server)))
    assert set(speakers) == {"front", "engine"}, speakers
    assert ended(engine) and ended(spawner)

    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", TS * 1000): 1, ("NDX", "gex_one", (TS + 1) * 1000): 1}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", TS * 1000): 4,
                                                  ("NDX", "gex_one", (TS + 1) * 1000): 2}
        assert db.execute("SELECT ticker, endpoint, timestamp, mpos_vol, mneg_oi, net_gex_oi FROM gex_majors"
                          ).fetchall() == [("SPX", "gex_full", TS * 1000, 7135.0, 6900.0, 51521.1)]
        assert db.execute("SELECT ticker, timestamp, current_strike, current_value, thirty_value FROM gex_maxchange"
                          ).fetchall() == [("SPX", TS * 1000, 7140.0, 170979.7, 1131150.4)]
        assert db.execute("SELECT topic, event, payload FROM universal_webhooks ORDER BY payload").fetchall() == [
            ("news", "new_msg", json.dumps({"title": f"news {i}"})) for i in range(3)]


# ---- SIGKILL of the engine at random moments under load ----

CRASH_SEED = 20261203  # the same moments on every run (CI); CRASH_SEED=random in the environment for new ones
KILLS = 12
LOAD_STRIKES = 10
# Everything that writes runs while the kills come: segments archived every fraction of a second, the lake
# exported as often; acks waiting for ingest give up before the next kill comes.
BUSY = ("--journal-segment-seconds", "0.3", "--archive-interval-s", "0.1", "--lake-export-interval", "0.3",
        "--ack-ingested-timeout-s", "10", "--history-allowed-hosts", "127.0.0.1",
        "--history-allowed-networks", "127.0.0.1/32")
HISTORY_TICKER, HISTORY_SNAPSHOTS = "QQQ", 3_000  # imported by the engines while they are killed



AWAY = re.compile(r"the database is not available now: (the engine is not running \(was killed by SIGKILL\)"
                  r"|the engine is starting|the engine did not answer \(.+\); retry shortly)")


def read_while_down(server, engine):
    """A read through the front once the killed engine has ended: (status, Retry-After, error)."""
    eventually(lambda: ended(engine), f"the killed engine {engine} ended", timeout=10, step=0.002)
    reply = server.get("/api/snapshots?ticker=SPX&limit=1")
    return reply.status, reply.headers.get("Retry-After"), reply.json().get("error")


@pytest.mark.slow
def test_every_acknowledged_write_survives_engine_sigkills_at_random_moments_under_load(start_server, tmp_path):
    seed, rng = crash_moments("engine SIGKILL loop", CRASH_SEED)
    with FileServer(history_folder(tmp_path / "files", HISTORY_SNAPSHOTS, HISTORY_TICKER)) as origin:
        server = start_server(None, *SPLIT, *BUSY)
        engine = engine_up(server)
        queued = queue_history(server, origin, HISTORY_TICKER)
        reads, acked_per_engine = [], []
        with Poster(("SPX", "NDX"), LOAD_STRIKES, server.url, ingested_every=5) as load:
            for _ in range(KILLS):
                before = len(load.acked)
                time.sleep(rng.uniform(0.05, 1.0))  # a random moment of this engine's life, under load
                os.kill(engine, signal.SIGKILL)
                reads.append(read_while_down(server, engine))
                engine = engine_up(server, not_pid=engine)
                acked_per_engine.append(len(load.acked) - before)
            time.sleep(rng.uniform(0.2, 0.5))  # the last engine takes writes too
        job = wait_job(server, queued.json()["id"], timeout=60)
        health = server.get("/health").json()
        journaled = health["journal"]["next_seq"] - 1
        engine_seen = all_ingested(server, journaled)
        assert server.stop() == 0
    print(f"acknowledged per engine: {acked_per_engine}; sent {len(load.sent)}, acknowledged {len(load.acked)}; "
          f"ack=ingested duplicates {dict(load.ingested_duplicates)}; refused {dict(load.refused)}")

    # a read while no engine runs: 503, Retry-After; the reason, whether the front already heard of the end or not
    print(f"reads while the engine was down: {reads}")
    assert [(status, retry_after) for status, retry_after, _ in reads] == [(503, "1")] * KILLS, f"seed {seed}"
    assert all(AWAY.fullmatch(error) for _, _, error in reads), f"seed {seed}: {reads}"
    assert sum(1 for n in acked_per_engine if n) >= KILLS // 2, f"seed {seed}: the load hardly ran"
    # a distinct key is never a duplicate; None: ingested by an engine killed before it said so
    assert set(load.ingested_duplicates) <= {False, None} and load.ingested_duplicates[False], f"seed {seed}"
    # only an ack=ingested may be refused, and only after journaling (no engine ingested it in time)
    assert set(load.refused) <= {(503, "ingested", "journaled")} and not load.cut, f"seed {seed}"
    assert (engine_seen["restarts"], engine_seen["last_exit"], engine_seen["fatal"]) == (
        KILLS, "was killed by SIGKILL", None), f"seed {seed}"
    settled = engine_seen["settled"]
    assert (settled["duplicates"], settled["quarantined"]) == (0, 0), f"seed {seed}"
    assert settled["stored"] + engine_seen["untold"] == journaled, f"seed {seed}: a seq settled twice or never"
    assert log_of(server).count("the engine was killed by SIGKILL") == KILLS, f"seed {seed}"
    assert ended(engine)

    with server.db() as db:
        snapshots = stored_keys(db)
        strikes = stored_keys(db, "gex_strikes")
        position = db.execute("SELECT seq FROM gexsrv_ingest").fetchone()[0]
        quarantined = db.execute("SELECT count(*) FROM gexsrv_quarantine").fetchone()[0]
    live = {key: n for key, n in snapshots.items() if key[0] != HISTORY_TICKER}
    imported = {key for key in snapshots if key[0] == HISTORY_TICKER}
    assert (queued.status, job["status"], job["snapshots_imported"]) == (202, "completed", HISTORY_SNAPSHOTS), job
    assert not load.acked - live.keys(), f"seed {seed}: acknowledged, then lost"
    assert set(snapshots.values()) == {1}, f"seed {seed}: stored twice"
    assert live.keys() <= load.sent, f"seed {seed}: stored, never sent"
    assert len(live) == journaled == position, f"seed {seed}: journaled, not stored"
    assert len(imported) == HISTORY_SNAPSHOTS, f"seed {seed}: history snapshots lost"
    assert strikes == {key: LOAD_STRIKES if key in live else 20 for key in snapshots}, (
        f"seed {seed}: strike rows lost or doubled")
    assert quarantined == 0
    checked = run_gexsrv(["validate", "--data-dir", str(server.data_dir)], timeout=120)
    assert checked.returncode == 0, checked.stdout + checked.stderr


# ---- SIGKILL of the front, of both ----

@pytest.mark.slow
def test_a_sigkilled_front_takes_spawner_and_engine_with_it_and_a_restart_stores_every_key_once(start_server):
    now = int(time.time())  # keys inside the duplicate horizon: a restart loads them into the front's index
    server = start_server(None, *SPLIT, *NO_INGEST)
    front, spawner, engine = tree(server)
    [engine_socket] = unix_sockets(engine)
    keys = post_keys(server, range(now - 120, now - 100))
    server.proc.kill()  # the front alone: Server.stop(SIGKILL) kills the whole tree
    assert server.proc.wait(timeout=20) == -signal.SIGKILL
    server.stop()
    # the engine sees the front's end close, ingests what is durable and exits; the spawner sees it too
    eventually(lambda: ended(engine) and ended(spawner), "the engine and the spawner ended after the front")
    # the front that would have removed the engine's socket and its private folder is gone: the engine did
    assert engine_socket.endswith("/engine.sock") and not os.path.exists(os.path.dirname(engine_socket))
    with server.db() as db:  # the engine ended: its lock with it
        assert stored_keys(db) == {key: 1 for key in keys}

    server.start()
    restarted = engine_up(server)  # it has loaded the stored keys into the front's duplicate index then
    again = server.post("/gex", snapshot(timestamp=now - 117, n_strikes=3))
    keys += post_keys(server, range(now - 100, now - 95))
    assert server.stop() == 0
    assert restarted != engine and (again.status, again.json()["duplicate"]) == (202, True)
    with server.db() as db:
        assert stored_keys(db) == {key: 1 for key in keys}
        assert stored_keys(db, "gex_strikes") == {key: 3 for key in keys}


@pytest.mark.slow
def test_front_and_engine_sigkilled_together_a_restart_replays_every_key_once(start_server):
    server = start_server(None, *SPLIT, *NO_INGEST)
    front, spawner, engine = tree(server)
    keys = post_keys(server, range(TS, TS + 20))
    server.stop(signal.SIGKILL)  # the whole tree, each process stopped first: no engine ingests or is forked again
    eventually(lambda: ended(engine) and ended(spawner), "the engine and the spawner ended")
    with server.db() as db:  # the engine ended: its lock with it
        assert stored_keys(db) == {}  # nothing ingested: the journal alone holds them

    server.start()
    replayed = all_ingested(server, 20)
    keys += post_keys(server, range(TS + 20, TS + 25))
    assert server.stop() == 0
    assert (replayed["position"]["seq"], replayed["settled"], replayed["untold"]) == (
        20, {"stored": 0, "duplicates": 0, "quarantined": 0}, 0)
    with server.db() as db:
        assert stored_keys(db) == {key: 1 for key in keys}
        assert stored_keys(db, "gex_strikes") == {key: 3 for key in keys}
        assert db.execute("SELECT seq FROM gexsrv_ingest").fetchall() == [(25,)]


# ---- SIGTERM ----

def test_sigterm_stops_both_after_the_engine_ingested_every_acknowledged_row(start_server):
    server = start_server(None, *SPLIT, *NO_INGEST)
    front, spawner, engine = tree(server)
    keys = post_keys(server, range(TS, TS + 20)) + post_keys(server, range(TS, TS + 5), ticker="NDX")
    for pid in (engine, spawner):  # the front's to take: a terminal's Ctrl-C signals the whole process group
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
    answered = sql(server, "SELECT count(*) FROM gex_snapshots")  # by the engine that took both signals
    keys += post_keys(server, [TS + 20])
    seen = processes(server)["engine"]
    running = (alive(engine), alive(spawner))
    assert server.stop() == 0
    assert (answered, running) == ([[0]], (True, True))  # none ingested yet, and both there
    assert (seen["pid"], seen["restarts"], seen["records_waiting"]) == (engine, 0, 26)
    # the front waited for both: neither runs, nor is left a zombie
    assert (process_state(engine), process_state(spawner)) == ("gone", "gone")
    lines = log_of(server).splitlines()
    assert any(" engine INFO gexsrv.engine: the front stops: ingesting what is durable, then exiting" in line
               for line in lines)
    assert lines[-1].endswith(" front INFO gexsrv: stopped"), lines[-3:]
    with server.db() as db:
        assert stored_keys(db) == {key: 1 for key in keys}
        assert stored_keys(db, "gex_strikes") == {key: 3 for key in keys}


# ---- the database: damaged, held ----

@pytest.mark.slow
def test_a_damaged_database_stops_the_server_with_code_2_and_is_left_as_it_was(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    garbage = bytes(random.Random(7).randrange(256) for _ in range(64 * 1024))
    (data / "gex_data.db").write_bytes(garbage)
    server = Server(data, *SPLIT)
    try:
        server.start()  # the front may listen before the engine says it cannot run
    except RuntimeError:
        pass
    code = server.proc.wait(timeout=30)
    server.stop()
    log = log_of(server)
    assert code == 2, log
    assert f"gexsrv: cannot start: {data / 'gex_data.db'} is not a readable DuckDB database (" in log
    assert "Traceback" not in log
    assert (data / "gex_data.db").read_bytes() == garbage
    engines = [int(pid) for pid in re.findall(r"engine started \(pid (\d+)\)", log)]
    assert len(engines) == 1 and ended(engines[0]), log  # not started again: it cannot run


@pytest.mark.slow
def test_while_another_process_holds_the_database_writes_are_journaled_and_land_once_it_lets_go(start_server,
                                                                                                 tmp_path):
    data = tmp_path / "data"
    with database_held(data / "gex_data.db"):
        server = start_server(data, *SPLIT, "--ack-ingested-timeout-s", "0.5")
        health = eventually(lambda: (h := server.get("/health").json())["storage"]["state"] == "failing" and h,
                            "the engine failing to open the held database")
        journaled = server.post("/gex", snapshot())
        waited = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 1))
        read = server.get("/api/snapshots?ticker=SPX")
    assert health["status"] == "degraded" and "lock" in health["storage"]["error"], health
    assert processes(server)["engine"]["restarts"] == 0  # the engine runs, waiting for the database
    assert journaled.status == 202
    assert waited.status == 503 and waited.headers["Retry-After"] == "1"
    assert waited.json()["outcome"] == "journaled" and "not ingested within 0.5 s" in waited.json()["error"]
    assert read.status == 503 and read.headers["Retry-After"] == "1", read.body

    # the holder let go: the engine opens the database and ingests the journal, without a restart
    all_ingested(server, 2)
    assert eventually(lambda: server.get("/health").json()["status"] == "ok", "health ok")
    assert sql(server, "SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1") == [[TS], [TS + 1]]
    assert server.stop() == 0
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", TS * 1000): 1, ("SPX", "gex_zero", (TS + 1) * 1000): 1}



@pytest.mark.slow
def test_the_front_holds_none_of_the_bodies_that_wait_for_a_held_database(start_server, tmp_path):
    """The engine reads what waits from the journal: the front that journaled it keeps none of it in memory. It
    kept every body waiting, past ingest_memory_mb, up to the backlog's bounds (GiBs): 60 MB of the 52 MB posted here."""
    data = tmp_path / "data"
    bodies = [json.dumps(snapshot(timestamp=TS + i, n_strikes=15_000)).encode() for i in range(60)]
    with database_held(data / "gex_data.db"):
        server = start_server(data, *SPLIT, "--max-strikes", "15000", "--ingest-memory-mb", "0")
        before = procstat.memory_of(server.proc.pid)["rss_mb"]
        assert [server.post("/gex", body).status for body in bodies] == [202] * 60
        grown = procstat.memory_of(server.proc.pid)["rss_mb"] - before
        waiting = processes(server)["engine"]["records_waiting"]
    posted = sum(map(len, bodies)) / 2**20
    assert waiting == 60 and grown < posted / 2, f"the front grew by {grown:.0f} MB of {posted:.0f} MB posted"


# ---- a history import in the engine ----

def test_a_history_import_runs_in_the_engine_and_its_keys_reach_the_fronts_duplicate_index(hist, files):
    now = int(time.time())
    recent = [snapshot(timestamp=now - 300 + i, n_strikes=2) for i in range(20)]  # inside the 900 s horizon
    (files.folder / "2026-01-05_SPX_classic_gex_zero.json").write_text(json.dumps(recent))
    write_history(files.folder / HISTORY_NAME)  # 2025-10-21: long before the horizon
    server = hist(*SPLIT)
    engine_up(server)  # until then, passed-on requests get 503
    jobs = []
    for name in ("2026-01-05_SPX_classic_gex_zero.json", HISTORY_NAME):
        queued = server.post("/gex_history_url", {"url": f"{files.url}/files/{name}"})
        assert queued.status == 202, queued.body
        jobs.append(wait_job(server, queued.json()["id"]))
    old = json.loads((files.folder / HISTORY_NAME).read_text())[5]["timestamp"]
    by_source = sql(server, "SELECT source, count(*) FROM gex_snapshots GROUP BY ALL ORDER BY ALL")
    answers = {}
    for what, ts in {"imported, recent": recent[7]["timestamp"], "imported, old": old,
                     "newer than all": now + 1}.items():
        reply = server.post("/gex", snapshot(timestamp=ts, n_strikes=2))
        assert reply.status == 202, reply.body
        answers[what] = reply.json()["duplicate"]
    assert server.stop() == 0

    assert [(job["status"], job["snapshots_imported"], job["rows_imported"]) for job in jobs] == [
        ("completed", 20, 40), ("completed", HISTORY_SNAPS, HISTORY_SNAPS * HISTORY_STRIKES)]
    assert answers == {"imported, recent": True, "imported, old": None, "newer than all": False}
    assert by_source == [["history:1", 20], ["history:2", HISTORY_SNAPS]]
    with server.db() as db:
        assert db.execute("SELECT source, count(*), count(DISTINCT timestamp) FROM gex_snapshots GROUP BY ALL "
                          "ORDER BY ALL").fetchall() == [
            ("history:1", 20, 20), ("history:2", HISTORY_SNAPS, HISTORY_SNAPS), ("live", 1, 1)]
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone() == (40 + HISTORY_SNAPS * HISTORY_STRIKES + 2,)


# ---- an engine that does not answer ----

HEALTH_WITHIN_S = 5  # a liveness probe's patience


def get_within(server, path, timeout):
    """GET path, giving up after timeout seconds: (status, JSON body), or None when no reply came in time."""
    host, port = urllib.parse.urlsplit(server.url).netloc.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": "localhost"})
        reply = conn.getresponse()
        return reply.status, json.loads(reply.read())
    except TimeoutError:
        return None
    finally:
        conn.close()


def test_an_engine_that_does_not_answer_holds_up_neither_writes_nor_health(start_server):
    """A stuck engine (here SIGSTOPped: alive, its socket open, answering nothing): the front journals writes alone
    and says in /health that the engine does not answer, as a liveness probe needs, rather than wait for it."""
    server = start_server(None, *SPLIT)
    engine = engine_up(server)
    os.kill(engine, signal.SIGSTOP)
    try:
        write = server.post("/gex", snapshot())
        health = get_within(server, "/health", HEALTH_WITHIN_S)
    finally:
        os.kill(engine, signal.SIGCONT)
    all_ingested(server, 1)
    assert server.stop() == 0
    assert write.status == 202
    assert health is not None, f"/health gave no reply within {HEALTH_WITHIN_S} s while the engine did not answer"
    status, found = health
    assert (status, found["status"], found["storage"]["state"], found["processes"]["engine"]["pid"]) == (
        200, "degraded", "unavailable", engine)
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", TS * 1000): 1}


ENDLESS = "SELECT count(*) FROM range(1000000000) a, range(1000000) b"  # runs for minutes unless stopped


@pytest.mark.slow
def test_an_engine_killed_while_answering_a_read_gets_503_with_retry_after(start_server):
    """proxy.py: "when it ends before it answers, the reply is 503 with Retry-After"."""
    server = start_server(None, *SPLIT, "--sql-timeout-ms", "60000")
    engine = engine_up(server)
    replies = []
    reading = threading.Thread(target=lambda: replies.append(
        server.get("/api/sql?" + urllib.parse.urlencode({"q": ENDLESS}))))
    used = procstat.process_cpu_seconds(engine)
    reading.start()
    eventually(lambda: procstat.process_cpu_seconds(engine) > used + 0.3, "the engine running the query")
    os.kill(engine, signal.SIGKILL)
    reading.join(timeout=30)
    engine_up(server, not_pid=engine)
    assert server.stop() == 0
    (reply,) = replies
    assert (reply.status, reply.headers.get("Retry-After")) == (503, "1"), reply.body
    assert reply.json()["error"].startswith("the database is not available now: the engine did not answer ("), (
        reply.body)
    assert "Traceback" not in log_of(server)


# ---- replies without a body, passed on ----

def answers_without_body(server):
    """What the front passes back of the engine's replies that carry no body: (status, the headers that matter)."""
    assert server.post("/gex?ack=ingested", snapshot()).status == 202
    etag = server.get("/api/snapshots?ticker=SPX").headers["Etag"]
    replies = {
        "revalidated": server.request("GET", "/api/snapshots?ticker=SPX", headers={"If-None-Match": etag}),
        "preflight": server.request("OPTIONS", "/api/sql", headers={"Origin": "https://www.gexbot.com"}),
        "preflight, unknown path": server.request("OPTIONS", "/nowhere/"),
    }
    shown = ("Etag", "Access-Control-Allow-Origin", "Access-Control-Allow-Methods")
    return {what: (reply.status, {name: reply.headers.get(name) for name in shown if name in reply.headers},
                   reply.body) for what, reply in replies.items()}, etag


def test_a_revalidation_and_preflights_get_the_replies_one_process_gives(start_server, tmp_path):
    """304 (If-None-Match: the status page's fetches revalidate what they cached) and 204 (CORS preflights) carry no
    body: the front must pass them back as they are."""
    one, one_etag = answers_without_body(start_server(tmp_path / "one"))
    two, two_etag = answers_without_body(start_server(tmp_path / "two", *SPLIT))
    assert one["revalidated"] == (304, {"Etag": one_etag}, b"")
    assert two == {**one, "revalidated": (304, {"Etag": two_etag}, b"")}



def bodiless_refusals(server):
    """The replies to POST, PUT and PATCH without a body on a route that takes none, each sent 10 times."""
    return Counter((method, reply.status, reply.body) for method in ("POST", "PUT", "PATCH") for _ in range(10)
                   for reply in [server.request(method, "/api/days")])


def test_a_bodiless_post_put_or_patch_on_a_read_route_gets_the_405_one_process_gives(start_server, tmp_path):
    """Tornado's client sent such a request on to the engine chunked: the engine's 405 and close came before the
    body's last chunk, whose write then failed (EPIPE), and the front answered 503 (schemathesis met it)."""
    one = bodiless_refusals(start_server(tmp_path / "one", "--processes", "1"))
    assert one == {(method, 405, f'{{"status":"error","error":"{method} is not answered on /api/days"}}'.encode()): 10
                   for method in ("POST", "PUT", "PATCH")}
    assert bodiless_refusals(start_server(tmp_path / "two", *SPLIT)) == one


# ---- the spawner gone ----

def test_a_spawner_that_died_is_replaced_and_the_next_engine_ingests_what_was_journaled(start_server):
    """The front hears of an engine's end from the spawner (Exited); with the spawner gone (killed: it is a process
    like any other) the engine's channel closing is all there is to hear. The front cannot fork a new spawner (it
    runs threads): it starts one in a fresh interpreter, whose engine takes up what the front journaled meanwhile.
    Before, no engine ever ran again, and the front stayed degraded until a restart."""
    server = start_server(None, *SPLIT)
    front, spawner, engine = tree(server)
    os.kill(spawner, signal.SIGKILL)
    eventually(lambda: ended(spawner), "the spawner ended")
    assert server.post("/gex", snapshot("SPX", TS)).status == 202  # the front journals on, the engine ingests
    os.kill(engine, signal.SIGKILL)
    eventually(lambda: ended(engine), "the engine ended")
    assert server.post("/gex", snapshot("SPX", TS + 60)).status == 202  # journaled while no engine runs
    fresh = engine_up(server, not_pid=engine, timeout=60)
    assert parent(fresh) not in (spawner, front) and parent(parent(fresh)) == front
    stored = server.post("/gex?ack=ingested", snapshot("SPX", TS + 120))
    assert (stored.status, stored.json()["duplicate"]) == (202, False)
    health = server.get("/health").json()
    assert (health["status"], health["processes"]["engine"]["restarts"]) == ("ok", 1)
    assert server.stop() == 0
    assert "the engine's spawner had exited: a new one runs" in server.log_path.read_text()
    with server.db() as db:
        assert stored_keys(db) == {("SPX", "gex_zero", (TS + offset) * 1000): 1 for offset in (0, 60, 120)}


# ---- ack=ingested ----

def test_a_request_waiting_for_ingest_starts_it_in_the_engine_rather_than_waiting_out_the_interval(start_server):
    """As in one process (test_crash): with ack=ingested clients only, ingests must follow them, or each client
    gets one reply per ingest_interval_ms. The waiters are the front's; the engine must hear of them."""
    server = start_server(None, *SPLIT, "--ingest-interval-ms", "600000", "--ack-ingested-timeout-s", "4")
    engine_up(server)
    replies = [server.post("/gex?ack=ingested", snapshot(timestamp=TS + i, n_strikes=2)) for i in range(2)]
    assert [r.status for r in replies] == [202] * 2, [r.body for r in replies]
    assert [r.json()["duplicate"] for r in replies] == [False] * 2
    assert processes(server)["engine"]["records_waiting"] == 0


# ---- /metrics while the engine is down ----

def scrape(server):
    """(name, labels) -> value of every sample, and the proc labels of process_cpu_seconds' samples."""
    reply = server.request("GET", "/metrics", headers={"Accept": "text/plain"})
    assert reply.status == 200
    families = list(text_string_to_metric_families(reply.body.decode()))
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in families for sample in family.samples}
    cpu = [sample.labels for family in families if family.name == "process_cpu_seconds" for sample in family.samples]
    return samples, sorted(tuple(sorted(labels.items())) for labels in cpu)


def engine_state(samples):
    states = {labels[0][1]: value for (name, labels), value in samples.items() if name == "gexsrv_storage_state"}
    return (samples[("gexsrv_engine_up", ())], samples[("gexsrv_storage_writable", ())],
            [state for state, value in states.items() if value == 1])


def test_metrics_say_the_database_is_unavailable_while_the_engine_is_down_and_keep_the_fronts_labels(start_server):
    """A series is its name and labels: process_cpu_seconds_total{proc="front"} must not turn into another series,
    process_cpu_seconds_total, each time the engine is restarted. And an alert on gexsrv_storage_writable == 0 must
    fire while no engine answers: the series was absent then."""
    server = start_server(None, *SPLIT)
    engine = engine_up(server)
    spawner = parent(engine)
    before, cpu_before = scrape(server)
    os.kill(spawner, signal.SIGSTOP)  # no engine is forked again until it goes on: the scrape sees none
    try:
        os.kill(engine, signal.SIGKILL)
        eventually(lambda: processes(server)["engine"]["uptime_s"] is None, "the front seeing the engine gone")
        down, cpu_down = scrape(server)
    finally:
        os.kill(spawner, signal.SIGCONT)
    engine_up(server, not_pid=engine)
    after, cpu_after = scrape(server)
    assert server.stop() == 0
    assert cpu_before == cpu_after == [(("proc", "engine"),), (("proc", "front"),)]
    assert cpu_down == [(("proc", "front"),)]
    assert [engine_state(before), engine_state(down), engine_state(after)] == [
        (1, 1, ["writable"]), (0, 0, ["unavailable"]), (1, 1, ["writable"])]
    restarts = ("gexsrv_engine_restarts_total", ())
    assert (before[restarts], after[restarts]) == (0, 1)


def test_metrics_behind_a_token_hold_the_engines_families(start_server):
    """The front asks the engine for its families with the token a scrape must bring: without it the engine's 401
    left every storage, ingest and history family out of /metrics."""
    server = start_server(None, *SPLIT, "--auth-token", "s3cret")
    engine_up(server)
    bearer = {"Authorization": "Bearer s3cret"}
    reply = server.request("POST", "/gex?ack=ingested", json.dumps(snapshot("SPX", TS, n_strikes=4)).encode(),
                           {**bearer, "Content-Type": "application/json"})
    assert reply.status == 202, reply.body
    scraped = server.request("GET", "/metrics", headers={**bearer, "Accept": "text/plain"})
    assert scraped.status == 200
    samples = {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
               for family in text_string_to_metric_families(scraped.body.decode()) for sample in family.samples}
    assert samples[("gexsrv_rows_stored_total", (("table", "gex_strikes"),))] == 4
    assert samples[("gexsrv_storage_writable", ())] == 1
    assert server.request("GET", "/metrics").status == 401


def test_the_status_page_sees_both_processes_health_and_warnings(start_server):
    """GET /api/status is the engine's, with the front's health sections and the warnings the front logged (a
    refused write is logged by the front only). A read the engine refuses is logged once, by the front, which knows
    the client: the engine's line said 0.0.0.0, beside the front's."""
    server = start_server(None, *SPLIT)
    engine_up(server)
    assert server.post("/gex", {"ticker": "SPX"}).status == 400
    assert server.get("/api/latest?ticker=").status == 400
    status = server.get("/api/status").json()
    assert set(status["health"]["processes"]) == {"front", "engine"}
    assert status["health"]["journal"]["next_seq"] == 1 and status["health"]["storage"]["state"] == "writable"
    refused = [error for error in status["errors"] if error["message"].startswith("400 POST /gex")]
    assert [error["logger"] for error in refused] == ["tornado.access"]
    assert [error["at"] for error in status["errors"]] == sorted((e["at"] for e in status["errors"]), reverse=True)
    assert server.stop() == 0
    said = re.findall(r"^\S+ \S+ (\w+) WARNING tornado\.access: 400 GET /api/latest\?ticker= \(([^)]*)\)",
                      server.log_path.read_text(), re.MULTILINE)
    assert said == [("front", "127.0.0.1")]
