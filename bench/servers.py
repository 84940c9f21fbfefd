"""The servers under test as subprocesses: a fresh gexsrv, baseline or original stand-in over a fresh temporary dir.

Each prints `listening on http://127.0.0.1:PORT` once it accepts (gexsrv on stderr, the others on stdout);
both outputs go to a log file, which is polled for that line. Memory is read from /proc/<pid>/status, CPU time
from /proc/<pid>/stat.
A server that exits before it is stopped, or exits uncleanly when stopped, is recorded as crashed.
"""
import json
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import procstat

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
START_TIMEOUT = 60.0  # seconds; a busy machine starts Python with DuckDB, Polars and Arrow slowly
STOP_TIMEOUT = 300.0  # gexsrv exports new strike rows to Parquet before it exits
CLEAN_EXITS = (0, -signal.SIGTERM)  # stopped by SIGTERM: a clean shutdown, or the signal's default action
IDLE_EVERY, IDLE_SHARE, IDLE_TIMEOUT = 0.25, 0.1, 60.0  # see ServerProcess.wait_idle
ORIGINAL_DB = "original.db"  # the original stand-in's SQLite file, in its workdir


class ServerProcess:
    def __init__(self, name, argv, workdir):
        self.name = name
        self.argv = argv
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        self.proc = None
        self.url = None
        self.crash = None

    def start(self):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log_path.read_text())
            if found:
                self.url = found.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def stop(self):
        """SIGTERM and wait; the exit code. An early or unclean exit is kept in `crash`, with the log's last lines."""
        died = self.proc.poll() is not None
        if not died:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        code = self.proc.returncode
        if died or code not in CLEAN_EXITS:
            self.crash = {"exit_code": code, "when": "before it was stopped" if died else "when stopped",
                          "log_tail": self.log_tail()}
        return code

    def memory_mb(self):
        """Resident set size now and its peak so far (VmRSS, VmHWM), in MB, of the server's processes together
        (procstat.tree); None once the process has exited."""
        each = [procstat.memory_of(pid) for pid in procstat.tree(self.proc.pid)]
        if each[0] is None:
            return None
        found = [memory for memory in each if memory]
        return {name: round(sum(memory[name] for memory in found), 1) for name in ("rss_mb", "peak_mb")}

    def wait_idle(self, timeout=IDLE_TIMEOUT):
        """Wait until the server has used under IDLE_SHARE of a core for IDLE_EVERY seconds: work it put off, such
        as ingesting what it acknowledged from its journal, is done. False if it was still busy after `timeout`."""
        deadline = time.monotonic() + timeout
        last = procstat.cpu_seconds(self.proc.pid)
        while time.monotonic() < deadline:
            if last is None:  # gone: nothing left to wait for, and its crash says so
                return True
            time.sleep(IDLE_EVERY)
            now = procstat.cpu_seconds(self.proc.pid)
            if now is not None and now - last < IDLE_SHARE * IDLE_EVERY:
                return True
            last = now
        return False

    def wait_ingested(self, timeout=IDLE_TIMEOUT):
        """Wait until gexsrv's /health says no journaled record waits for ingest: on a loaded machine a server
        starved of CPU looks idle to wait_idle while it still has work. True at once for a server without /health;
        False if records still waited after `timeout`."""
        deadline = time.monotonic() + timeout
        while (health := self.health()) and health.get("ingest", {}).get("records_waiting"):
            if time.monotonic() > deadline:
                return False
            time.sleep(IDLE_EVERY)
        return True

    def health(self):
        """gexsrv's GET /health, or None for a server without one."""
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=10) as resp:
                return json.load(resp)
        except OSError:
            return None

    def log_tail(self, lines=30):
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def gexsrv(workdir, *flags):
    argv = [sys.executable, "-m", "gexsrv", "--port", "0", "--data-dir", str(workdir / "data"), *flags]
    return ServerProcess("gexsrv", argv, workdir)


def baseline(workdir):
    argv = [sys.executable, str(BENCH / "baseline_server.py"), "--port", "0", "--db", str(workdir / "baseline.db")]
    return ServerProcess("baseline", argv, workdir)


def original(workdir):
    argv = [sys.executable, str(BENCH / "original_server.py"), "--port", "0", "--db", str(workdir / ORIGINAL_DB)]
    return ServerProcess("original", argv, workdir)


class Fresh:
    """`with Fresh(gexsrv) as server:` a started server over a new temporary dir, stopped and removed after.

    With `keep`, the dir is made inside that one and left there, for a look at what the server stored.
    """

    def __init__(self, make, *flags, keep=None):
        self.make = make
        self.flags = flags
        self.keep = keep

    def __enter__(self):
        self.workdir = Path(tempfile.mkdtemp(prefix="gexsrv-perf-", dir=self.keep))
        try:
            self.server = self.make(self.workdir, *self.flags).start()
        except BaseException:
            shutil.rmtree(self.workdir, ignore_errors=True)
            raise
        return self.server

    def __exit__(self, *exc):
        self.server.stop()
        if crash := self.server.crash:
            print(f"{self.server.name} crashed: exit code {crash['exit_code']} {crash['when']}:\n{crash['log_tail']}",
                  file=sys.stderr)
        if self.keep is None:
            shutil.rmtree(self.workdir, ignore_errors=True)
