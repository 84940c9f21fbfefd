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
    tasks = (parts.archiver, parts.lake, parts.outputs, parts.poller)
    return [task.streak.report() for task in tasks if task and task.streak.degraded]


async def storage_health(parts):
    """(ok, /health's sections) of the parts that own the database."""
    store, ingester = parts.store, parts.ingester
    pending = await read_or_none(store.pending_history_jobs)
    quarantined = await read_or_none(store.quarantined)
    return store.state == "writable" and parts.supervisor.since is None, {
        "storage": {"state": store.state, "path": store.path, "error": store.error, "cause": store.cause,
                    "quarantined": quarantined, "commit_conflicts": dict(store.conflicts),
                    **parts.supervisor.report()},
        "ingest": ingester.report(),
        "stored_since_start": dict(ingester.stored),
        "history": {"pending_jobs": pending},
        "lake": parts.lake.report(),
        "latest": {**parts.latest.report(), "outputs": parts.outputs.report() if parts.outputs else None},
    }


def journal_health(parts, bodies_in_flight):
    """(ok, /health's sections) of the parts that take writes in; the journal's consumer is the Ingester, or the
    front's link to the engine."""
    journal, consumer = parts.journal, parts.ingester or parts.link
    return not (journal.error or journal.refusing), {
        "journal": {**journal.report(), "bytes_waiting": journal.bytes_after(consumer.position),
                    "refused_busy": parts.intake.refused, "duplicate_index_keys": len(parts.keys)},
        "archive": parts.archiver.report(),
        "connections": {**parts.connections.report(), "bodies_in_flight_bytes": bodies_in_flight[0]},
        "poller": parts.poller.report() if parts.poller else {"enabled": False},
    }


def health_report(parts, started, bodies_in_flight, engine_health=None):
    """/health as a coroutine function: the sections of the parts this process holds. The front gives
    engine_health, a coroutine function of the engine's (ok, sections)."""
    async def report():
        awaited = []
        if parts.store is not None:
            awaited.append(await storage_health(parts))
        if engine_health is not None:
            awaited.append(await engine_health())
        # after the awaits and with none between them: a task's counts and its streak from one moment
        reports = awaited + ([journal_health(parts, bodies_in_flight)] if parts.intake is not None else [])
        failing = failing_tasks(parts) + [task for _, sections in reports for task in sections.pop("failing_tasks", [])]
        ok = all(each_ok for each_ok, _ in reports) and not failing
        merged = {name: value for _, sections in reports for name, value in sections.items()}
        return {"status": "ok" if ok else "degraded", "failing_tasks": failing, "version": __version__,
                "uptime_s": round(time.monotonic() - started, 3), **merged}
    return report


def request_logger(debug, observe, logged=True, slow_ms=1000):
    """Time every request (observe: Metrics.observe_request); log errors and slow requests (every request with
    --debug): a line per request costs real CPU at 1,000/s. Not logged: the engine's, all passed on by the front,
    which logs each one with its client."""
    def log(handler):
        observe(handler)
        status, ms = handler.get_status(), 1000 * handler.request.request_time()
        if logged and (debug or status >= 400 or ms > slow_ms):
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


def write_routes(settings, parts):
    """The routes that take writes in: they journal (Intake)."""
    ingest = dict(intake=parts.intake, rules=Rules.from_settings(settings))
    return [
        (r"/gex/?", handlers.GexHandler, ingest),
        (r"/uw/?", UwHandler, ingest),
    ]


# The routes answered from the database and the parts beside it: (pattern, handler, its dependencies from the
# parts and the /health report). With processes = 2 the engine answers them, and the front passes them on.
STORAGE_ROUTES = [
    (r"/gex_history_url/?", HistoryHandler, lambda parts, health: dict(runner=parts.runner)),
    # No job id has more than 18 digits (BIGINT); a longer one is an unknown path, not a failed int().
    (r"/gex_history_url/(\d{1,18})/?", HistoryHandler, lambda parts, health: dict(runner=parts.runner)),
    (r"/gex_history_url/days/?", HistoryDaysHandler, lambda parts, health: dict(runner=parts.runner)),
    (r"/integrity/?", handlers.IntegrityHandler,
     lambda parts, health: dict(integrity=integrity_report(parts.store))),
    (r"/api/latest/?", LatestHandler, lambda parts, health: dict(latest=parts.latest)),
    (r"/api/status/?", StatusHandler, lambda parts, health: dict(
        health=health, store=parts.store, runner=parts.runner, latest=parts.latest, log_tail=parts.metrics.log_tail)),
    (r"/api/snapshots/?", SnapshotsHandler, lambda parts, health: dict(store=parts.store)),
    (r"/api/strikes/?", StrikesHandler, lambda parts, health: dict(store=parts.store, feeds=parts.latest.feeds)),
    (r"/api/heatmap/?", HeatmapHandler, lambda parts, health: dict(store=parts.store)),
    (r"/api/days/?", DaysHandler, lambda parts, health: dict(store=parts.store)),
    (r"/api/sql/?", SqlHandler, lambda parts, health: dict(store=parts.store, worker=parts.sql)),
]


def storage_routes(parts, health):
    return [(pattern, handler, deps(parts, health)) for pattern, handler, deps in STORAGE_ROUTES]


def page_routes():
    """The files: the OpenAPI description and the pages."""
    return [
        (r"/openapi\.json/?", OpenApiHandler,
         dict(document=resources.files("gexsrv").joinpath("openapi.json").read_bytes())),
        (r"/()", PageHandler, dict(path=WEB, default_filename="index.html")),
        (r"/web/(.+)", PageHandler, dict(path=WEB)),
        (r"/day/?", DayPageHandler, dict(path=WEB)),
    ]


def make_app(settings, parts):
    """One process's routes, each handler given what it needs; `parts` are the server's running pieces
    (gexsrv.server). The engine (processes = 2) has no write routes: the front takes writes."""
    bodies_in_flight = [0]  # bytes of request bodies being received, all connections together
    health = health_report(parts, time.monotonic(), bodies_in_flight)
    routes = [(r"/health/?", handlers.HealthHandler, dict(health=health)),
              *(write_routes(settings, parts) if parts.intake else []),
              *storage_routes(parts, health),
              (r"/metrics/?", MetricsHandler, dict(metrics=parts.metrics)),
              *page_routes()]
    return application(settings, routes, parts.metrics, bodies_in_flight, logged=parts.intake is not None)


def application(settings, routes, metrics, bodies_in_flight, logged=True):
    # A trailing slash names the same route, as the original stripped it.
    return Application(
        labelled(routes),
        default_handler_class=handlers.NotFoundHandler,
        serve_traceback=settings.debug,
        log_function=request_logger(settings.debug, metrics.observe_request, logged),
        gexsrv=settings,
        gate=Gate.from_settings(settings),
        signatures=auth.Signatures.from_settings(settings),
        bodies_in_flight=bodies_in_flight,
        requests_in_flight=[0],  # writes being handled, which a shutdown lets finish
    )
