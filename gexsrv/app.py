"""make_app: the one route list, and the /health report."""

import asyncio
import time

from tornado.log import access_log
from tornado.web import Application

from gexsrv import __version__, handlers
from gexsrv.api import LatestHandler
from gexsrv.decode import Rules
from gexsrv.history.handlers import HistoryHandler
from gexsrv.uw.handler import UwHandler
from gexsrv.validate.service import integrity_report


def health_report(settings, store, buffer, writer, poller, lake, latest, outputs, started):
    async def report():
        pending = await asyncio.to_thread(store.pending_history_jobs) if store.reader is not None else None
        return {
            "status": "ok" if store.state == "writable" else "degraded",
            "version": __version__,
            "uptime_s": round(time.monotonic() - started, 3),
            "storage": {"state": store.state, "path": store.path, "error": store.error},
            "buffer": {"depth": len(buffer), "max": buffer.max_records, "rejected": buffer.rejected},
            "writer": {
                "busy": writer.busy, "last_flush_at": writer.last_flush_at,
                "last_flush_ms": writer.last_flush_ms, "last_batch": writer.last_batch,
                "failed_batches": writer.failed_batches, "recent": writer.report(),
            },
            "stored_since_start": dict(writer.stored),
            "history": {"pending_jobs": pending},
            "poller": poller.report() if poller else {"enabled": False},
            "lake": lake.report() if lake else None,
            "latest": {**latest.report(), "outputs": outputs.report() if outputs else None},
        }
    return report


def request_logger(debug, slow_ms=1000):
    """Log errors and slow requests (every request with --debug): a line per request costs real CPU at 1,000/s."""
    def log(handler):
        status, ms = handler.get_status(), 1000 * handler.request.request_time()
        if debug or status >= 400 or ms > slow_ms:
            level = access_log.warning if status >= 400 or ms > slow_ms else access_log.info
            level("%d %s %.2fms", status, handler._request_summary(), ms)
    return log


def make_app(settings, store, buffer, writer, notifier, latest, outputs=None, poller=None, runner=None):
    lake = runner.lake if runner else None
    health = health_report(settings, store, buffer, writer, poller, lake, latest, outputs, time.monotonic())
    rules = Rules.from_settings(settings)
    # A trailing slash names the same route, as the original stripped it.
    return Application(
        [
            (r"/health/?", handlers.HealthHandler, dict(health=health)),
            (r"/gex/?", handlers.GexHandler, dict(buffer=buffer, rules=rules)),
            (r"/uw/?", UwHandler, dict(buffer=buffer, rules=rules, notifier=notifier)),
            (r"/gex_history_url/?", HistoryHandler, dict(runner=runner)),
            (r"/gex_history_url/(\d+)/?", HistoryHandler, dict(runner=runner)),
            (r"/integrity/?", handlers.IntegrityHandler, dict(integrity=integrity_report(store))),
            (r"/api/latest/?", LatestHandler, dict(latest=latest)),
        ],
        default_handler_class=handlers.NotFoundHandler,
        serve_traceback=settings.debug,
        log_function=request_logger(settings.debug),
        gexsrv=settings,
    )
