"""The read side: the status page (gexsrv/web) and the JSON it reads, and /metrics. Nothing here waits for the
writer: replies come from memory (the latest view, the feeds, the parts' counters) or from DuckDB in a worker
thread on a read connection (gexsrv.reads), bounded, with 503 while the database is away.

GET /api/latest[?ticker=SPX]                          the merged latest view (gexsrv.latest)
GET /api/status                                       server state, feeds, history jobs, recent warnings/errors
GET /api/snapshots?ticker=&endpoint=&since=&until=&limit=   the snapshots of a time range, newest first
GET /api/strikes?ticker=&endpoint=&timestamp=         one snapshot with its strike rows (the newest by default)
GET /api/sql?q=SELECT ...&_format=json|csv|parquet    a read-only query of the database (gexsrv.sql)
GET /metrics                                          Prometheus (gexsrv.metrics)
GET /                                                 the status page

Authentication of reads is BaseHandler's (gexsrv.handlers); the page's own files hold no data and are open.
"""

import asyncio
import os
import time

import duckdb
from tornado.web import HTTPError, StaticFileHandler

from gexsrv import reads, sql, sqlout
from gexsrv.decode import EARLIEST_MS, LATEST_MS, check_ticker, normalize_endpoint, timestamp_ms
from gexsrv.handlers import ApiError, BaseHandler, database_or_503
from gexsrv.payloads import PayloadError
from gexsrv.store import StorageError

WEB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "web")
MAX_LIMIT = 5000
DEFAULT_LIMIT = 500
JOBS_SHOWN = 20


def endpoint_param(raw, field):
    if raw.lower() == reads.LEGACY:
        return reads.LEGACY
    endpoint = normalize_endpoint(raw, None, field)
    if endpoint is None:  # `maxchange` names a kind of payload, not a feed of snapshots
        raise PayloadError(field, f"expected an endpoint such as gex_zero, classic/one or legacy, got {raw[:40]!r}")
    return endpoint


def time_param(raw, field):
    """Epoch seconds or milliseconds, or ISO-8601 (UTC when it names no zone), as epoch ms."""
    try:
        return timestamp_ms(raw, field)
    except OverflowError:
        raise PayloadError(field, f"expected epoch seconds or milliseconds, or an ISO-8601 time, got {raw[:40]!r}")


def limit_param(raw, field):
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise PayloadError(field, f"{field} must be a whole number from 1 to {MAX_LIMIT}, not {raw[:20]!r}")
    return int(raw)


def text_param(raw, field):
    return raw


def format_param(raw, field):
    if raw not in sqlout.FORMATS:
        raise PayloadError(field, f"{field} must be one of {', '.join(sqlout.FORMATS)}, not {raw[:20]!r}")
    return raw


class ReadHandler(BaseHandler):
    """A GET of the read API: its query parameters are PARAMS ({name: parser}), any other one is refused."""

    PARAMS = {}

    def prepare(self):
        super().prepare()
        unknown = sorted(set(self.request.query_arguments) - set(self.PARAMS))
        if unknown:
            takes = ", ".join(self.PARAMS) or "no parameters"
            raise ApiError(400, f"unknown parameter {unknown[0][:40]!r} (this path takes {takes})", field=unknown[0])

    def param(self, name, required=False):
        """The query parameter `name` parsed, or None when absent; 400 naming it when it is wrong or missing."""
        raw = self.get_query_argument(name, "").strip()
        if not raw:
            if required:
                raise ApiError(400, f"{name} is required", field=name)
            return None
        try:
            return self.PARAMS[name](raw, name)
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=name)


class LatestHandler(BaseHandler):
    def get(self):
        ticker = self.get_argument("ticker", None)
        if ticker is None:
            body = self.latest.encoded()
        else:
            if not ticker.strip():
                raise ApiError(400, "ticker is empty (leave it out for every ticker)", field="ticker")
            try:
                ticker = check_ticker(ticker, "ticker")
            except PayloadError as exc:
                raise ApiError(400, exc.reason, field=exc.field)
            body = self.latest.encoded(ticker)
            if body is None:
                raise ApiError(404, self.not_held(ticker), field="ticker")
        self.set_status(200)
        self.finish(body)

    def not_held(self, ticker):
        entries = self.latest.entries
        if entries.evicted:  # the ticker may be one of those let go of: say where its data is
            return (f"no latest data in memory for ticker {ticker!r}: the view holds the {entries.limit} tickers "
                    f"updated last (max_feeds); older ones are in DuckDB only (GET /api/snapshots?ticker={ticker})")
        return f"no latest data for ticker {ticker!r} (tickers: {', '.join(sorted(entries)) or 'none yet'})"


class StatusHandler(ReadHandler):
    """What the status page shows: /health's report, every feed's freshness, history jobs, recent problems."""

    async def get(self):
        health = await self.health()
        try:
            jobs = await asyncio.to_thread(reads.jobs_with_progress, self.store, self.runner, JOBS_SHOWN)
            jobs_error = None
        except StorageError as exc:
            jobs, jobs_error = None, str(exc)
        now = round(time.time() * 1000)
        self.reply(200, {"now": now, "health": health, "feeds": self.latest.feeds.report(now),
                         "history": {"jobs": jobs, "error": jobs_error}, "errors": self.log_tail.recent()})


class SnapshotsHandler(ReadHandler):
    PARAMS = {"ticker": check_ticker, "endpoint": endpoint_param, "since": time_param, "until": time_param,
              "limit": limit_param}

    async def get(self):
        ticker, endpoint = self.param("ticker", required=True), self.param("endpoint")
        since, until = self.param("since") or EARLIEST_MS, self.param("until") or LATEST_MS
        limit = self.param("limit") or DEFAULT_LIMIT
        if since >= until:
            raise ApiError(400, "since must be before until", field="since")
        with database_or_503(self.conf.retry_after_seconds):
            found, more = await asyncio.to_thread(reads.snapshots, self.store, ticker, endpoint, since, until, limit)
        self.reply(200, {"ticker": ticker, "endpoint": endpoint, "since": since, "until": until, "limit": limit,
                         "more": more, "snapshots": found})


class StrikesHandler(ReadHandler):
    """The newest snapshot received since start comes from memory, as does one at the timestamp asked for when it
    is that one; any other from DuckDB."""

    PARAMS = {"ticker": check_ticker, "endpoint": endpoint_param, "timestamp": time_param}

    async def get(self):
        ticker, endpoint = self.param("ticker", required=True), self.param("endpoint", required=True)
        timestamp = self.param("timestamp")
        held = self.feeds.snapshot(ticker, endpoint)
        if held is not None and timestamp in (None, held.timestamp_ms):
            found = reads.held_snapshot(held)
        else:
            with database_or_503(self.conf.retry_after_seconds):
                found = await asyncio.to_thread(reads.snapshot, self.store, ticker, endpoint, timestamp)
        if found is None:
            at = "" if timestamp is None else f" at {timestamp}"
            raise ApiError(404, f"no snapshot of {ticker} {endpoint}{at}", field="timestamp" if at else "endpoint")
        self.reply(200, {"ticker": ticker, **found})


class SqlHandler(ReadHandler):
    """One query at a time, on a thread of its own at low priority (gexsrv.sqlworker; gexsrv.sql says what a query
    costs ingest). A query that runs out of time gets 504: it is no client error (the same query may finish on a server
    less busy), and the database behind the route, soon a process of its own, did not answer in time."""

    PARAMS = {"q": text_param, "_format": format_param}  # datasette's name: `_` sets it apart from the query

    async def get(self):
        query, form = self.param("q", required=True), self.param("_format") or "json"
        with database_or_503(self.conf.retry_after_seconds):
            body, content_type, truncated = await self.answer(query, form)
        self.set_header("Content-Type", content_type)
        self.set_header("X-Truncated", "true" if truncated else "false")
        self.finish(body)

    async def answer(self, query, form):
        limits = self.conf.sql_max_rows, self.conf.sql_timeout_ms / 1000
        try:
            return await self.worker.reply(self.store, query, form, *limits)
        except sql.TimedOut as exc:
            raise ApiError(504, str(exc), field="q")
        except sqlout.Unencodable as exc:
            raise ApiError(400, str(exc), field="_format")
        except (sql.Refused, duckdb.Error) as exc:
            raise ApiError(400, str(exc), field="q")


class MetricsHandler(ReadHandler):
    signed_reads = False  # Prometheus scrapes with a bearer token (scrape_config `authorization`); it cannot sign

    async def get(self):
        await self.metrics.refresh()
        body, content_type = self.metrics.exposition(self.request.headers.get("Accept"))
        self.set_header("Content-Type", content_type)
        self.finish(body)


class PageHandler(BaseHandler, StaticFileHandler):
    """The status page's files, revalidated on every load (an upgraded server serves its own page). BaseHandler
    first: errors in JSON, OPTIONS answered, a body refused unread, as on every route."""

    open_to_all = True  # the page's files hold no data

    def initialize(self, path, route, default_filename=None):
        StaticFileHandler.initialize(self, path, default_filename)
        self.route = route

    def validate_absolute_path(self, root, absolute_path):
        try:
            return super().validate_absolute_path(root, absolute_path)
        except HTTPError as exc:
            if exc.status_code != 404:
                raise
            raise ApiError(404, f"no such file: {self.request.path}") from None

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'")
