"""tests/forkserver.py: a forked gexsrv is the real server, a process of its own that the tests signal and whose
exit status is its own; the zygote forks it with one thread and without polars; the environment a fork could not
honour gets a plain Popen."""

import json
import os
import resource
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import forkserver
from forkserver import ForkedProcess, Zygote, import_time_differences, run_gexsrv
from helpers import REPO, Server, TS, database_pid, eventually, snapshot, wait_job

NAME = "2026-04-29_SPX_classic_gex_zero.json"
LOCAL = ("--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32")
# A history command that writes down what it inherited from the server: its environment and working directory.
SAYS_WHERE = """import json, os, sys
with open(sys.argv[1], "w") as f:
    json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, f)
"""


def without_polars(env):
    return {name: value for name, value in env.items() if name != "_RJEM_MALLOC_CONF"}


def links(pid):
    """What a process' descriptors are open on (sockets, files, pidfds)."""
    return {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


FORKED = ForkedProcess if forkserver.enabled() else subprocess.Popen  # GEXSRV_TEST_FORK=0 tests the Popen path


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 0), (signal.SIGINT, 0), (signal.SIGKILL, -signal.SIGKILL)],
                         ids=["SIGTERM", "SIGINT", "SIGKILL"])
def test_a_signal_reaches_the_forked_server_and_its_exit_status_is_its_own(tmp_path, sig, code):
    server = Server(tmp_path / "data").start()
    try:
        assert isinstance(server.proc, FORKED) and server.proc.poll() is None
        with pytest.raises(subprocess.TimeoutExpired):
            server.proc.wait(timeout=0.1)
        assert server.post("/gex", snapshot(timestamp=TS)).status == 202
        returncode = server.stop(sig)
    finally:
        server.stop(signal.SIGKILL)
    assert (returncode, server.proc.returncode, server.proc.poll()) == (code, code, code)
    log = server.log_path.read_text()
    assert log.count(f"listening on {server.url}") == 1
    assert log.rstrip().endswith("INFO gexsrv: stopped") == (sig != signal.SIGKILL)
    assert not Path(f"/proc/{server.proc.pid}").exists()  # reaped


def test_the_forked_server_runs_with_the_arguments_environment_directory_and_limits_it_was_given(tmp_path):
    record, elsewhere = tmp_path / "inherited.json", tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "says_where.py").write_text(SAYS_WHERE)
    env = {"HISTORY_DOWNLOAD_COMMAND": shlex.join([sys.executable, str(tmp_path / "says_where.py"), str(record)]),
           "GEXSRV_TEST_MARK": "forked"}
    server = Server(tmp_path / "data", *LOCAL, "--default-endpoint", "gex_one", env=env, cwd=elsewhere,
                    rlimits={"RLIMIT_CORE": (0, 0)}).start()
    try:
        assert isinstance(server.proc, FORKED)
        assert server.post("/gex", snapshot(timestamp=TS)).json()["endpoint"] == "gex_one"  # its arguments
        assert (tmp_path / "data" / "gex_data.db").is_file()
        assert resource.prlimit(server.proc.pid, resource.RLIMIT_CORE) == (0, 0)
        assert os.readlink(f"/proc/{server.proc.pid}/cwd") == str(elsewhere)
        reply = server.post("/gex_history_url", {"url": f"http://127.0.0.1:9/files/{NAME}"})
        assert reply.status == 202, reply.body
        assert wait_job(server, reply.json()["id"])["status"] == "completed"  # it exited 0: it imported, it says
    finally:
        server.stop()
    inherited = json.loads(record.read_text())
    assert inherited["cwd"] == str(elsewhere)
    # all of what was asked, and nothing of the zygote's own (JE_ARROW_MALLOC_CONF, ...) but what polars' import
    # sets in any process that imports it (the test process too, if a module imported polars before)
    assert without_polars(inherited["env"]) == without_polars(server.env)


def test_the_limits_of_one_fork_are_not_the_next_ones(tmp_path):
    limited = Server(tmp_path / "limited", rlimits={"RLIMIT_CORE": (0, 0)}).start()
    limited.stop()
    plain = Server(tmp_path / "plain").start()
    try:
        assert resource.prlimit(plain.proc.pid, resource.RLIMIT_CORE) == resource.getrlimit(resource.RLIMIT_CORE)
    finally:
        plain.stop()


def test_a_cli_run_exits_with_its_status_and_its_output_captured():
    bad = run_gexsrv(["--port", "abc"], timeout=60)
    assert (bad.returncode, bad.stdout, bad.stderr) == (2, "", "gexsrv: invalid --port = 'abc': Expected `int`, "
                                                                "got `str`\n")
    helped = run_gexsrv(["--help"], timeout=60, check=True)
    assert helped.stdout.startswith("usage: python -m gexsrv [-h] [--version]") and helped.stderr == ""
    with pytest.raises(subprocess.CalledProcessError) as failed:
        run_gexsrv(["improt"], timeout=60, check=True)
    assert failed.value.returncode == 2


@pytest.mark.skipif(not forkserver.enabled(), reason="GEXSRV_TEST_FORK=0: no zygote")
def test_the_zygote_has_one_thread_no_polars_and_none_of_its_descriptors_in_a_server(tmp_path):
    server = Server(tmp_path / "data", "--lake-export-interval", "0.2").start()
    try:
        zygote = Zygote.current.proc.pid
        assert os.listdir(f"/proc/{zygote}/task") == [str(zygote)]
        assert "polars" not in Path(f"/proc/{zygote}/maps").read_text()
        assert server.post("/gex", snapshot()).status == 202
        exporter = database_pid(server)  # with --processes 2 the engine exports, the front never imports polars
        eventually(lambda: "polars" in Path(f"/proc/{exporter}/maps").read_text(),  # its first export's
                   "the server importing polars itself", 20)
        sockets = {link for link in links(zygote) if link.startswith("socket:")}  # control, and a channel a child
        ours = links(server.proc.pid)
        assert len(sockets) >= 2 and not sockets & ours and "anon_inode:[pidfd]" not in ours
    finally:
        server.stop()


def test_a_zygote_with_a_second_thread_refuses_to_fork_saying_which(tmp_path, monkeypatch):
    monkeypatch.setitem(forkserver.SINGLE_THREADED, "JE_ARROW_MALLOC_CONF", "background_thread:true")
    zygote = Zygote()
    try:
        with pytest.raises(RuntimeError) as refused:
            zygote.fork(["--help"], REPO, dict(os.environ), {}, [0, 1, 2])
    finally:
        zygote.close()
    assert str(refused.value) == ("the tests' zygote cannot fork gexsrv: the zygote has 2 threads (python, "
                                  "jemalloc_bg_thd): a fork could deadlock")
    assert zygote.proc.returncode == 0


def test_an_import_time_variable_or_the_switch_gets_a_plain_popen(tmp_path, monkeypatch):
    in_new_york = Server(tmp_path / "tz", env={"TZ": "America/New_York"}).start()
    try:
        assert isinstance(in_new_york.proc, subprocess.Popen)
        assert Path(f"/proc/{in_new_york.proc.pid}/cmdline").read_bytes().split(b"\0")[1:3] == [b"-m", b"gexsrv"]
    finally:
        assert in_new_york.stop() == 0
    monkeypatch.setenv("GEXSRV_TEST_FORK", "0")
    switched_off = Server(tmp_path / "off").start()
    try:
        assert isinstance(switched_off.proc, subprocess.Popen)
    finally:
        switched_off.stop()


def test_which_variables_are_read_at_import_time():
    base = {"PATH": "/bin", "PYTHONPATH": "/a", "PYTHONUNBUFFERED": "1", "TZ": "UTC"}
    assert import_time_differences({**base, "GEXSRV_PORT": "1", "PATH": "/usr/bin"}, base) == []
    assert import_time_differences({"PATH": "/bin", "PYTHONPATH": "/b", "LD_PRELOAD": "x.so"}, base) == [
        "LD_PRELOAD", "PYTHONPATH", "TZ"]
