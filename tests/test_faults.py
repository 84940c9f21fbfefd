"""Faults, with real processes: a database held by another process and then let go, start-up errors said in one
sentence, two servers on one data dir or one port."""

import os
import subprocess
import sys
import time

import pytest

from filesrv import FileServer
from helpers import Server, snapshot

TS = 1777492800


def hold_database(path):
    """Another process holding the DuckDB file's lock, until killed."""
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, time\n"
                               f"con = duckdb.connect({str(path)!r})\n"
                               "print('locked', flush=True)\ntime.sleep(120)"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def release(holder):
    holder.kill()
    holder.wait()
    holder.stdout.close()


def wait_health(server, done, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        health = server.get("/health").json()
        if done(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def test_a_database_held_by_another_process_is_taken_up_again_without_a_restart(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with FileServer(tmp_path) as hooks:
        holder = hold_database(data / "gex_data.db")
        try:
            server = start_server(data, "--alert-webhook-url", f"{hooks.url}/hook")
            held = server.get("/health").json()
            journaled = [server.post("/gex", snapshot(timestamp=TS + i, n_strikes=3)) for i in range(3)]
            history = server.post("/gex_history_url", {"url": "https://hist.gex.bot/2025-10-21_SPX_classic_gex_zero.json"})
            listing = server.get("/gex_history_url")
        finally:
            release(holder)
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


def test_a_data_dir_that_cannot_be_used_is_named(tmp_path):
    (tmp_path / "data").write_text("a file where the data dir should be")
    status, output = start_failure(tmp_path)
    assert status == 2 and f"the data dir {tmp_path / 'data'} cannot be written" in output
    assert "Traceback" not in output


def test_with_debug_the_start_up_error_shows_its_traceback(start_server, tmp_path):
    (tmp_path / "data").write_text("a file")
    status, output = start_failure(tmp_path, "--debug")
    assert status != 0 and "Traceback" in output and "StartupError" in output
    assert os.path.isfile(tmp_path / "data")
