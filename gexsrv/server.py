"""serve(settings): open the store and the journal, replay what the journal holds past the last ingest, start
ingest and the HTTP server, and shut down cleanly on a signal.

The flow of a write, one module each: handlers -> decode -> intake -> journal -> ingest -> store (-> lake).
"""

import asyncio
import gc
import logging
import os
import signal
import sys
from dataclasses import dataclass

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gexsrv import batches, gexwrite  # noqa: F401  (gexwrite and uw.writer register their kinds with the store)
from gexsrv.app import make_app
from gexsrv.archive import Archiver, archive_dir
from gexsrv.decode import Rules
from gexsrv.history.runner import Runner
from gexsrv.ingest import Ingester
from gexsrv.intake import Intake
from gexsrv.journal import Journal
from gexsrv.keys import RecentKeys
from gexsrv.lake import Lake
from gexsrv.latest import Latest
from gexsrv.notify import Notifier
from gexsrv.outputs import Outputs
from gexsrv.poller import Poller
from gexsrv.store import Store
from gexsrv.uw import trades, writer  # noqa: F401

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


def listen(app, settings):
    """Bind and serve; return the HTTPServer and the address it listens on."""
    # Bodies are size-checked in the handlers (413 with a JSON reason); this is only the hard stop.
    server = HTTPServer(app, max_body_size=4 * settings.max_body_bytes, idle_connection_timeout=300)
    sockets = bind_sockets(settings.port, settings.host)
    server.add_sockets(sockets)
    return server, sockets[0].getsockname()[:2]


async def until_signalled():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


@dataclass
class Parts:
    """The server's running pieces, as make_app hands them to the handlers."""

    store: Store
    journal: Journal
    ingester: Ingester
    archiver: Archiver
    intake: Intake
    keys: RecentKeys
    notifier: Notifier
    latest: Latest
    outputs: Outputs | None
    lake: Lake
    runner: Runner
    poller: Poller | None


def build(settings):
    rules = Rules.from_settings(settings)
    store = Store(settings.data_dir, settings.duckdb_threads, settings.duckdb_checkpoint_mb, settings.duckdb_memory_mb)
    journal = Journal(os.path.join(settings.data_dir, "journal"), settings.journal_segment_mb << 20,
                      settings.journal_segment_seconds)
    ingester = Ingester(store, journal, rules, settings.ingest_interval_ms, settings.ingest_batch_records,
                        settings.ingest_max_records, settings.ingest_memory_mb << 20)
    archiver = Archiver(journal, lambda: ingester.position[2], archive_dir(settings.data_dir),
                        settings.archive_retention_days)
    keys = RecentKeys(settings.duplicate_horizon_s)
    intake = Intake(journal, ingester, keys, settings.backlog_max_records, settings.backlog_max_mb << 20,
                    settings.ack_ingested_timeout_s)
    notifier = Notifier.from_settings(settings)
    latest = Latest()
    outputs = Outputs(settings.outputs_dir, latest) if settings.outputs_dir else None
    intake.observers += [latest.observe] + ([outputs.observe] if outputs else [])
    ingester.observers.append(trades.announcer(notifier))
    lake = Lake(settings.data_dir, store, settings.lake_export_interval)
    poller = None
    if settings.gexbot_api_key:
        poller = Poller(settings.gexbot_api_url, settings.gexbot_api_key, settings.poll_interval, intake, rules)
    return Parts(store, journal, ingester, archiver, intake, keys, notifier, latest, outputs, lake,
                 Runner(settings, store, notifier, lake), poller)


async def recover(parts):
    """Open the database and the journal, and ingest what the journal holds past the last ingest."""
    parts.store.open()
    position = await parts.store.run(parts.store.journal_position) if parts.store.state == "writable" else (0, 0, 0)
    parts.journal.open(position[2])
    if parts.store.state == "writable":
        await parts.ingester.open()
        parts.keys.load(await parts.store.run(parts.store.recent_keys, parts.keys.start_ms),
                        await parts.store.run(parts.store.newest_keys))


async def serve(settings):
    parts = build(settings)
    await recover(parts)
    server, (host, port) = listen(make_app(settings, parts), settings)
    batches.warm_up()
    tune_interpreter()
    parts.journal.start()
    parts.ingester.start()
    parts.intake.start()
    await parts.archiver.start()
    loading = asyncio.create_task(parts.latest.load(parts.store))  # in the background: serving starts at once
    if parts.outputs:
        parts.outputs.start()
    if parts.store.state == "writable":
        await parts.lake.start()
        await parts.runner.start()
    if parts.poller:
        parts.poller.start()
    log.info("gexsrv listening on http://%s:%d  (database %s, %s)", host, port, parts.store.path, parts.store.state)
    await until_signalled()

    log.info("shutting down: no new connections, ingesting what is journaled")
    server.stop()
    parts.intake.closed = True  # requests on open connections now get 503
    if parts.poller:
        parts.poller.stop()
    await parts.runner.close()
    await parts.lake.stop()
    await parts.ingester.close()
    await parts.archiver.close()
    await parts.journal.close()
    await server.close_all_connections()
    await loading
    if parts.outputs:
        await parts.outputs.close()
    if parts.store.state == "writable":
        await parts.lake.close()
    await parts.notifier.close()  # last: the records ingested above may still have announced trades
    parts.store.close()
    log.info("stopped")
