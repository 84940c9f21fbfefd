"""The front process (processes = 2): HTTP on the TCP port, the write routes (decode, journal with group fsync,
reply), the duplicate index, the raw archive of the journal and the poller; everything else is the engine's
(gexsrv.engine), forked through the spawner and started again whenever it ends (gexsrv.engine_link), and every
other route is passed on to it (gexsrv.proxy).

Data flows one way: the front writes the journal, the engine reads it. The front alone creates and removes the
journal's segments (the archive of those the engine has ingested), so no handshake is needed for their end.
/health and /metrics are the front's: its own sections and families with the engine's, and both processes.
"""

import asyncio
import json
import logging
import os
import shutil
import tempfile
import time

import msgspec
from tornado.httputil import HTTPHeaders

from gexsrv import server
from gexsrv.app import STORAGE_ROUTES, application, health_report, page_routes, write_routes
from gexsrv.api import MetricsHandler
from gexsrv.engine_link import EngineLink
from gexsrv.handlers import HealthHandler
from gexsrv.keys import RecentKeys
from gexsrv.metrics import Metrics
from gexsrv.proxy import OWN_TIMEOUT_S, Engine, EngineAway, ProxyHandler, passed_on

log = logging.getLogger("gexsrv")  # the lines one process says, said alike
ENGINE_START_S = 60  # the engine opens the database and replays what the journal holds past it before it serves


def engine_args(settings, folder, keys, http_socket):
    return {"settings": msgspec.to_builtins(settings), "journal": folder, "keys_since_ms": keys.start_ms,
            "http_socket": http_socket}


def build(settings, folder, spawner, http_socket):
    """The front's parts: the journal, its intake and archive, the poller, the link to the engine."""
    keys = RecentKeys(settings.duplicate_horizon_s)
    parts = server.Parts(server.journal_of(settings, folder), keys)
    parts.link = EngineLink(spawner, parts.journal, engine_args(settings, folder, keys, http_socket), keys)
    server.journal_parts(settings, parts, parts.link)
    return parts


def process_report(started):
    cpu = os.times()
    return {"pid": os.getpid(), "uptime_s": round(time.time() - started, 3), "cpu_s": round(cpu.user + cpu.system, 3)}


def own_request(settings, **headers):
    """The headers of a request of the front's own: an IP-literal Host, which the engine's gate always allows, and
    the token when one is required (the front has checked the scrape's own; /metrics takes no signature)."""
    token = {"Authorization": f"Bearer {settings.auth_token}"} if settings.auth_token else {}
    return HTTPHeaders({"Host": "127.0.0.1", **token, **headers})


def engine_health(engine, parts, settings, started):
    """The engine's (ok, /health sections) and both processes; while it is away, why, and not ok."""
    async def report():
        processes = {"processes": {"front": process_report(started), "engine": parts.link.report()}}
        try:
            response = await engine.fetch("GET", "/health", own_request(settings), timeout=OWN_TIMEOUT_S)
        except EngineAway as exc:
            return False, {"storage": {"state": "unavailable", "error": str(exc)}, **processes}
        found = json.loads(response.body)
        sections = {name: value for name, value in found.items() if name not in ("status", "version", "uptime_s")}
        return found["status"] == "ok" and not parts.link.fatal, {**sections, **processes}
    return report


def engine_scrape(engine, settings):
    async def scrape():
        try:
            response = await engine.fetch("GET", "/metrics", own_request(settings, Accept="text/plain"),
                                          timeout=OWN_TIMEOUT_S)
        except EngineAway:
            return None
        return response.body.decode() if response.code == 200 else None
    return scrape


class StatusHandler(ProxyHandler):
    """GET /api/status: the engine's, with the health of both processes and the warnings both logged."""

    async def passed_back(self, response):
        if response.code != 200:
            return response.body
        status = json.loads(response.body)
        errors = status["errors"] + self.log_tail.recent()
        status.update(health=await self.health(),
                      errors=sorted(errors, key=lambda error: error["at"], reverse=True)[:self.log_tail.latest.maxlen])
        return msgspec.json.encode(status)


def make_front_app(settings, parts, engine):
    bodies_in_flight = [0]
    health = health_report(parts, time.monotonic(), bodies_in_flight, engine_health(engine, parts, settings, time.time()))
    parts.metrics = Metrics(parts, engine_scrape(engine, settings))
    logging.getLogger().addHandler(parts.metrics.log_tail)
    routes = [(r"/health/?", HealthHandler, dict(health=health)),
              *write_routes(settings, parts),
              *passed_on(STORAGE_ROUTES, engine, {r"/api/status/?": (
                  StatusHandler, dict(health=health, log_tail=parts.metrics.log_tail))}),
              (r"/metrics/?", MetricsHandler, dict(metrics=parts.metrics)),
              *page_routes()]
    return application(settings, routes, parts.metrics, bodies_in_flight)


async def engine_started(link):
    """Wait, at start, until the engine serves its routes, as one process opens the database and replays the journal
    before it listens; StartupError if the engine cannot run."""
    await first_of(link.serving.wait(), link.gave_up.wait(), timeout=ENGINE_START_S)
    if link.fatal:
        raise server.StartupError(link.fatal)
    if not link.serving.is_set():
        log.warning("the engine did not start within %g s; reads answer 503 until it does", ENGINE_START_S)


async def first_of(*waits, timeout=None):
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()


async def serve(settings, spawner):
    stop = server.stop_signal()
    sockets = server.prepare_to_serve(settings)
    folder = server.journal_folder(settings)
    sockets_dir = tempfile.mkdtemp(prefix="gexsrv-")  # short (a socket path has 107 bytes) and the user's alone
    try:
        await run(settings, spawner, sockets, folder, os.path.join(sockets_dir, "engine.sock"), stop)
    finally:
        shutil.rmtree(sockets_dir, ignore_errors=True)


async def run(settings, spawner, sockets, folder, http_socket, stop):
    parts = build(settings, folder, spawner, http_socket)
    server.open_journal(parts, 0, settings.data_dir)
    await parts.link.start()
    try:
        await engine_started(parts.link)
    except server.StartupError:
        await parts.link.close(asyncio.get_running_loop().time() + settings.shutdown_grace_s)
        raise
    engine = Engine(http_socket, parts.link, settings.max_body_bytes)
    app = make_front_app(settings, parts, engine)
    http, (host, port) = server.listen(app, settings, sockets, parts.connections)
    server.tune_interpreter()
    await server.start_journal(parts)
    log.info("gexsrv listening on http://%s:%d  (front pid %d; the engine owns %s)", host, port, os.getpid(),
             os.path.join(settings.data_dir, "gex_data.db"))
    await first_of(stop.wait(), parts.link.gave_up.wait())

    log.info("shutting down: no new connections, finishing requests in flight, the engine ingesting what is "
             "journaled")
    deadline = asyncio.get_running_loop().time() + settings.shutdown_grace_s
    await server.stop_taking_writes(parts, app, http, deadline)
    await parts.link.close(deadline)
    engine.close()
    await server.stop_journal(parts, http)
    if parts.link.fatal:
        raise server.StartupError(parts.link.fatal)
    log.info("stopped")
