"""The day view: its page (GET /day, gexsrv/web/day.*) and the reads behind it.

GET /api/heatmap?ticker=&endpoint=&date=|from=&to=&bucket_s=&measure=&agg=&band=|min_strike=&max_strike=&format=
    one feed's GEX by strike over time (gexsrv.heatmap), as JSON, CSV or Parquet
GET /api/days[?ticker=&endpoint=]    the days stored, per feed, in the database and in the Parquet lake

The query, the pivot and the encoding of the reply run on a thread of their own (READS), one read at a time and at
a lower priority, never on the event loop.
"""

import asyncio
import datetime as dt
import math
import re

import msgspec

from gexsrv import heatmap, reads
from gexsrv.api import PageHandler, ReadHandler, endpoint_param, time_param
from gexsrv.decode import EARLIEST_MS, LATEST_MS, check_ticker
from gexsrv.handlers import ApiError, database_or_503
from gexsrv.lakekinds import lake_root
from gexsrv.lowpriority import one_thread
from gexsrv.pathnames import encode
from gexsrv.payloads import PayloadError

MAX_BUCKET_S = 86_400
MAX_BUCKETS = 5_000  # time columns a reply may have: a 6.5-hour session at bucket_s=5
MAX_WINDOW_MS = 7 * heatmap.DAY_MS
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # only this form: fromisoformat also takes week dates (2025-W43-2)
FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8",
           "parquet": "application/vnd.apache.parquet"}


def date_param(raw, field):
    """A UTC day, YYYY-MM-DD, as the epoch ms of its midnight."""
    try:
        day = dt.date.fromisoformat(raw) if DATE.fullmatch(raw) else None
    except ValueError:
        day = None
    ms = None if day is None else round(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)
    if ms is None or not EARLIEST_MS <= ms < LATEST_MS:
        raise PayloadError(field, f"{field} must be a day YYYY-MM-DD from 2000-01-01 to 2099-12-31, not {raw[:20]!r}")
    return ms


def bucket_param(raw, field):
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BUCKET_S:
        raise PayloadError(field, f"{field} must be a whole number of seconds from 1 to {MAX_BUCKET_S}, "
                                  f"not {raw[:20]!r}")
    return int(raw)


def choice(*choices):
    def parse(raw, field):
        if raw not in choices:
            raise PayloadError(field, f"{field} must be one of {', '.join(choices)}, not {raw[:20]!r}")
        return raw
    return parse


def number_param(raw, field):
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PayloadError(field, f"{field} must be a finite number, not {raw[:20]!r}")
    return value


def band_param(raw, field):
    value = number_param(raw, field)
    if not 0 < value <= 100:
        raise PayloadError(field, f"{field} is a percent of spot, above 0 and at most 100, not {raw[:20]!r}")
    return value


# A full day's grid keeps a core busy for a tenth of a second: one such read at a time, at a lower priority, so
# that the writes' latency holds on two cores however often the page is reloaded. Not the lowest (GET /api/sql's):
# the page waits for it.
READS = one_thread("gexsrv-dayview", 10, "the day view's reads")


def heatmap_body(store, root, selection, reply, form):
    """On a worker thread: the reply's bytes, JSON (what was asked for, then the grid DuckDB wrote) or the grid as
    CSV or Parquet."""
    found = reads.heatmap_grid(store, root, selection, form)
    if form != "json":
        return found
    # the members of both JSON objects, as one object
    return msgspec.json.encode(reply)[:-1] + (b"," if reply else b"") + found[1:]


class HeatmapHandler(ReadHandler):
    PARAMS = {"ticker": check_ticker, "endpoint": endpoint_param, "date": date_param, "from": time_param,
              "to": time_param, "bucket_s": bucket_param, "measure": choice(*heatmap.MEASURES),
              "agg": choice(*heatmap.AGGS), "band": band_param, "min_strike": number_param,
              "max_strike": number_param, "format": choice(*FORMATS)}

    async def get(self):
        selection, reply = self.selection()
        form = self.param("format") or "json"
        with database_or_503(self.conf.retry_after_seconds):
            try:
                found = await asyncio.get_running_loop().run_in_executor(
                    READS, heatmap_body, self.store, lake_root(self.conf.data_dir), selection, reply, form)
            except heatmap.NoSpot as exc:
                raise ApiError(400, str(exc), field="band")
        self.set_header("Content-Type", FORMATS[form])
        if form != "json":
            day = dt.datetime.fromtimestamp(selection.since_ms / 1000, dt.timezone.utc).strftime("%Y%m%d")
            name = f"{encode(selection.ticker)}_{encode(reply['endpoint'])}_{day}_{selection.measure}.{form}"
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        self.finish(found)

    def window(self):
        """[from, to) in epoch ms: the UTC day of `date`, or from/to, which replace either end of it."""
        day, since, until = self.param("date"), self.param("from"), self.param("to")
        if day is None and (since is None or until is None):
            raise ApiError(400, "date is required unless both from and to are given", field="date")
        since = day if since is None else since
        until = day + heatmap.DAY_MS if until is None else until
        if since >= until:
            raise ApiError(400, "from must be before to", field="from")
        if until - since > MAX_WINDOW_MS:
            raise ApiError(400, "from and to may be 7 days apart at most", field="to")
        return since, until

    def strikes(self):
        band, low, high = self.param("band"), self.param("min_strike"), self.param("max_strike")
        if band is not None and (low, high) != (None, None):
            raise ApiError(400, "give band or min_strike/max_strike, not both", field="band")
        if low is not None and high is not None and low > high:
            raise ApiError(400, "min_strike must not be above max_strike", field="min_strike")
        return band, low, high

    def selection(self):
        """The heatmap.Selection asked for, and the reply's fields that say what it is."""
        ticker, endpoint = self.param("ticker", required=True), self.param("endpoint", required=True)
        since, until = self.window()
        bucket_s = self.param("bucket_s") or 60
        if math.ceil((until - since) / (bucket_s * 1000)) > MAX_BUCKETS:
            raise ApiError(400, f"from {since} to {until} holds more than {MAX_BUCKETS} buckets of {bucket_s} s: "
                                "use a larger bucket_s or a shorter window", field="bucket_s")
        band, low, high = self.strikes()
        measure, agg = self.param("measure") or "vol", self.param("agg") or "last"
        selection = heatmap.Selection(ticker, reads.stored_endpoint(endpoint), since, until, bucket_s * 1000,
                                      measure, agg, band, low, high)
        reply = {"ticker": ticker, "endpoint": endpoint, "from": since, "to": until, "bucket_s": bucket_s,
                 "measure": measure, "agg": agg, "band": band, "min_strike": low, "max_strike": high}
        return selection, reply


class DaysHandler(ReadHandler):
    PARAMS = {"ticker": check_ticker, "endpoint": endpoint_param}

    async def get(self):
        ticker, endpoint = self.param("ticker"), self.param("endpoint")
        with database_or_503(self.conf.retry_after_seconds):
            days = await asyncio.get_running_loop().run_in_executor(
                READS, reads.days, self.store, lake_root(self.conf.data_dir), ticker, endpoint)
        self.reply(200, {"days": days})


class DayPageHandler(PageHandler):
    """GET /day: the day view's page, web/day.html (its scripts are under /web/)."""

    def get(self, include_body=True):
        return super().get("day.html", include_body)

    def head(self):
        return self.get(include_body=False)
