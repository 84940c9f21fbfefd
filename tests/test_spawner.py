"""The spawner (gexsrv.spawner) with real processes: every child is forked from a one-thread process although the
front runs threads, a killed child is reported and another forked, a child sees EOF when the front dies, and a
process running threads is refused a spawner."""

import json
import os
import signal
import subprocess
import sys

from helpers import REPO, eventually, process_state

PROBE = [sys.executable, str(REPO / "tests" / "spawn_probe.py")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}


def probe(*args):
    done = subprocess.run([*PROBE, *args], env=ENV, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_children_are_forked_from_one_thread_and_forked_again_after_a_kill():
    seen = probe("restart")
    assert seen["front_threads"] > 1  # polars' pool: a fork from the front itself would copy those threads' locks
    rounds = seen["rounds"]
    assert len({r["pid"] for r in rounds}) == 3
    for i, r in enumerate(rounds):
        assert r["child_pid"] == r["pid"] == r["ended"]
        assert r["threads"] == 1
        assert r["args"] == [i]
        assert r["signal"] == signal.SIGKILL
        assert r["eof"]


def test_a_child_sees_its_socket_close_when_the_front_is_killed(tmp_path):
    eof_file = tmp_path / "eof"
    with subprocess.Popen([*PROBE, "orphan", str(eof_file)], env=ENV, stdout=subprocess.PIPE, text=True) as front:
        try:
            child = json.loads(front.stdout.readline())["child_pid"]
        finally:
            front.kill()
    eventually(eof_file.exists, "the orphaned child to see EOF")
    assert eof_file.read_text() == "eof\n"
    eventually(lambda: process_state(child) in ("gone", "Z"), "the child to exit")


def test_a_process_running_threads_is_refused_a_spawner():
    assert "2 threads running" in probe("threaded")["refused"]
