"""A fork server (zygote) for the tests: `python -m gexsrv` without paying its imports at every start.

A test run starts hundreds of servers and CLI runs; each fresh interpreter spends about half a second of CPU
importing duckdb, pyarrow, polars, tornado, msgspec and gexsrv (`python -c "import gexsrv.server"`: 0.43 s user,
0.06 s sys here). One zygote per test process, started at the first start, imports them
once; each start is then a fork of it that sets up argv, environment, working directory, stdio and limits and runs
gexsrv's `__main__` as `python -m gexsrv` does: a real process, listening on a real port, exiting with its own code.

Not imported in the zygote: polars (its import starts threads, and a fork of a process with threads can leave the
child with a lock held by a thread that is not there). gexsrv imports it only when it first exports rows to the lake
(gexsrv.lake), so the zygote can preload all of gexsrv and a child that exports imports polars itself. The zygote
keeps pyarrow's jemalloc and OpenBLAS single-threaded, and checks before every fork that it has one thread.

What differs from a Popen: the process' parent is the zygote; /proc/PID/cmdline and /proc/PID/environ show the
zygote's (os.environ, and what the server's own children inherit, is the one asked for); pyarrow's jemalloc runs
without its background thread and OpenBLAS with one.

`popen_gexsrv` and `run_gexsrv` are the tests' `subprocess.Popen` and `subprocess.run` of `python -m gexsrv`; they
use a plain Popen when `GEXSRV_TEST_FORK=0`, or when the environment asked for differs from the zygote's in a
variable read when the interpreter or a library in the zygote starts (`PYTHONPATH`, `TZ`, `LD_PRELOAD`, ...).
"""

import atexit
import gc
import json
import locale
import os
import resource
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# Read by the interpreter or by a library when the zygote imports it, so a child could not honour a new value.
IMPORT_TIME = ("PYTHON", "LD_", "MALLOC", "JE_", "OPENBLAS", "OMP_", "MKL_", "GOTO", "ARROW", "DUCKDB", "TZ")
# The exception: the zygote's stdio is unbuffered; a buffered one only writes the same bytes later.
NOT_IMPORT_TIME = ("PYTHONUNBUFFERED",)
# No helper threads in the zygote: pyarrow's jemalloc starts a purging thread, OpenBLAS a pool, unless told not to.
SINGLE_THREADED = {"JE_ARROW_MALLOC_CONF": "background_thread:false", "OPENBLAS_NUM_THREADS": "1",
                   "PYTHONUNBUFFERED": "1"}
PRELOAD = (
    "duckdb", "numpy", "pyarrow", "pyarrow.parquet", "tornado.web", "tornado.httpserver", "tornado.httpclient",
    "msgspec", "zstandard", "prometheus_client", "dotenv", "tqdm",
    "gexsrv.cli", "gexsrv.deps", "gexsrv.settings", "gexsrv.app", "gexsrv.archive", "gexsrv.batches",
    "gexsrv.connections", "gexsrv.decode", "gexsrv.gexwrite", "gexsrv.history.runner", "gexsrv.ingest",
    "gexsrv.intake", "gexsrv.journal", "gexsrv.journal_home", "gexsrv.keys", "gexsrv.latest", "gexsrv.metrics",
    "gexsrv.notify", "gexsrv.outputs", "gexsrv.poller", "gexsrv.position", "gexsrv.store", "gexsrv.supervisor",
    "gexsrv.uw.trades", "gexsrv.uw.writer", "gexsrv.validate.cli", "gexsrv.lake", "gexsrv.server", "gexsrv.front",
    "gexsrv.engine", "gexsrv.history.cli", "gexsrv.history.backfill_cli",
)
MESSAGE_BYTES = 1 << 20


def enabled():
    return os.environ.get("GEXSRV_TEST_FORK", "1") != "0"


def import_time_differences(env, base):
    """The import-time variables that env sets differently from base (or sets or unsets only one of them)."""
    names = (set(env) ^ set(base)) | {name for name in set(env) & set(base) if env[name] != base[name]}
    return sorted(name for name in names if name.startswith(IMPORT_TIME) and name not in NOT_IMPORT_TIME)


# --- the zygote's side -------------------------------------------------------------------------------------------

def preload():
    """Import what gexsrv's start imports but polars; what went wrong, or None."""
    try:
        for name in PRELOAD:
            __import__(name)
    except Exception as exc:  # each fork request is answered with it: the tests fail saying why
        return f"importing {name} failed: {exc!r}"
    return "polars was imported" if "polars" in sys.modules else None


def fork_problem():
    tasks = os.listdir("/proc/self/task")  # every thread, not only those Python started
    if threading.active_count() != 1 or len(tasks) != 1:
        names = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in tasks]
        return f"the zygote has {len(names)} threads ({', '.join(names)}): a fork could deadlock"
    return None


class Forks:
    """The zygote's loop: a fork per request on the control socket, each child's exit status sent on its channel."""

    def __init__(self, control_fd):
        self.problem = preload()
        # What the zygote imported is permanent: out of every collection, a child's collections neither walk it
        # nor write to its objects (which would copy their pages into each child)
        gc.freeze()
        self.control = socket.socket(fileno=control_fd)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.control, selectors.EVENT_READ)
        self.children = {}  # pidfd -> (pid, channel)

    def serve(self):
        """Until the test process closes the control socket; returns only in a child, with its request."""
        while True:
            for key, _ in self.selector.select():
                if key.fileobj is not self.control:
                    self.report_exit(key.fileobj)
                    continue
                message, fds, _, _ = socket.recv_fds(self.control, MESSAGE_BYTES, 4)
                if not message:
                    sys.exit(0)
                child = self.fork(socket.socket(fileno=fds[0]), fds[1:])
                if child:
                    return json.loads(message), fds[1:]

    def fork(self, channel, stdio):
        """True in the child."""
        problem = self.problem or fork_problem()
        if problem:
            channel.send(json.dumps({"error": problem}).encode())
        elif (pid := os.fork()) == 0:
            self.leave(channel)
            return True
        else:
            pidfd = os.pidfd_open(pid)
            socket.send_fds(channel, [json.dumps({"pid": pid}).encode()], [pidfd])
            self.children[pidfd] = (pid, channel)
            self.selector.register(pidfd, selectors.EVENT_READ)
        close_all(stdio)
        if problem:
            channel.close()
        return False

    def leave(self, channel):
        """In the child: none of the zygote's descriptors stay open in gexsrv."""
        self.selector.close()
        self.control.close()
        channel.close()
        for pidfd, (_, other) in self.children.items():
            other.close()
            os.close(pidfd)

    def report_exit(self, pidfd):
        self.selector.unregister(pidfd)
        pid, channel = self.children.pop(pidfd)
        _, status = os.waitpid(pid, 0)
        os.close(pidfd)
        channel.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
        channel.close()


def close_all(fds):
    for fd in fds:
        os.close(fd)


def set_limits(rlimits):
    for name, limits in rlimits.items():
        resource.setrlimit(getattr(resource, name), tuple(limits))


def become(request, stdio):
    """Turn the forked child into `python -m gexsrv ARGS` as the request describes it; stdio first, so that even
    a failure here goes to the child's own stderr."""
    for target, fd in enumerate(stdio):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    set_limits(request["rlimits"])
    sys.argv = ["-m", *request["args"]]
    sys.path[0] = os.getcwd()  # where `python -m` looks first
    runpy._run_module_as_main("gexsrv")  # what `python -m gexsrv` runs; it sets argv[0] to gexsrv/__main__.py


def main(control_fd):
    """The zygote's program; a child leaves the fork loop to become gexsrv, and exits as gexsrv does."""
    become(*Forks(control_fd).serve())


# --- the test process's side -------------------------------------------------------------------------------------

class Zygote:
    """The test process's zygote: started at its first fork, ended (and waited for) at the end of the session."""

    lock = threading.Lock()
    current = None

    def __init__(self):
        self.base = dict(os.environ)
        self.errors = tempfile.TemporaryFile()  # its own stderr, said if it ends before its children
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        code = f"import sys; sys.path[0] = {str(TESTS)!r}; import forkserver; forkserver.main({theirs.fileno()})"
        self.proc = subprocess.Popen([sys.executable, "-c", code], env={**self.base, **SINGLE_THREADED},
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.errors,
                                     pass_fds=[theirs.fileno()])
        theirs.close()
        self.control = ours

    @classmethod
    def get(cls):
        with cls.lock:
            if cls.current is None or cls.current.proc.poll() is not None:
                cls.current = cls()
                atexit.register(cls.current.close)
            return cls.current

    def fork(self, args, cwd, env, rlimits, stdio):
        """A ForkedProcess running `python -m gexsrv ARGS`; stdio: the descriptors of its stdin, stdout, stderr."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = {"args": list(args), "cwd": str(cwd), "env": env, "rlimits": rlimits}
        socket.send_fds(self.control, [json.dumps(request).encode()], [theirs.fileno(), *stdio])
        theirs.close()
        return ForkedProcess(args, ours, self)

    def said(self):
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace")

    def close(self):
        """Closing the control socket ends the zygote; waiting for it counts its children's CPU in this process'."""
        if self.proc.returncode is None:
            self.control.close()
            self.proc.wait(timeout=30)
            self.errors.close()


class ForkedProcess:
    """A forked `python -m gexsrv`: the subset of Popen the tests use. The zygote is its parent, so its exit status
    comes over a channel from the zygote; signals go to the process itself, through a pidfd (never to another
    process that reused its pid)."""

    def __init__(self, args, channel, zygote):
        self.args = [sys.executable, "-m", "gexsrv", *args]
        self.channel = channel
        self.zygote = zygote
        self.returncode = None
        message, fds, _, _ = socket.recv_fds(channel, MESSAGE_BYTES, 1)
        reply = json.loads(message) if message else {"error": f"it ended: {zygote.said()}"}
        if "error" in reply:
            channel.close()
            raise RuntimeError(f"the tests' zygote cannot fork gexsrv: {reply['error']}")
        self.pid, self.pidfd = reply["pid"], fds[0]

    def poll(self):
        try:
            return self.wait(0)
        except subprocess.TimeoutExpired:
            return None

    def wait(self, timeout=None):
        if self.returncode is None:
            self.channel.settimeout(timeout)
            try:
                message = self.channel.recv(MESSAGE_BYTES)
            except (TimeoutError, BlockingIOError):  # BlockingIOError: timeout 0
                raise subprocess.TimeoutExpired(self.args, timeout) from None
            if not message:
                raise RuntimeError(f"the tests' zygote ended before process {self.pid} did: {self.zygote.said()}")
            self.returncode = json.loads(message)["returncode"]
            self.channel.close()
            os.close(self.pidfd)
        return self.returncode

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:  # it exited since; its status is on the way
                pass

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def kill(self):
        self.send_signal(signal.SIGKILL)


def popen_gexsrv(args, cwd=REPO, env=None, stdout=None, stderr=None, rlimits=None):
    """`python -m gexsrv ARGS` started: a ForkedProcess, or a Popen when a fork cannot honour env. stdout and
    stderr as Popen takes them (None, an open file, subprocess.DEVNULL; stderr also subprocess.STDOUT); rlimits
    maps resource names (RLIMIT_NOFILE) to (soft, hard)."""
    env = dict(os.environ if env is None else env)
    rlimits = rlimits or {}
    zygote = Zygote.get() if enabled() else None
    if zygote is None or import_time_differences(env, zygote.base):
        return subprocess.Popen([sys.executable, "-m", "gexsrv", *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr,
                                preexec_fn=(lambda: set_limits(rlimits)) if rlimits else None)
    with open(os.devnull, "r+") as devnull:
        out = descriptor(stdout, 1, devnull)
        err = out if stderr == subprocess.STDOUT else descriptor(stderr, 2, devnull)
        return zygote.fork(args, cwd, env, rlimits, [devnull.fileno(), out, err])


def descriptor(stream, inherited, devnull):
    """The descriptor a Popen child would have for stream: the inherited one for None."""
    if stream is None:
        return inherited
    return devnull.fileno() if stream == subprocess.DEVNULL else stream.fileno()


def run_gexsrv(args, cwd=REPO, env=None, timeout=None, check=False):
    """subprocess.run of `python -m gexsrv ARGS` with capture_output=True, text=True."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = popen_gexsrv(args, cwd, env, stdout=out, stderr=err)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise
        done = subprocess.CompletedProcess(proc.args, code, text(out), text(err))
    if check:
        done.check_returncode()
    return done


def text(file):
    """A captured output as subprocess' text=True reads it: decoded, with universal newlines."""
    file.seek(0)
    return file.read().decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")
