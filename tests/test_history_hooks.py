"""The original's /gex_history_url hooks against a real gexsrv: DASHBOARD_URL (a fake dashboard on 127.0.0.1) and
HISTORY_DOWNLOAD_COMMAND (small Python scripts the server runs), checked through the API and in DuckDB."""

import contextlib
import gzip
import json
import shlex
import sys
import time
from pathlib import Path

import duckdb
import pytest

from filesrv import Dashboard, FileServer
from helpers import eventually, process_state, snapshot, wait_job
from helpers import TS as T0  # the history file's first snapshot time

NAME = "2026-04-29_SPX_classic_gex_zero.json"
SNAPS, STRIKES = 30, 5
LOCAL = ("--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32")
JOB_COLUMNS = "id, ticker, endpoint, status, attempts, last_error, snapshots_imported, rows_imported"


def history_bytes():
    return json.dumps([snapshot("SPX", T0 + i, STRIKES, spot=7000.0 + i) for i in range(SNAPS)]).encode()


def jobs_in_db(server):
    server.stop()
    with server.db() as db:
        return db.execute(f"SELECT {JOB_COLUMNS} FROM gex_history_queue ORDER BY id").fetchall()


def snapshot_count(server):
    with server.db() as db:
        return db.execute("SELECT count(*) FROM gex_snapshots").fetchone()[0]


@pytest.fixture
def dashboard():
    with contextlib.ExitStack() as made:
        yield lambda code: made.enter_context(Dashboard(code))


@pytest.fixture
def files(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    (folder / NAME).write_bytes(history_bytes())
    with FileServer(folder) as srv:
        yield srv


# ---- DASHBOARD_URL


@pytest.mark.parametrize("code, base", [(200, ""), (202, "/base/")], ids=["200", "202 under a base path"])
def test_a_dashboard_that_takes_the_request_gets_it_and_nothing_is_queued(start_server, dashboard, code, base):
    dash = dashboard(code)
    server = start_server(None, env={"DASHBOARD_URL": dash.url + base})
    body = json.dumps({"url": f"https://hist.gex.bot/{NAME}.gz", "feed": "zero"}).encode()
    reply = server.post("/gex_history_url", body)
    assert (reply.status, reply.json()) == (202, {"status": "queued", "via": "dashboard"})
    assert dash.got == [(base.rstrip("/") + "/api/ingest/history", "application/json", body)]
    assert server.post("/gex_history_url", b"{not json").status == 400  # refused here, never forwarded
    assert len(dash.got) == 1
    assert server.get("/gex_history_url").json()["jobs"] == []
    assert f"took the history request (HTTP {code})" in server.log_path.read_text()
    assert jobs_in_db(server) == []


@pytest.mark.parametrize("failure", ["500", "closed", "timeout"])
def test_a_dashboard_that_fails_leaves_the_request_to_the_local_queue(start_server, dashboard, files, failure):
    dash = dashboard({"500": 500, "closed": 200, "timeout": None}[failure])
    if failure == "closed":
        dash.close()
    server = start_server(None, *LOCAL, env={"DASHBOARD_URL": dash.url})
    body = json.dumps({"url": f"{files.url}/files/{NAME}"}).encode()
    started = time.monotonic()
    reply = server.post("/gex_history_url", body)
    waited = time.monotonic() - started
    assert (reply.status, reply.json()) == (202, {"status": "queued", "via": "local", "id": 1, "ticker": "SPX",
                                                  "endpoint": "gex_zero", "job_status": "pending",
                                                  "duplicate": False})
    assert dash.got == ([] if failure == "closed" else [("/api/ingest/history", "application/json", body)])
    if failure == "timeout":
        assert 1.9 < waited < 20  # it waited out the 2 s timeout, and then did not hang
    job = wait_job(server, 1)
    assert (job["status"], job["attempts"], job["last_error"]) == ("completed", 1, None)
    assert files.hits == {f"/files/{NAME}": 1}
    assert "did not take the history request" in server.log_path.read_text()
    assert jobs_in_db(server) == [(1, "SPX", "gex_zero", "completed", 1, None, SNAPS, SNAPS * STRIKES)]
    assert snapshot_count(server) == SNAPS


# ---- HISTORY_DOWNLOAD_COMMAND without {path}: the command downloads and imports itself, as in the original

DOES_IT_ALL = """import json, sys
record, code = sys.argv[1], int(sys.argv[2])
with open(record, "a") as f:
    f.write(json.dumps(sys.argv[3:]) + "\\n")
print("fetched", sys.argv[-1])
print("imported 42 snapshots" if code == 0 else "bucket says no")
sys.exit(code)
"""


def script(tmp_path, text):
    path = tmp_path / "command.py"
    path.write_text(text)
    return path


@pytest.mark.parametrize("code", [0, 3])
def test_a_command_without_path_completes_or_fails_the_job_by_its_exit_code(start_server, files, tmp_path, code):
    record = tmp_path / "ran.jsonl"
    template = (shlex.join([sys.executable, str(script(tmp_path, DOES_IT_ALL)), str(record), str(code)])
                + " {id} 'label {ticker} x' --endpoint={endpoint} {url}")
    server = start_server(None, *LOCAL, env={"HISTORY_DOWNLOAD_COMMAND": template})
    url = f"{files.url}/files/{NAME}"
    reply = server.post("/gex_history_url", {"url": url})
    assert (reply.status, reply.json()["via"], reply.json()["id"]) == (202, "local", 1)
    job = wait_job(server, 1)
    # the values arrive as single arguments, spaces and all, in the template's order
    assert [json.loads(line) for line in record.read_text().splitlines()] == [
        ["1", "label SPX x", "--endpoint=gex_zero", url]]
    assert files.hits == {}  # the command stood in for the download
    output = f"fetched {url}\n" + ("imported 42 snapshots" if code == 0 else "bucket says no")
    if code == 0:
        assert (job["status"], job["attempts"], job["last_error"], job["file_path"]) == ("completed", 1, None, None)
        expected = (1, "SPX", "gex_zero", "completed", 1, None, None, None)  # gexsrv counted no rows
    else:
        assert (job["status"], job["attempts"]) == ("failed", 1)
        assert job["last_error"] == f"the download command exited with 3: {output}"
        expected = (1, "SPX", "gex_zero", "failed", 1, job["last_error"], None, None)
    assert jobs_in_db(server) == [expected]  # the server stops here, so its log is complete
    assert snapshot_count(server) == 0
    assert (f"its output ends: {output}" in server.log_path.read_text()) == (code == 0)


# ---- HISTORY_DOWNLOAD_COMMAND with {path}: the command downloads, gexsrv stages and imports

COPIES = """import shutil, sys
source, path = sys.argv[1:3]
if source != "nothing":
    shutil.copy(source, path)
print("copied", source)
"""


def test_a_command_with_path_downloads_and_gexsrv_imports_the_file(start_server, files, tmp_path):
    packed = tmp_path / "packed.bin"
    packed.write_bytes(gzip.compress(history_bytes()))  # gzip under any name: found by its content
    template = shlex.join([sys.executable, str(script(tmp_path, COPIES)), str(packed)]) + " {path}"
    server = start_server(None, *LOCAL, env={"HISTORY_DOWNLOAD_COMMAND": template})
    job = wait_job(server, server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"}).json()["id"])
    assert (job["status"], job["attempts"], job["last_error"]) == ("completed", 1, None)
    assert (job["snapshots_imported"], job["rows_imported"], job["bytes"]) == (SNAPS, SNAPS * STRIKES,
                                                                             len(history_bytes()))
    staged = Path(job["file_path"])
    assert staged.name == "SPX_gex_zero_history.json" and staged.read_bytes() == history_bytes()
    assert [p.name for p in staged.parent.iterdir()] == [staged.name]  # the command's target is gone
    assert files.hits == {}
    assert jobs_in_db(server) == [(1, "SPX", "gex_zero", "completed", 1, None, SNAPS, SNAPS * STRIKES)]
    with server.db() as db:
        assert db.execute("SELECT timestamp, ticker, endpoint, spot_price, source FROM gex_snapshots ORDER BY 1"
                          ).fetchall() == [((T0 + i) * 1000, "SPX", "gex_zero", 7000.0 + i, "history:1")
                                           for i in range(SNAPS)]
        assert db.execute("SELECT timestamp, count(*), min(strike) FROM gex_strikes GROUP BY 1 ORDER BY 1"
                          ).fetchall() == [((T0 + i) * 1000, STRIKES, 7000.0 + i - 10) for i in range(SNAPS)]


def test_a_command_with_path_that_writes_no_file_fails_the_job(start_server, files, tmp_path):
    template = shlex.join([sys.executable, str(script(tmp_path, COPIES)), "nothing"]) + " {path}"
    server = start_server(None, *LOCAL, env={"HISTORY_DOWNLOAD_COMMAND": template})
    job = wait_job(server, server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"}).json()["id"])
    assert (job["status"], job["attempts"]) == ("failed", 1)
    assert job["last_error"].startswith("the download command exited with 0 but wrote no file at ")
    assert jobs_in_db(server) == [(1, "SPX", "gex_zero", "failed", 1, job["last_error"], None, None)]
    assert snapshot_count(server) == 0


# ---- what the command may be given

HANGS = """import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(60)
"""


def test_a_command_past_the_timeout_is_killed_with_its_children(start_server, files, tmp_path):
    pids = tmp_path / "pids"
    template = shlex.join([sys.executable, str(script(tmp_path, HANGS)), str(pids)])
    server = start_server(None, *LOCAL, "--history-request-timeout", "1",
                          env={"HISTORY_DOWNLOAD_COMMAND": template})
    job = wait_job(server, server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"}).json()["id"])
    assert (job["status"], job["last_error"]) == ("failed", "the download command did not finish within 1 s")
    eventually(lambda: all(process_state(int(pid)) in ("gone", "Z") for pid in pids.read_text().split()),
               "the timed-out command and its children gone")
    assert all(process_state(int(pid)) in ("gone", "Z") for pid in pids.read_text().split())


def test_a_value_that_would_read_as_an_option_is_refused(start_server, tmp_path):
    record = tmp_path / "ran.jsonl"
    template = shlex.join([sys.executable, str(script(tmp_path, DOES_IT_ALL)), str(record), "0"]) + " {ticker} {url}"
    server = start_server(None, *LOCAL, env={"HISTORY_DOWNLOAD_COMMAND": template})
    option = "may not start with '-' (a download command would read it as an option)"
    refused = {
        "url": ({"url": "-o/tmp/owned", "ticker": "SPX", "endpoint": "gex_zero"}, "$.url",
                f"url '-o/tmp/owned' {option}"),
        "ticker in the file name": ({"url": "http://127.0.0.1/2026-04-29_-K_classic_gex_zero.json"}, "$.ticker",
                                    f"ticker '-K' {option}"),
        # a given ticker or endpoint may meet its pattern first (an endpoint can never start with '-')
        "ticker": ({"url": f"http://127.0.0.1/{NAME}", "ticker": "-x"}, "$.ticker", None),
        "endpoint": ({"url": f"http://127.0.0.1/{NAME}", "endpoint": "-x"}, "$.endpoint", None),
    }
    for case, (body, field, error) in refused.items():
        reply = server.post("/gex_history_url", body)
        assert (reply.status, reply.json()["field"]) == (400, field), case
        assert error is None or reply.json()["error"] == error, case
    assert jobs_in_db(server) == []
    assert not record.exists()


def test_a_queued_job_with_an_option_like_ticker_fails_without_running_the_command(start_server, tmp_path):
    """Jobs can reach the queue past the POST check (`python -m gexsrv import --ticker`, an older version)."""
    record = tmp_path / "ran.jsonl"
    template = shlex.join([sys.executable, str(script(tmp_path, DOES_IT_ALL)), str(record), "0"]) + " {ticker}"
    server = start_server(None, env={"HISTORY_DOWNLOAD_COMMAND": template})
    server.stop()
    with duckdb.connect(str(server.data_dir / "gex_data.db")) as db:
        db.execute("INSERT INTO gex_history_queue (id, url, ticker, endpoint) "
                   f"VALUES (1, 'https://hist.gex.bot/{NAME}', '-X', 'gex_zero')")
    server.start()
    job = wait_job(server, 1)
    assert (job["status"], job["last_error"]) == (
        "failed", "ticker '-X' starts with '-' and would read as an option of the command")
    assert jobs_in_db(server) == [(1, "-X", "gex_zero", "failed", 1, job["last_error"], None, None)]
    assert not record.exists()


def test_a_template_with_an_unknown_placeholder_fails_the_job_saying_so(start_server, files, tmp_path):
    template = shlex.join([sys.executable, str(script(tmp_path, COPIES))]) + " {file} {path}"
    server = start_server(None, *LOCAL, env={"HISTORY_DOWNLOAD_COMMAND": template})
    job = wait_job(server, server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"}).json()["id"])
    assert (job["status"], job["attempts"]) == ("failed", 0)
    assert job["last_error"].startswith("HISTORY_DOWNLOAD_COMMAND uses unknown placeholders ['file']")
    assert files.hits == {}
