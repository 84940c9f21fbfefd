"""The engine process (processes = 2): it owns gex_data.db and everything beside it, the parts of
gexsrv.server.storage_parts: ingest, history, the lake, the latest views, the supervisor, and every read, served
over HTTP on a Unix socket that the front passes requests on to (gexsrv.proxy).

Forked by the spawner (gexsrv.spawner) as "gexsrv.engine:main". It reads the journal the front writes
(gexsrv.journal_tail), never past the durable position the front last told it (Durable), ingests as a single
process does (with the replaying rules: accepted records are never refused again), and tells the front every
seq's outcome (Ingested). Its first Ingested, sent once the database is writable and before the replay, has no
outcomes: it says where the database's ingest stands, so every pending seq up to it was ingested by an engine
before this one, which may have died before telling; the outcome of every seq after it follows.

Stop, or the front's end closing (it died), ends the engine once what is durable is ingested (within
shutdown_grace_s). Signals are the front's to take: Ctrl-C or a service manager's SIGTERM reaches the whole
process group, and the engine stops when the front tells it. Every STATUS_EVERY_S it sends its Status.
"""

import asyncio
import itertools
import logging
import os
import signal
import time

import msgspec
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

from gexsrv import cli, server
from gexsrv.app import make_app
from gexsrv.channel import (Channel, Durable, Fatal, Ingested, KeysCommitted, KeysCommitting, KeysLoaded, Noted,
                            Outcome, Status)
from gexsrv.journal_tail import Tail
from gexsrv.procname import name_process
from gexsrv.settings import Settings

log = logging.getLogger("gexsrv.engine")
STATUS_EVERY_S = 1.0


def main(sock, args):
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    settings = msgspec.convert(args["settings"], Settings)
    cli.log_to_stderr(settings, "engine")
    name_process("gexsrv-engine")
    asyncio.run(run(settings, args, sock))


def outcome(seq, result):
    """A seq's ingest outcome as the channel carries it: stored, a duplicate, or refused with its error."""
    if isinstance(result, Exception):
        return Outcome(seq, False, str(result))
    return Outcome(seq, bool(result))


class FrontKeys:
    """The front's duplicate index (gexsrv.keys.RecentKeys) as the engine's parts use it: what they would tell an
    index of their own goes to the front's."""

    def __init__(self, channel, start_ms):
        self.channel = channel
        self.start_ms = start_ms  # the front's index holds every key journaled since; the rest is loaded
        self.ids = itertools.count(1)
        self.noting = {}  # KeysCommitting id -> future resolved by the front's Noted

    def load(self, keys, newest):
        self.channel.send(KeysLoaded(keys, list(newest.items())))

    def committing(self, pairs):
        """A future done once the front has marked the pairs unknown (the import commits only then)."""
        key_id = next(self.ids)
        future = self.noting[key_id] = asyncio.get_running_loop().create_future()
        self.channel.send(KeysCommitting(key_id, pairs))
        return future

    def committed(self, pairs):
        self.channel.send(KeysCommitted(pairs))

    def noted(self, key_id):
        future = self.noting.pop(key_id, None)
        if future is not None and not future.done():
            future.set_result(None)


def status(started, ingester):
    cpu = os.times()
    stuck = ingester.store.state != "writable" or ingester.last_error
    return Status(os.getpid(), started, round(cpu.user + cpu.system, 3), ingester.why_waiting() if stuck else "")


async def report_status(channel, started, ingester):
    while True:
        channel.send(status(started, ingester))
        await asyncio.sleep(STATUS_EVERY_S)


def http_server(settings, parts, path):
    """The engine's routes, served on the Unix socket at path (only the front's user may connect)."""
    app = make_app(settings, parts)
    http = HTTPServer(app, max_body_size=4 * settings.max_body_bytes)
    http.add_socket(bind_unix_socket(path, mode=0o600))
    return http


def remove_socket(path):
    """The socket and the private folder the front made for it, which a front that died cannot remove itself."""
    for remove, name in ((os.unlink, path), (os.rmdir, os.path.dirname(path))):
        try:
            remove(name)
        except FileNotFoundError:  # the front removed them after all (it stopped while the engine was finishing)
            return
        except OSError as exc:
            log.warning("cannot remove %s the front left: %s", name, exc.strerror or exc)
            return


async def run(settings, args, sock):
    started = time.time()
    channel = await Channel.over(sock)
    first = await channel.receive()
    if not isinstance(first, Durable):
        log.error("the front's first message was %r, not where the journal is durable: exiting", first)
        return
    tail = Tail(args["journal"], first.position)
    keys = FrontKeys(channel, args["keys_since_ms"])

    def settled(outcomes):
        channel.send(Ingested(parts.ingester.position, [outcome(seq, result) for seq, _, result in outcomes]))

    parts = server.with_metrics(server.storage_parts(settings, tail, keys, on_settled=settled))
    try:
        await server.open_store(parts)
    except server.StartupError as exc:
        channel.send(Fatal(str(exc)))
        await channel.close()
        return
    if parts.store.state == "writable":
        await server.when_writable(parts)
    http = http_server(settings, parts, args["http_socket"])
    server.start_storage(parts)
    reporting = asyncio.ensure_future(report_status(channel, started, parts.ingester))
    while isinstance(message := await channel.receive(), Durable | Noted):
        if isinstance(message, Durable):
            parts.ingester.wanted(message.wanted)
            tail.told(message.position)
        else:
            keys.noted(message.id)
    reporting.cancel()
    log.info("the front %s: ingesting what is durable, then exiting", "is gone" if message is None else "stops")
    http.stop()
    await server.stop_storage(parts, asyncio.get_running_loop().time() + settings.shutdown_grace_s)
    await http.close_all_connections()
    await channel.close()
    if message is None:
        remove_socket(args["http_socket"])
