"""serve(settings): open the store and the journal, replay what the journal holds past the last ingest, start
ingest and the HTTP server, and shut down cleanly on a signal.

The flow of a write, one module each: handlers -> decode -> intake -> journal -> ingest -> store (-> lake).
"""

import asyncio
import errno
import gc
import logging
import os
import signal
import sys
import tempfile
from dataclasses import dataclass

from tornado.netutil import bind_sockets

from gexsrv import batches, journal_home, kinds
from gexsrv.app import make_app
from gexsrv.archive import Archiver, Unreadable, archive_dir, last_seq
from gexsrv.connections import CappedHTTPServer, Connections, TooFewDescriptors, raise_descriptor_limit
from gexsrv.decode import Rules
from gexsrv.history.runner import Runner
from gexsrv.ingest import Ingester
from gexsrv.intake import Intake
from gexsrv.journal import MARK_NAME, Journal, JournalBusy, JournalCorrupt
from gexsrv.journal_tail import Tail
from gexsrv.keys import RecentKeys
from gexsrv.lake import Lake
from gexsrv.latest import Latest
from gexsrv.metrics import Metrics
from gexsrv.notify import Notifier
from gexsrv.outputs import Outputs
from gexsrv.poller import Poller
from gexsrv.position import START
from gexsrv.sqlworker import SqlWorker
from gexsrv.store import Store
from gexsrv.supervisor import Supervisor
from gexsrv.uw import trades

log = logging.getLogger("gexsrv")


def tune_interpreter():
    # The store's thread needs the GIL now and then during an ingest (DuckDB's Python-side Arrow scan); with the
    # default 5 ms switch interval each of those waits behind the event loop. Measured on a 5-snapshot commit
    # beside a half-busy loop: 13.5 ms at 5 ms, 12.2 ms at 0.5 ms, 9.5 ms at 0.1-0.2 ms.
    sys.setswitchinterval(0.0002)
    # What start-up built lives as long as the process: keep it out of every collection. Each request leaves
    # only short-lived objects, freed by reference counting; a collection every 700 allocations (the default)
    # cost ~10% of the event loop at saturation.
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def listen(app, settings, sockets, connections):
    """Serve on the bound sockets; return the HTTPServer and the address it listens on."""
    # Bodies are size-checked in the handlers (413 with a JSON reason); this is only the hard stop.
    server = CappedHTTPServer(app, connections=connections, retry_after=settings.retry_after_seconds,
                              max_body_size=4 * settings.max_body_bytes,
                              idle_connection_timeout=settings.idle_connection_timeout_s,
                              body_timeout=settings.body_timeout_s)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[:2]


async def until(done, deadline):
    while not done() and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.01)


def stop_signal():
    """The event SIGINT and SIGTERM set; taken before the port is bound, so a signal during the start is a clean
    stop once the start is done, never the default action's death."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@dataclass
class Parts:
    """The server's running pieces, as make_app hands them to the handlers. One process holds them all; with
    processes = 2 the front holds the journal's writing side (journal ... link) and the engine the rest
    (gexsrv.front, gexsrv.engine), each leaving the other's None."""

    journal: Journal | Tail  # the engine reads the front's journal (gexsrv.journal_tail)
    keys: RecentKeys
    connections: Connections | None = None
    store: Store | None = None
    ingester: Ingester | None = None
    supervisor: Supervisor | None = None
    notifier: Notifier | None = None
    latest: Latest | None = None
    outputs: Outputs | None = None
    lake: Lake | None = None
    runner: Runner | None = None
    sql: SqlWorker | None = None  # where GET /api/sql's queries run
    archiver: Archiver | None = None
    intake: Intake | None = None
    poller: Poller | None = None
    link: "EngineLink | None" = None  # the front's side of the engine (gexsrv.engine_link)
    metrics: Metrics | None = None  # made from the other parts


def storage_parts(settings, journal, keys, on_settled=None):
    """The parts that own the database: ingest of what `journal` holds, history, lake, reads (the engine's)."""
    rules = Rules.from_settings(settings)
    store = Store(settings.data_dir, kinds.WRITERS, settings.duckdb_threads, settings.duckdb_checkpoint_mb,
                  settings.duckdb_memory_mb)
    # ingest decodes journaled bodies again: accepted ones, which today's limits must not refuse
    ingester = Ingester(store, journal, archive_dir(settings.data_dir), rules.replaying(),
                        settings.ingest_interval_ms, settings.ingest_batch_records, settings.ingest_max_records,
                        settings.ingest_memory_mb << 20, on_settled=on_settled)
    notifier = Notifier.from_settings(settings)
    supervisor = Supervisor(store, notifier)
    ingester.on_failure = supervisor.trouble
    latest = Latest(settings.future_tolerance_s, settings.max_feeds)
    outputs = Outputs(settings.outputs_dir, latest) if settings.outputs_dir else None
    ingester.observers += [latest.observe, latest.feeds.observe, *([outputs.observe] if outputs else []),
                           trades.announcer(notifier)]
    lake = Lake(settings.data_dir, store, settings.lake_export_interval)
    parts = Parts(journal, keys, store=store, ingester=ingester, supervisor=supervisor, notifier=notifier,
                  latest=latest, outputs=outputs, lake=lake, runner=Runner(settings, store, notifier, lake, keys=keys),
                  sql=SqlWorker())
    supervisor.recovered.append(lambda: when_writable(parts))
    return parts


def journal_parts(settings, parts, consumer):
    """The parts that take writes in: intake into parts.journal, consumed by `consumer` (the Ingester, or the
    front's EngineLink), the archive of what it consumed, the poller, the connection cap."""
    parts.intake = Intake(parts.journal, consumer, parts.keys, settings.backlog_max_records,
                          settings.backlog_max_mb << 20, settings.ack_ingested_timeout_s)
    parts.archiver = Archiver(parts.journal, lambda: consumer.position.seq, archive_dir(settings.data_dir),
                              settings.archive_retention_days, settings.archive_interval_s,
                              settings.archive_zstd_level)
    if settings.gexbot_api_key:
        parts.poller = Poller(settings.gexbot_api_url, settings.gexbot_api_key, settings.poll_interval, parts.intake,
                              Rules.from_settings(settings))
    parts.connections = Connections(settings.max_connections)


def journal_of(settings, folder):
    return Journal(folder, settings.journal_segment_mb << 20, settings.journal_segment_seconds)


def with_metrics(parts):
    parts.metrics = Metrics(parts)
    if parts.ingester:
        parts.ingester.on_ingest = parts.metrics.observe_ingest
    logging.getLogger().addHandler(parts.metrics.log_tail)
    return parts


def build(settings, journal_folder):
    """One process: every part."""
    parts = storage_parts(settings, journal_of(settings, journal_folder), RecentKeys(settings.duplicate_horizon_s))
    journal_parts(settings, parts, parts.ingester)
    return with_metrics(parts)


class StartupError(Exception):
    """Why the server cannot start, in one sentence with the fix."""


def usable(folder, what, flag):
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise StartupError(f"the {what} {folder} is a file, not a folder; choose another with {flag}")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise StartupError(f"the {what} {folder} cannot be written ({exc.strerror or exc}); fix its permissions "
                           f"or choose another with {flag}") from None


def journal_folder(settings):
    try:
        folder = journal_home.settle(settings.data_dir, settings.journal_dir)
    except journal_home.JournalMoved as exc:
        raise StartupError(str(exc)) from None
    usable(folder, "journal dir", "--journal-dir")
    return folder


def bind(settings):
    try:
        return bind_sockets(settings.port, settings.host)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {settings.port} on {settings.host} is already in use by another program; stop "
                               "it, or choose another port with --port") from None
        raise StartupError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror or exc}); choose "
                           "another --host or --port") from None


async def open_store(parts):
    """Open the database; StartupError if it is not a DuckDB database (gexsrv never overwrites it)."""
    parts.store.open()
    if parts.store.cause == "damaged":
        raise StartupError(f"{parts.store.path} is not a readable DuckDB database ({parts.store.error}); gexsrv "
                           "never overwrites it: restore it from a backup, or move it aside to start afresh")


def open_journal(parts, known_seq, data_dir):
    try:
        parts.journal.open(known_seq, lambda: last_seq(archive_dir(data_dir)))
    except (JournalCorrupt, JournalBusy) as exc:
        raise StartupError(str(exc)) from None
    except Unreadable as exc:
        raise StartupError(f"{exc}: the journal has no {MARK_NAME}, so numbering goes on after the archive's newest "
                           f"record, which cannot be read; restore that file, or write the highest seq ever used "
                           f"into {os.path.join(parts.journal.folder, MARK_NAME)}") from None


async def recover(parts):
    """Open the database and the journal, and ingest what the journal holds past the last ingest."""
    await open_store(parts)
    position = await parts.store.run(parts.store.journal_position) if parts.store.state == "writable" else START
    open_journal(parts, position.seq, parts.store.data_dir)
    if parts.store.state == "writable":
        await when_writable(parts)


async def when_writable(parts):
    """What needs the database writable: run at start, and again each time it is back after an incident."""
    await parts.ingester.open()
    parts.keys.load(await parts.store.run(parts.store.recent_keys, parts.keys.start_ms),
                    await parts.store.run(parts.store.newest_keys))
    if parts.lake.task is None:
        await parts.lake.start()
    if parts.runner.task is None:
        await parts.runner.start()
    parts.latest.start_loading(parts.store)


def enough_descriptors(settings):
    try:
        raise_descriptor_limit(settings.max_connections)
    except TooFewDescriptors as exc:
        raise StartupError(str(exc)) from None


def prepare_to_serve(settings):
    """What every start checks first; the bound TCP sockets."""
    enough_descriptors(settings)
    usable(settings.data_dir, "data dir", "--data-dir")
    return bind(settings)


async def start_journal(parts):
    parts.journal.start()
    parts.intake.start()
    await parts.archiver.start()
    if parts.poller:
        parts.poller.start()


def start_storage(parts):
    parts.ingester.start()
    parts.supervisor.start()
    if parts.outputs:
        parts.outputs.start()


async def stop_taking_writes(parts, app, server, deadline):
    """No new connections; new requests on open ones get 503; wait for the writes in flight until deadline."""
    server.stop()
    parts.intake.closed = True
    await until(lambda: not app.settings["requests_in_flight"][0], deadline)
    if parts.poller:
        parts.poller.stop()


async def stop_storage(parts, deadline):
    """Ingest what is journaled (until deadline), then close the database's parts, the store last."""
    await parts.sql.close()  # a query may run for sql_timeout_ms: stop it rather than wait
    await parts.runner.close()
    await parts.lake.stop()
    await parts.ingester.close(deadline)
    await parts.supervisor.close()
    await parts.latest.close()
    if parts.outputs:
        await parts.outputs.close()
    if parts.store.state == "writable":
        await parts.lake.close()
    await parts.notifier.close()  # last: the records ingested above may still have announced trades
    parts.store.close()


async def stop_journal(parts, server):
    await parts.archiver.close()
    await parts.journal.close()
    await server.close_all_connections()


async def serve(settings):
    """One process: HTTP, journal and database (processes = 1)."""
    stop = stop_signal()
    sockets = prepare_to_serve(settings)
    parts = build(settings, journal_folder(settings))
    await recover(parts)
    app = make_app(settings, parts)
    server, (host, port) = listen(app, settings, sockets, parts.connections)
    batches.warm_up()
    tune_interpreter()
    await start_journal(parts)
    start_storage(parts)
    log.info("gexsrv listening on http://%s:%d  (database %s, %s)", host, port, parts.store.path, parts.store.state)
    await stop.wait()

    log.info("shutting down: no new connections, finishing requests in flight, ingesting what is journaled")
    deadline = asyncio.get_running_loop().time() + settings.shutdown_grace_s
    await stop_taking_writes(parts, app, server, deadline)
    await stop_storage(parts, deadline)
    await stop_journal(parts, server)
    log.info("stopped")
