"""serve(settings): open the store, start the writer and the HTTP server, and shut down cleanly on a signal."""

import asyncio
import gc
import logging
import signal
import sys

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from gexsrv import batches
from gexsrv.app import make_app
from gexsrv.buffer import Buffer
from gexsrv.decode import Rules
from gexsrv.history.runner import Runner
from gexsrv.lake import Lake
from gexsrv.latest import Latest
from gexsrv.notify import Notifier
from gexsrv.outputs import Outputs
from gexsrv.poller import Poller
from gexsrv.store import Store
from gexsrv.writer import Writer

log = logging.getLogger("gexsrv")


def tune_interpreter():
    # The writer thread needs the GIL many times per commit (Arrow building, DuckDB's Python-side Arrow scan);
    # with the default 5 ms switch interval each of those waits behind the event loop. Measured on a 5-snapshot
    # commit beside a half-busy loop: 13.5 ms at 5 ms, 12.2 ms at 0.5 ms, 9.5 ms at 0.1-0.2 ms.
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


async def serve(settings):
    store = Store(settings.data_dir, settings.duckdb_threads, settings.duckdb_checkpoint_mb, settings.duckdb_memory_mb)
    store.open()
    writer = Writer(store, None, settings.flush_interval_ms, settings.flush_max_records)
    writer.buffer = Buffer(settings.buffer_max_records, notify=writer.kick)
    latest = Latest()
    outputs = Outputs(settings.outputs_dir, latest) if settings.outputs_dir else None
    writer.observers += [latest.observe] + ([outputs.observe] if outputs else [])
    poller = None
    if settings.gexbot_api_key:
        poller = Poller(settings.gexbot_api_url, settings.gexbot_api_key, settings.poll_interval, writer.buffer,
                        Rules.from_settings(settings))
    lake = Lake(settings.data_dir, store, writer, settings.lake_export_interval)
    notifier = Notifier.from_settings(settings)
    runner = Runner(settings, store, writer, notifier, lake)
    app = make_app(settings, store, writer.buffer, writer, notifier, latest, outputs, poller, runner)
    server, (host, port) = listen(app, settings)
    batches.warm_up()
    tune_interpreter()
    writer.start()
    loading = asyncio.create_task(latest.load(store))  # in the background: serving starts at once
    if outputs:
        outputs.start()
    if store.state == "writable":
        await lake.start()
        await runner.start()
    if poller:
        poller.start()
    log.info("gexsrv listening on http://%s:%d  (database %s, %s)", host, port, store.path, store.state)
    await until_signalled()

    log.info("shutting down: no new connections, committing what is buffered")
    server.stop()
    if poller:
        poller.stop()
    await runner.close()
    await lake.stop()
    await writer.close()
    await loading
    if outputs:
        await outputs.close()
    if store.state == "writable":
        await lake.close()
    await server.close_all_connections()
    await notifier.close()  # last: the requests answered above may still have announced trades
    store.close()
    log.info("stopped")
