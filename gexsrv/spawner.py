"""The spawner: a small child of the front, forked before any thread is started, that forks the engine on request
(its first start and every restart) and says when one of its children has ended.

Why not fork the engine from the front directly: by the time the engine dies the front runs threads (the journal's
fsync, polars' and DuckDB's pools), and a fork of a threaded process copies locks that no thread will release in
the child. Why not a fresh interpreter: imports cost ~1 s of CPU per start, and a test suite starts hundreds of
servers. The spawner is forked while the process has one thread, never starts one (a select loop, no asyncio), and
checks /proc/self/task before each fork, so every engine is forked from a one-thread process.

The front sends Spawn with the engine's end of a socketpair passed along (SCM_RIGHTS); the spawner forks, the child
imports the target and runs it with that socket; the spawner answers Spawned(pid) and later Exited(pid, status).
The spawner ends once the front's end closes (the front exited or died); its children notice their own sockets.

A spawner that died (killed: it is a process like any other) is replaced by a fresh interpreter (started_fresh):
the front runs threads by then and cannot fork one. Its engines pay their imports (about a second of CPU each),
which only the rare restart after such a death costs.
"""

import asyncio
import importlib
import logging
import os
import select
import signal
import socket
import sys
import traceback

import msgspec

import gexsrv
from gexsrv.channel import Channel, Exited, Spawn, Spawned, receive_blocking, send_blocking
from gexsrv.procname import name_process

log = logging.getLogger("gexsrv.front.spawner")


class SpawnerError(Exception):
    """The spawner cannot fork safely (threads are running) or is gone."""


def one_thread():
    """Refuse to fork a process that runs threads other than the caller."""
    tasks = os.listdir("/proc/self/task")
    if len(tasks) != 1:
        raise SpawnerError(f"cannot fork with {len(tasks)} threads running: the spawner must start before any "
                           "thread (before polars is imported)")


def start():
    """Fork the spawner; return the front's end of its control socket. Call it before any thread starts."""
    one_thread()
    front, own = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        front.close()
        try:
            serve(own)
        finally:
            os._exit(0)
    own.close()
    return Spawner(front, pid)


async def started_fresh(on_exit):
    """A spawner in a new interpreter (posix_spawn: safe in a process that runs threads), connected: on_exit as for
    Spawner.connect."""
    front, own = socket.socketpair()
    own.set_inheritable(True)
    source = os.path.dirname(os.path.dirname(gexsrv.__file__))  # where this gexsrv is imported from
    code = f"import sys; sys.path.insert(0, {source!r}); from gexsrv.spawner import main; main({own.fileno()})"
    try:
        pid = os.posix_spawn(sys.executable, [sys.executable, "-c", code], os.environ)
    finally:
        own.close()
    spawner = Spawner(front, pid)
    await spawner.connect(on_exit)
    return spawner


def main(fd):
    try:
        serve(socket.socket(fileno=fd))
    finally:
        os._exit(0)


# ---- in the spawner ----

def serve(sock):
    """Fork children on request and report their ends, until the front's end closes. A child's end is seen on its
    pidfd the moment it exits, so a restart or a stop never waits for a polling period."""
    name_process("gexsrv-spawner")
    # Ctrl-C in a terminal signals the whole process group: the front decides when the spawner ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    children = {}  # pidfd -> pid
    while True:
        readable, _, _ = select.select([sock, *children], [], [])
        for pidfd in children.keys() & set(readable):
            if not report_end(sock, children.pop(pidfd), pidfd):
                return
        if sock in readable:
            message, fds = receive_blocking(sock, fds_wanted=1)
            if message is None:
                return
            spawned = fork_child(sock, message, fds)
            if spawned.pid:
                children[os.pidfd_open(spawned.pid)] = spawned.pid
            send_blocking(sock, spawned)


def report_end(sock, pid, pidfd):
    """Reap the child and say so; False once the front is gone."""
    os.close(pidfd)
    _, status = os.waitpid(pid, 0)
    try:
        send_blocking(sock, Exited(pid, status))
    except OSError:
        return False
    return True


def fork_child(sock, message, fds):
    if not isinstance(message, Spawn) or len(fds) != 1:
        for fd in fds:
            os.close(fd)
        return Spawned(0, f"expected Spawn with one descriptor, got {type(message).__name__} with {len(fds)}")
    try:
        one_thread()
        pid = os.fork()
    except (SpawnerError, OSError) as exc:
        os.close(fds[0])
        return Spawned(0, str(exc))
    if pid == 0:
        sock.close()  # the control socket is the spawner's alone: the front sees its EOF when the spawner ends
        run_child(message, fds[0])
    os.close(fds[0])
    return Spawned(pid)


def run_child(message, fd):
    """In the forked child: run the target with its socket, and exit with its outcome (never return)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        module, name = message.target.split(":")
        target = getattr(importlib.import_module(module), name)
        target(socket.socket(fileno=fd), msgspec.msgpack.decode(message.args))
        code = 0
    except BaseException:  # the child must exit here whatever happens: it may not return into the spawner
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


# ---- in the front ----

class Spawner:
    """The front's handle on the spawner: spawn() a child, and be told of each child's end."""

    def __init__(self, sock, pid):
        self.sock = sock
        self.pid = pid
        self.channel = None
        self.replies = asyncio.Queue()
        self.reading = None
        self.gone = False  # the spawner has exited: no child is forked again, and no end is reported
        self.closing = False

    async def connect(self, on_exit):
        """Start reading the spawner's messages on the running loop; on_exit(pid, status) for each child's end."""
        self.channel = await Channel.over(self.sock)
        self.reading = asyncio.ensure_future(self._read(on_exit))

    async def _read(self, on_exit):
        while (message := await self.channel.receive()) is not None:
            if isinstance(message, Exited):
                on_exit(message.pid, message.status)
            else:
                self.replies.put_nowait(message)
        self.gone = True
        if not self.closing:
            log.error("the engine's spawner (pid %d) has exited; a new one is started when the engine next is",
                      self.pid)
        self.replies.put_nowait(Spawned(0, "the spawner has exited"))

    async def spawn(self, target, args):
        """Fork a child running target ("module:function") with args; return (pid, the front's end of its
        socket). SpawnerError if it cannot be forked."""
        front, child = socket.socketpair()
        try:
            # The transport only reads this socket; the one write, with a descriptor, goes past it.
            send_blocking(self.sock, Spawn(target, msgspec.Raw(msgspec.msgpack.encode(args))), fds=[child.fileno()])
        except OSError as exc:
            front.close()
            raise SpawnerError(f"the spawner is gone: {exc}") from exc
        finally:
            child.close()
        reply = await self.replies.get()
        if reply.error:
            front.close()
            raise SpawnerError(reply.error)
        return reply.pid, front

    async def close(self):
        """Close the control socket: the spawner exits; children it forked live on until their sockets close."""
        self.closing = True
        if self.channel:
            await self.channel.close()
        else:
            self.sock.close()
        if self.reading:
            await self.reading
        await asyncio.to_thread(os.waitpid, self.pid, 0)
