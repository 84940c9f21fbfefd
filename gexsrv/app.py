"""make_app: the one route list, and the /health report."""

import asyncio
import time
from importlib import resources

from tornado.log import access_log
from tornado.web import Application

from gexsrv import __version__, auth, handlers
from gexsrv.api import (WEB, LatestHandler, MetricsHandler, PageHandler, SnapshotsHandler, SqlHandler,
                        StatusHandler, StrikesHandler)
from gexsrv.dayview import DayPageHandler, DaysHandler, HeatmapHandler
from gexsrv.decode import Rules
from gexsrv.history.handlers import HistoryDaysHandler, HistoryHandler
from gexsrv.metrics import route_label
from gexsrv.origins import Gate
from gexsrv.store import StorageError
from gexsrv.uw.handler import UwHandler
from gexsrv.validate.service import integrity_report


async def read_or_none(read):
    """/health reports storage trouble; it never fails because of it."""
    try:
        return await asyncio.to_thread(read)
    except StorageError:
        return None


def failing_tasks(parts):
    """The background tasks failing again and again (gexsrv.streak), each with its last error."""
    streaks = [parts.archiver.streak, *(part.streak for part in (parts.lake, parts.outputs, parts.poller) if part)]
    return [streak.report() for streak in streaks if streak.degraded]


def health_report(parts, started, bodies_in_flight):
    async def report():
        store, journal, ingester = parts.store, parts.journal, parts.ingester
        pending = await read_or_none(store.pending_history_jobs)
        quarantined = await read_or_none(store.quarantined)
        failing = failing_tasks(parts)
        return {
            "status": "ok" if store.state == "writable" and parts.supervisor.since is None
                      and not (journal.error or journal.refusing or failing) else "degraded",
            "failing_tasks": failing,
            "version": __version__,
            "uptime_s": round(time.monotonic() - started, 3),
            "storage": {"state": store.state, "path": store.path, "error": store.error, "cause": store.cause,
                        "quarantined": quarantined, "commit_conflicts": dict(store.conflicts),
                        **parts.supervisor.report()},
            "journal": {**journal.report(), "bytes_waiting": journal.bytes_after(ingester.position),
                        "refused_busy": parts.intake.refused, "duplicate_index_keys": len(parts.keys)},
            "ingest": ingester.report(),
            "archive": parts.archiver.report(),
            "stored_since_start": dict(ingester.stored),
            "connections": {**parts.connections.report(), "bodies_in_flight_bytes": bodies_in_flight[0]},
            "history": {"pending_jobs": pending},
            "poller": parts.poller.report() if parts.poller else {"enabled": False},
            "lake": parts.lake.report() if parts.lake else None,
            "latest": {**parts.latest.report(), "outputs": parts.outputs.report() if parts.outputs else None},
        }
    return report


def request_logger(debug, observe, slow_ms=1000):
    """Time every request (observe: Metrics.observe_request); log errors and slow requests (every request with
    --debug): a line per request costs real CPU at 1,000/s."""
    def log(handler):
        observe(handler)
        status, ms = handler.get_status(), 1000 * handler.request.request_time()
        if debug or status >= 400 or ms > slow_ms:
            level = access_log.warning if status >= 400 or ms > slow_ms else access_log.info
            level("%d %s %.2fms", status, handler._request_summary(), ms)
    return log


class OpenApiHandler(handlers.BaseHandler):
    """GET /openapi.json: the OpenAPI description of these routes, packaged with gexsrv (docs/openapi.json)."""

    open_to_all = True  # it describes the interface, no stored data

    def get(self):
        self.finish(self.document)


def labelled(routes):
    """Each handler learns its route (`route`), the label /metrics counts its requests under."""
    return [(pattern, handler, {**deps, "route": route_label(pattern)}) for pattern, handler, deps in routes]


def make_app(settings, parts):
    """The routes, each handler given what it needs; `parts` are the server's running pieces (gexsrv.server)."""
    bodies_in_flight = [0]  # bytes of request bodies being received, all connections together
    health = health_report(parts, time.monotonic(), bodies_in_flight)
    ingest = dict(intake=parts.intake, rules=Rules.from_settings(settings))
    # A trailing slash names the same route, as the original stripped it.
    return Application(
        labelled([
            (r"/health/?", handlers.HealthHandler, dict(health=health)),
            (r"/gex/?", handlers.GexHandler, ingest),
            (r"/uw/?", UwHandler, ingest),
            (r"/gex_history_url/?", HistoryHandler, dict(runner=parts.runner)),
            # No job id has more than 18 digits (BIGINT); a longer one is an unknown path, not a failed int().
            (r"/gex_history_url/(\d{1,18})/?", HistoryHandler, dict(runner=parts.runner)),
            (r"/gex_history_url/days/?", HistoryDaysHandler, dict(runner=parts.runner)),
            (r"/integrity/?", handlers.IntegrityHandler, dict(integrity=integrity_report(parts.store))),
            (r"/api/latest/?", LatestHandler, dict(latest=parts.latest)),
            (r"/openapi\.json/?", OpenApiHandler,
             dict(document=resources.files("gexsrv").joinpath("openapi.json").read_bytes())),
            (r"/api/status/?", StatusHandler, dict(health=health, store=parts.store, runner=parts.runner,
                                                   latest=parts.latest, log_tail=parts.metrics.log_tail)),
            (r"/api/snapshots/?", SnapshotsHandler, dict(store=parts.store)),
            (r"/api/strikes/?", StrikesHandler, dict(store=parts.store, feeds=parts.latest.feeds)),
            (r"/api/heatmap/?", HeatmapHandler, dict(store=parts.store)),
            (r"/api/days/?", DaysHandler, dict(store=parts.store)),
            (r"/api/sql/?", SqlHandler, dict(store=parts.store, worker=parts.sql)),
            (r"/metrics/?", MetricsHandler, dict(metrics=parts.metrics)),
            (r"/()", PageHandler, dict(path=WEB, default_filename="index.html")),
            (r"/web/(.+)", PageHandler, dict(path=WEB)),
            (r"/day/?", DayPageHandler, dict(path=WEB)),
        ]),
        default_handler_class=handlers.NotFoundHandler,
        serve_traceback=settings.debug,
        log_function=request_logger(settings.debug, parts.metrics.observe_request),
        gexsrv=settings,
        gate=Gate.from_settings(settings),
        signatures=auth.Signatures.from_settings(settings),
        bodies_in_flight=bodies_in_flight,
        requests_in_flight=[0],  # writes being handled, which a shutdown lets finish
    )
