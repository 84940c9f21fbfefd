"""Backfill: the gexbot history files of a range of trading days, through the history queue.

plan() records each (ticker, package, category, trading day) in gex_history_days (gexsrv.history.days) and wakes
the worker, which takes the planned days in order, asks the gexbot API for each day's file URL (gexsrv.history.api)
and queues that URL on the Runner, which downloads, stages and imports it. The worker keeps at most LOOKAHEAD of
its jobs waiting: a pre-signed URL expires, so none is asked for long before its download. A day whose job fails
is asked for again (a fresh URL) until it has had MAX_TRIES. A day already imported is never asked for again, so
planning the same range again resumes an interrupted backfill.
"""

import asyncio
import datetime as dt
import logging

from gexsrv.decode import check_ticker, normalize_endpoint
from gexsrv.endpoints import stored_endpoint
from gexsrv.history import days
from gexsrv.history.api import ApiFailed, HistApi, KeyRefused
from gexsrv.history.urls import Refused
from gexsrv.payloads import PayloadError
from gexsrv.store import StorageError
from gexsrv.validate.calendar import NEW_YORK, trading_days

log = logging.getLogger("gexsrv.history")

PACKAGES = ("classic", "state")
CATEGORIES = ("gex_full", "gex_one", "gex_zero")
LOOKAHEAD = 2
MAX_TRIES = 2
POLL_S = 0.2
STORAGE_PAUSE_S = 2.0
EARLIEST = dt.date(2000, 1, 1)


class BadRange(Exception):
    """A backfill request gexsrv cannot plan; `field` names the input (ticker, package, category, from, to)."""

    def __init__(self, field, reason):
        super().__init__(reason)
        self.field = field
        self.reason = reason


def new_york_today():
    return dt.datetime.now(NEW_YORK).date()


def plan_days(tickers, package, categories, first, last, today):
    """Every (ticker, package, category, trading day) of the range, checked; BadRange names what is wrong."""
    if package not in PACKAGES:
        raise BadRange("package", f"package {package!r} is not one of {', '.join(PACKAGES)}")
    if not tickers:
        raise BadRange("ticker", "no ticker given")
    if not categories:
        raise BadRange("category", "no category given")
    try:
        tickers = [check_ticker(ticker, "ticker") for ticker in tickers]
        categories = [normalize_endpoint(category, None, "category") for category in categories]
    except PayloadError as exc:
        raise BadRange(exc.field, exc.reason) from None
    unknown = [category for category in categories if category not in CATEGORIES]
    if unknown:
        raise BadRange("category", f"category {unknown[0]!r} is not one of {', '.join(CATEGORIES)}")
    if first < EARLIEST:
        raise BadRange("from", f"{first} is before {EARLIEST}, the earliest date gexsrv stores")
    if last > today:
        raise BadRange("to", f"{last} is after today ({today} in New York): no file exists for it yet")
    if first > last:
        raise BadRange("to", f"the range ends ({last}) before it begins ({first})")
    open_days = list(trading_days(first, last))
    if not open_days:
        raise BadRange("from", f"no trading day from {first} to {last} (weekends and market holidays only)")
    return [days.Day(ticker, package, category, day) for day in open_days
            for ticker in dict.fromkeys(tickers) for category in dict.fromkeys(categories)]


class Backfill:
    """The worker: started and closed with the Runner it queues jobs on."""

    def __init__(self, conf, runner):
        self.runner = runner
        self.store = runner.store
        self.api = HistApi.from_settings(conf)
        self.wake = asyncio.Event()
        self.task = None
        self.halted = None  # why the worker stopped asking (the key was refused) until the next plan()

    async def start(self):
        self.task = asyncio.create_task(self._loop())

    async def close(self):
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self.api.close()

    async def plan(self, keys):
        """Plan the days (StorageError while the database cannot be written); return the keys already done."""
        done = await self.store.use(days.plan, keys, MAX_TRIES)
        self.halted = None
        self.wake.set()
        return done

    def listing(self, **filters):
        return days.listing(self.store, MAX_TRIES, **filters)

    async def _loop(self):
        while True:
            try:
                await self._next()
            except StorageError as exc:  # the days wait for the database, as the jobs do
                log.warning("backfill waits: %s", exc)
                await asyncio.sleep(STORAGE_PAUSE_S)

    async def _next(self):
        self.wake.clear()  # before looking: a plan() from now on wakes the wait below
        under_way = await self.store.use(days.jobs_under_way)
        day = None
        if under_way < LOOKAHEAD and not self.halted:
            day = await self.store.use(days.next_planned, MAX_TRIES)
        if day is not None:
            await self._ask_or_fail(day)
        elif under_way:  # a job that fails may give its day back
            await asyncio.sleep(POLL_S)
        else:
            await self.wake.wait()

    async def _ask_or_fail(self, day):
        try:
            await self._ask(day)
        except StorageError:
            raise
        except Exception as exc:  # a bug with one day must not stop the backfill
            log.exception("backfill of %s %s/%s %s crashed", *day)
            await self.store.use(days.record, day, "failed", None, f"internal error: {exc!r}")

    async def _ask(self, day):
        """Ask the API for the day's URL and queue it; record what came of it."""
        what = f"{day.ticker} {day.package}/{day.category} {day.day}"
        try:
            url = await self.api.file_url(*day)
            if url is None:
                log.info("backfill %s: no data", what)
                await self.store.use(days.record, day, "no data")
                return
            self.runner.policy.check_url(url)
            job, _created = await self.runner.submit(url, day.ticker, stored_endpoint(day.package, day.category))
        except KeyRefused as exc:
            log.error("backfill stopped: %s", exc)
            await self.store.use(days.record, day, "failed", None, str(exc))
            self.halted = str(exc)  # once the day is failed: who sees it halted reads the day's failure
            return
        except (ApiFailed, Refused) as exc:
            log.warning("backfill %s failed: %s", what, exc)
            await self.store.use(days.record, day, "failed", None, str(exc))
            return
        log.info("backfill %s: queued as job %d", what, job["id"])
        await self.store.use(days.record, day, "queued", job["id"])
