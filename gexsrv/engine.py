"""The engine process: it owns gex_data.db. It reads the journal the front writes (gexsrv.journal_tail), never past
the durable position the front last told it (Durable), ingests as a single process does (gexsrv.ingest, with the
replaying rules: accepted records are never refused again), and tells the front every seq's outcome (Ingested).

Forked by the spawner (gexsrv.spawner) as "gexsrv.engine:main". The front's first message is where the journal
is durable; the engine's first is where the database's ingest stands, before its replay at start (an Ingested
without outcomes): every pending seq up to it was ingested by an engine before this one, which may have died
before telling; the outcome of every seq after it follows. Stop, or the front's end closing (it died), ends the
engine once what is durable is ingested (within shutdown_grace_s).

It answers the front's reads (Call: a name of READS and its arguments) on worker threads, on the store's read
connections, never waiting for an ingest; and every STATUS_EVERY_S it says how it is (Status: its pid, start, CPU
seconds, and the /health sections it owns).
"""

import asyncio
import logging
import os
import time

import msgspec

from gexsrv import kinds, reads
from gexsrv.archive import archive_dir
from gexsrv.channel import Call, Channel, Durable, Ingested, Outcome, Reply, Status
from gexsrv.decode import Rules
from gexsrv.ingest import Ingester
from gexsrv.journal_tail import Tail
from gexsrv.settings import Settings
from gexsrv.store import StorageError, Store

log = logging.getLogger("gexsrv.engine")
STATUS_EVERY_S = 1.0
# The reads the front may call, each fn(store, *args) run on a worker thread.
READS = {
    "snapshots": reads.snapshots,
    "snapshot": reads.snapshot,
    "quarantined": Store.quarantined,
    "pending_history_jobs": Store.pending_history_jobs,
}


def main(sock, args):
    asyncio.run(run(msgspec.convert(args["settings"], Settings), args["journal"], sock))


def outcome(seq, result):
    """A seq's ingest outcome as the channel carries it: stored, a duplicate, or refused with its error."""
    if isinstance(result, Exception):
        return Outcome(seq, False, str(result))
    return Outcome(seq, bool(result))


def make_ingester(settings, store, tail, channel):
    def settled(outcomes):
        channel.send(Ingested(ingester.position, [outcome(seq, result) for seq, _, result in outcomes]))

    ingester = Ingester(store, tail, archive_dir(settings.data_dir), Rules.from_settings(settings).replaying(),
                        settings.ingest_interval_ms, settings.ingest_batch_records, settings.ingest_max_records,
                        settings.ingest_memory_mb << 20, on_settled=settled)
    return ingester


async def answer(channel, store, call):
    """Run one Call and send its Reply: the result, or why the read failed (StorageError, an unknown name)."""
    read = READS.get(call.name)
    if read is None:
        channel.send(Reply(call.id, error=f"no read named {call.name!r}"))
        return
    try:
        result = await asyncio.to_thread(read, store, *call.args)
    except StorageError as exc:
        channel.send(Reply(call.id, error=str(exc)))
        return
    channel.send(Reply(call.id, msgspec.Raw(msgspec.msgpack.encode(result))))


def status(store, ingester, started):
    cpu = os.times()
    return Status(os.getpid(), started, round(cpu.user + cpu.system, 3), {
        "storage": {"state": store.state, "path": store.path, "error": store.error, "cause": store.cause},
        "ingest": ingester.report()})


async def report_status(channel, store, ingester, started):
    while True:
        channel.send(status(store, ingester, started))
        await asyncio.sleep(STATUS_EVERY_S)


async def run(settings, journal_folder, sock):
    started = time.time()
    channel = await Channel.over(sock)
    first = await channel.receive()
    if not isinstance(first, Durable):
        log.error("the front's first message was %r, not where the journal is durable: exiting", first)
        return
    tail = Tail(journal_folder, first.position)
    store = Store(settings.data_dir, kinds.WRITERS, settings.duckdb_threads, settings.duckdb_checkpoint_mb,
                  settings.duckdb_memory_mb)
    store.open()
    if store.state != "writable":
        log.error("the database is %s (%s): the engine cannot ingest", store.state, store.error)
        return
    # First, where the database stands: what an engine before this one ingested, maybe without telling.
    channel.send(Ingested(await store.run(store.journal_position), []))
    ingester = make_ingester(settings, store, tail, channel)
    await ingester.open()
    ingester.start()
    reporting = asyncio.ensure_future(report_status(channel, store, ingester, started))
    while isinstance(message := await channel.receive(), Durable | Call):
        if isinstance(message, Durable):
            tail.told(message.position)
        else:
            asyncio.ensure_future(answer(channel, store, message))
    reporting.cancel()
    log.info("the front %s: ingesting what is durable, then exiting", "is gone" if message is None else "stops")
    await ingester.close(asyncio.get_running_loop().time() + settings.shutdown_grace_s)
    store.close()
    await channel.close()
