"""POST /gex_history_url offers the request to the dashboard or queues a job here (202 at once, `via` says which),
or, given a date (or a from/to range) instead of a url, plans those days' backfill from the gexbot API;
GET /gex_history_url[/<id>] shows jobs and their progress, GET /gex_history_url/days the backfilled days."""

import asyncio
import datetime as dt
from typing import Annotated

import msgspec
from msgspec import Meta, Raw, Struct

from gexsrv.handlers import NOT_STORED, ApiError, IngestHandler, database_or_503
from gexsrv.history import backfill, command, forward, importer, names, staging
from gexsrv.history.urls import Refused
from gexsrv.decode import check_ticker, decode_with, normalize_endpoint
from gexsrv.payloads import NOTHING, PayloadError, Text


LISTED_DAYS = 5_000


class HistoryRequest(Struct):
    url: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    ticker: Text | None = None
    endpoint: Text | None = None
    feed: Text | None = None
    kind: Text | None = None
    gex_type: Text | None = None  # the original's own name for the category
    # the file itself, inline (the original's receiver took it so): then the url only names it
    raw_body: Raw = NOTHING
    # a backfill instead of a url: the days' files are found through the gexbot API
    package: Text | None = None
    category: Text | None = None
    date: dt.date | None = None
    first: dt.date | None = msgspec.field(default=None, name="from")
    last: dt.date | None = msgspec.field(default=None, name="to")


DECODER = msgspec.json.Decoder(HistoryRequest)
TEXT = msgspec.json.Decoder(str)
INLINE_SHAPES = ("expected the history file: its JSON (an array of snapshots, {\"data\": [...]} or one snapshot) "
                 "as it is, or its text (JSON Lines too) as a JSON string")


def decode(body):
    """The request, or 400 naming the field (too deep a nesting and a body that is not an object included)."""
    try:
        return decode_with(DECODER, body, "$")
    except PayloadError as exc:
        raise ApiError(400, exc.reason, field=exc.field) from None


def inline_file(raw):
    """The bytes of the file a request carries in raw_body (None without one), or 400 naming it."""
    if not raw or bytes(raw) == b"null":
        return None
    head = bytes(memoryview(raw)[:1])
    if head == b'"':
        try:
            return decode_with(TEXT, raw, "$.raw_body").encode()
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field) from None
    if head in (b"[", b"{"):
        return bytes(raw)
    raise ApiError(400, INLINE_SHAPES, field="$.raw_body")


def refuse_options(values):
    """HISTORY_DOWNLOAD_COMMAND gets these as arguments: one starting with `-` would be read as an option.

    Refused whether or not a command is set today, since a queued job may run after one is configured."""
    found = command.option_like(values)
    if found:
        name, value = found
        raise ApiError(400, f"{name} {value!r} may not start with '-' (a download command would read it as an "
                            "option)", field=f"$.{name}")


def date_range(request, today):
    """(first, last) of a backfill request: its date, or from and to (today when absent)."""
    if request.date is not None and (request.first or request.last):
        raise ApiError(400, "give a date, or from (and to), not both", field="$.date")
    if request.date is not None:
        return request.date, request.date
    if request.first is None:
        raise ApiError(400, "give a url, or a date (or from and to) with ticker, package and category",
                       field="$.from" if request.last else "$.url")
    return request.first, request.last or today


def backfill_days(request):
    """The days a backfill request covers, checked (400 naming the field)."""
    today = backfill.new_york_today()
    first, last = date_range(request, today)
    try:
        return backfill.plan_days([request.ticker] if request.ticker else [], request.package or "",
                                  [request.category] if request.category else [], first, last, today)
    except backfill.BadRange as exc:
        dated = request.date is not None and exc.field in ("from", "to")  # the range was given as a date
        raise ApiError(400, exc.reason, field="$.date" if dated else f"$.{exc.field}") from None


class HistoryHandler(IngestHandler):
    async def post(self, job_id=None):
        if job_id is not None:  # the route of a job: GET only
            raise ApiError(405, "a history job is read only: POST requests to /gex_history_url")
        body = self.body()
        request = decode(body)
        inline = inline_file(request.raw_body)
        wants_days = request.date or request.first or request.last or request.package or request.category
        if inline is not None and (request.url is None or wants_days):
            raise ApiError(400, "raw_body is a file named by its url: give a url, and no date, from, to, package or "
                                "category", field="$.url" if request.url is None else "$.raw_body")
        if request.url is None or wants_days:
            await self.backfill(request)
            return
        if self.conf.dashboard_url and await forward.to_dashboard(self.conf.dashboard_url, body):
            self.reply(202, {"status": "queued", "via": "dashboard"})
            return
        inferred_ticker, inferred_endpoint = names.infer(request.url)
        ticker = request.ticker or inferred_ticker or ""  # upper-cased by check_ticker, once it is ASCII
        endpoint = request.endpoint or request.feed or request.kind or request.gex_type or inferred_endpoint
        if not ticker:
            raise ApiError(400, "no ticker given and none in the file name", field="$.ticker")
        if not endpoint:
            raise ApiError(400, "no endpoint given and none in the file name", field="$.endpoint")
        refuse_options({"url": request.url, "ticker": ticker, "endpoint": endpoint})
        try:
            if inline is None:  # an inline file's url is never fetched
                self.runner.policy.check_url(request.url)
        except Refused as exc:
            raise ApiError(400, str(exc), field="$.url")
        try:
            ticker = check_ticker(ticker)
            endpoint = normalize_endpoint(endpoint, None, package=names.package(request.url))
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        with database_or_503(self.conf.retry_after_seconds, write=True):
            if inline is None:
                job, created = await self.runner.submit(request.url, ticker, endpoint)
            else:
                job, created = await self.submit_inline(request.url, ticker, endpoint, inline)
        self.reply(202, {"status": "queued", "via": "local", "id": job["id"], "ticker": job["ticker"],
                         "endpoint": job["endpoint"], "job_status": job["status"], "duplicate": not created})

    async def submit_inline(self, url, ticker, endpoint, content):
        """The runner's submit_inline, its refusals as replies naming raw_body."""
        try:
            return await self.runner.submit_inline(url, ticker, endpoint, content)
        except importer.InvalidFile as exc:
            raise ApiError(400, f"raw_body: {exc}", field="$.raw_body") from None
        except staging.TooLarge as exc:
            raise ApiError(413, f"raw_body: {exc}", field="$.raw_body") from None
        except OSError as exc:  # staging it met a full or failing disk: nothing is queued
            raise ApiError(503, f"raw_body could not be staged, nothing is queued: {exc}",
                           retry_after=self.conf.retry_after_seconds, extra=NOT_STORED) from None

    async def backfill(self, request):
        """Plan the days; the backfill worker asks the API for their files and queues them (gexsrv.history.backfill)."""
        if request.url is not None:
            raise ApiError(400, "give a url, or a date range with ticker, package and category, not both",
                           field="$.url")
        keys = backfill_days(request)
        if not self.conf.gexbot_api_key:
            raise ApiError(503, "backfill asks the gexbot API for the files: set GEXBOT_API_KEY for the server",
                           extra=NOT_STORED)
        with database_or_503(self.conf.retry_after_seconds, write=True):
            done = await self.runner.backfill.plan(keys)
        planned = {"ticker": keys[0].ticker, "package": keys[0].package, "category": keys[0].category,
                   "from": min(k.day for k in keys), "to": max(k.day for k in keys), "days": len(keys),
                   "already_imported": len(done)}
        if len(done) == len(keys):
            self.reply(200, {"status": "already imported", "via": "local", "backfill": planned})
        else:
            self.reply(202, {"status": "queued", "via": "local", "backfill": planned})

    async def get(self, job_id=None):
        with database_or_503(self.conf.retry_after_seconds):  # DuckDB is read on a thread, never on the loop
            if job_id is None:
                self.reply(200, {"jobs": await asyncio.to_thread(self.runner.recent)})
                return
            job = await asyncio.to_thread(self.runner.job, int(job_id))
        if job is None:
            raise ApiError(404, f"no history job {job_id}")
        self.reply(200, job)


class HistoryDaysHandler(IngestHandler):
    """GET /gex_history_url/days[?ticker=SPX,NDX&package=classic&category=gex_zero&from=...&to=...]: the
    backfilled days and how each stands, and why the backfill stopped asking the API, if it did."""

    async def get(self):
        filters = {"package": self.get_query_argument("package", None),
                   "tickers": self._list("ticker", str.upper), "categories": self._list("category", str.lower),
                   "first": self._date("from"), "last": self._date("to")}
        with database_or_503(self.conf.retry_after_seconds):
            listed_days = await asyncio.to_thread(self.runner.backfill.listing, limit=LISTED_DAYS, **filters)
        self.reply(200, {"days": listed_days, "halted": self.runner.backfill.halted})

    def _list(self, name, case):
        text = self.get_query_argument(name, "")
        return [case(item.strip()) for item in text.split(",") if item.strip()]

    def _date(self, name):
        text = self.get_query_argument(name, None)
        try:
            return dt.date.fromisoformat(text) if text else None
        except ValueError:
            raise ApiError(400, f"{name} is not a date (YYYY-MM-DD): {text[:20]!r}", field=name) from None
