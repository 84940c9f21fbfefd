"""Faults, with real processes: a database held by another process and then let go, a full disk, start-up errors
said in one sentence, two servers on one data dir or one port, stalled bodies, SIGTERM under load."""

import datetime as dt
import itertools
import json
import os
import signal
import socket
import subprocess
import threading
import time

import duckdb
import pytest

from filesrv import FileServer
from forkserver import popen_gexsrv
from helpers import TS, Server, database_held, eventually, snapshot, wait_job
from make_history_file import snapshots


def wait_health(server, done, timeout=30):
    """/health once done(health) holds."""
    def health_if_done():
        health = server.get("/health").json()
        return health if done(health) else None

    return eventually(health_if_done, "/health as waited for", timeout)


def test_a_database_held_by_another_process_is_taken_up_again_without_a_restart(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with FileServer(tmp_path) as hooks:
        with database_held(data / "gex_data.db"):
            server = start_server(data, "--alert-webhook-url", f"{hooks.url}/hook", "--history-allowed-hosts",
                                  "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32")
            held = server.get("/health").json()
            journaled = [server.post("/gex", snapshot(timestamp=TS + i, n_strikes=3)) for i in range(3)]
            history = server.post("/gex_history_url",
                                  {"url": f"{hooks.url}/files/2025-10-21_SPX_classic_gex_zero.json"})
            listing = server.get("/gex_history_url")
        recovered = wait_health(server, lambda h: h["status"] == "ok")
        stored = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 3, n_strikes=3))
        alerts = [hook["text"] for hook in hooks.hooks]
        server.stop()
    assert held["status"] == "degraded" and held["storage"]["cause"] == "locked"
    assert held["storage"]["incident_since"] and held["storage"]["next_retry_at"]
    assert [r.status for r in journaled] == [202] * 3
    assert (history.status, listing.status) == (503, 503) and history.headers["Retry-After"] == "1"
    assert "the database is not available now" in history.json()["error"]
    assert recovered["status"] == "ok" and recovered["storage"]["incident_since"] is None
    assert recovered["ingest"]["position"]["seq"] == 3 and stored.status == 202
    assert len(alerts) == 2, alerts
    assert "storage incident" in alerts[0] and "lock" in alerts[0]
    assert "storage recovered" in alerts[1] and " s" in alerts[1]
    with server.db() as db:
        assert db.execute("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1").fetchall() == [
            (TS + i,) for i in range(4)]
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone() == (12,)


def start_failure(tmp_path, *flags):
    """(exit status, output) of a server that must not start."""
    tmp_path.mkdir(exist_ok=True)
    server = Server(tmp_path / "data", *flags)
    with pytest.raises(RuntimeError) as stopped:
        server.start()
    server.log.close()
    return server.proc.returncode, str(stopped.value)


def test_a_data_dir_that_is_a_file_is_said_so(tmp_path):
    """It was reported as a folder that cannot be written."""
    (tmp_path / "data").write_text("not a folder")
    status, output = start_failure(tmp_path)
    assert status == 2 and "Traceback" not in output
    assert (f"gexsrv: cannot start: the data dir {tmp_path / 'data'} is a file, not a folder; choose another with "
            "--data-dir") in output
    assert (tmp_path / "data").read_text() == "not a folder"


def test_a_port_in_use_stops_the_start_with_one_sentence(start_server, tmp_path):
    first = start_server()
    port = first.url.rsplit(":", 1)[1]
    status, output = start_failure(tmp_path / "second", "--port", port)
    assert status == 2
    assert f"cannot start: port {port} on 127.0.0.1 is already in use by another program" in output
    assert "Traceback" not in output


def test_a_second_server_on_the_same_data_dir_is_refused(start_server, tmp_path):
    first = start_server()
    status, output = start_failure(tmp_path)
    assert status == 2 and "is in use by another gexsrv (pid" in output and "Traceback" not in output
    assert first.post("/gex", snapshot()).status == 202  # the first one goes on untouched


def test_a_damaged_database_is_left_as_it_is_and_named(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "gex_data.db").write_bytes(b"not a database" * 100)
    status, output = start_failure(tmp_path)
    assert status == 2 and "is not a readable DuckDB database" in output and "Traceback" not in output
    assert (data / "gex_data.db").read_bytes() == b"not a database" * 100


def test_with_debug_the_start_up_error_shows_its_traceback(start_server, tmp_path):
    (tmp_path / "data").write_text("a file")
    status, output = start_failure(tmp_path, "--debug")
    assert status != 0 and "Traceback" in output and "StartupError" in output
    assert os.path.isfile(tmp_path / "data")


@pytest.fixture
def small_disk(tmp_path):
    """A 40 MiB tmpfs of the test's own (root only), with a filler file that can be deleted to free space."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"a size-limited tmpfs cannot be mounted here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(path, megabytes):
    with open(path, "wb") as f:
        f.write(b"\0" * (megabytes << 20))


def retry_until_stored(server, payload, timeout=60):
    """The first reply other than 503, posting again now and then as a client retries."""
    def stored():
        reply = server.post("/gex?ack=ingested", payload)
        return reply if reply.status != 503 else None

    return eventually(stored, "a post stored again after the disk filled", timeout, step=0.5)


@pytest.mark.slow
def test_a_full_disk_loses_nothing_acknowledged_and_service_resumes_when_space_returns(small_disk, tmp_path):
    """The journal refuses writes (503, not stored) and /health says so; DuckDB's checkpoint may fail fatally
    too, and the Parquet export; all recover, without a restart, once space is freed."""
    fill(small_disk / "filler", 34)
    server = Server(small_disk / "data", "--duckdb-checkpoint-mb", "1", "--journal-segment-mb", "1",
                    "--ingest-interval-ms", "50", "--lake-export-interval", "0.5")
    server.log_path = tmp_path / "server.log"
    server.start()
    try:
        acknowledged, statuses, ts = [], [], TS
        while len(statuses) < 2000 and not any(s == 503 for s in statuses[-20:]):
            reply = server.post("/gex", snapshot(timestamp=ts, n_strikes=200))
            statuses.append(reply.status)
            if reply.status == 202:
                acknowledged.append(ts)
            ts += 1
        full = wait_health(server, lambda h: h["status"] == "degraded", timeout=10)
        refusing = server.get("/metrics").body.decode()
        os.unlink(small_disk / "filler")
        after = retry_until_stored(server, snapshot(timestamp=ts, n_strikes=200))  # as a client retries a 503
        acknowledged.append(ts)
        recovered = wait_health(server, lambda h: h["status"] == "ok", timeout=60)
    finally:
        server.stop()
    assert set(statuses) <= {202, 503} and 503 in statuses, sorted(set(statuses))
    assert full["status"] == "degraded" and full["journal"]["refusing"], full
    assert "gexsrv_journal_refusing 1.0" in refusing
    assert recovered["status"] == "ok" and after.status == 202, (recovered, after.body)
    with server.db() as db:
        stored = [t for (t,) in db.execute("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1").fetchall()]
        strikes = db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
    assert stored == sorted(acknowledged), "every acknowledged snapshot, once, and nothing else"
    assert strikes == 200 * len(acknowledged)
    with duckdb.connect() as db:  # the export failed while the disk was full, and caught up after
        assert db.execute("SELECT count(*), count(DISTINCT timestamp) FROM read_parquet(?)",
                          [str(server.data_dir / "parquet/gexbot/**/*.strikes.parquet")]).fetchone() == (
            strikes, len(acknowledged))


@pytest.mark.slow
def test_a_history_download_onto_a_full_disk_waits_and_completes_when_space_returns(small_disk, tmp_path):
    """A full disk is not the job's fault: it stays pending (not failed) and is imported once space is freed."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "day.json").write_text(json.dumps(list(snapshots(600, 100, "SPX", dt.date(2025, 10, 21)))))
    with FileServer(tmp_path / "files") as files:
        server = Server(small_disk / "data", "--history-allowed-hosts", "127.0.0.1",
                        "--history-allowed-networks", "127.0.0.1/32")
        server.log_path = tmp_path / "server.log"
        server.start()
        try:
            stat = os.statvfs(small_disk)
            fill(small_disk / "filler", (stat.f_bavail * stat.f_frsize >> 20) - 1)  # 1 MiB left: the file is 3 MiB
            job = server.post("/gex_history_url", {"url": f"{files.url}/files/day.json", "ticker": "SPX",
                                                   "endpoint": "gex_zero"}).json()
            waiting = wait_job(server, job["id"], 60, done=lambda j: "waiting for the disk" in (j["last_error"] or ""))
            os.unlink(small_disk / "filler")
            done = wait_job(server, job["id"], 60, done=lambda j: j["status"] in ("completed", "failed"))
        finally:
            server.stop()
    assert waiting["status"] in ("pending", "downloading") and "No space left" in waiting["last_error"], waiting
    assert (done["status"], done["snapshots_imported"], done["rows_imported"]) == ("completed", 600, 60_000), done
    with server.db() as db:
        assert db.execute("SELECT count(*), count(DISTINCT timestamp) FROM gex_snapshots").fetchone() == (600, 600)
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0] == 60_000


def send_part(url, length, sent):
    """A connection that announces a body of `length` bytes and sends only `sent` of them."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(f"POST /gex HTTP/1.1\r\nHost: localhost\r\nContent-Length: {length}\r\n\r\n".encode() + b" " * sent)
    return sock


def reply_status(sock, timeout=5):
    sock.settimeout(timeout)
    try:
        head = sock.recv(200)
    except socket.timeout:
        return None
    finally:
        sock.close()
    return int(head.split()[1]) if head else "closed"


def in_flight(server):
    return server.get("/health").json()["connections"]["bodies_in_flight_bytes"]


@pytest.mark.slow
def test_slow_and_stalled_bodies_are_cut_off_and_cannot_hold_the_servers_memory(start_server):
    server = start_server(None, "--bodies-in-flight-mb", "1", "--body-timeout-s", "1", "--max-strikes", "2000")
    stalled = [send_part(server.url, 400_000, 100) for _ in range(2)]
    eventually(lambda: in_flight(server) == 800_000, "both stalled bodies counted")
    refused = reply_status(send_part(server.url, 400_000, 100))
    small = server.post("/gex", snapshot())  # room left for a small one
    cut = [reply_status(sock, timeout=30) for sock in stalled]  # past the body timeout, they are cut off
    eventually(lambda: in_flight(server) == 0, "their room given back")
    after = [server.post("/gex", snapshot(timestamp=TS + i, n_strikes=2000)) for i in range(1, 3)]
    assert refused == 503 and small.status == 202
    assert all(status in ("closed", 400, 408) for status in cut), cut
    assert [r.status for r in after] == [202, 202]


@pytest.mark.slow
def test_sigterm_under_load_finishes_what_is_in_flight_and_loses_nothing_acknowledged(start_server):
    server = start_server(None, "--shutdown-grace-s", "10")
    acknowledged, statuses, stop = [], [], threading.Event()

    def load(worker):
        for i in itertools.count():
            ts = TS + worker * 100_000 + i
            try:
                reply = server.post("/gex", snapshot(timestamp=ts, n_strikes=50))
            except OSError:  # the server closed the connection: it stopped taking requests
                return
            statuses.append(reply.status)
            if reply.status == 202:
                acknowledged.append(ts)
            if stop.is_set():
                return

    threads = [threading.Thread(target=load, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    eventually(lambda: len(acknowledged) >= 50, "50 snapshots acknowledged under load")
    started = time.monotonic()
    status = server.stop(signal.SIGTERM)
    took = time.monotonic() - started
    stop.set()
    for thread in threads:
        thread.join()
    assert status == 0 and took < 10, (status, took)
    assert set(statuses) <= {202, 503} and len(acknowledged) >= 50
    with server.db() as db:  # without a restart: the shutdown ingested what it had journaled
        stored = [t for (t,) in db.execute("SELECT timestamp // 1000 FROM gex_snapshots").fetchall()]
    assert sorted(stored) == sorted(acknowledged)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("processes", ["1", "2"])
def test_sigterm_as_soon_as_the_port_accepts_stops_cleanly(tmp_path, processes):
    """The signal handlers are in place before the port is bound: a SIGTERM sent the moment a connection is
    accepted (before the server logged that it listens) is a clean stop, not the default action's death (-15)."""
    port = free_port()
    server = Server(tmp_path / "data", "--processes", processes)
    server.flags[1] = str(port)
    server.log = open(server.log_path, "a")
    server.proc = popen_gexsrv(server.flags, server.cwd, server.env, stdout=server.log, stderr=subprocess.STDOUT)
    eventually(lambda: accepts(port) or server.proc.poll() is not None, f"port {port} accepting", timeout=20,
               step=0.001)
    assert server.stop() == 0, server.log_path.read_text()
    assert "stopped" in server.log_path.read_text()
