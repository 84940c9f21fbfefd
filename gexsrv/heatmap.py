"""The day view's query: one feed's GEX by strike over time, bucketed and pivoted in DuckDB, with the levels per
bucket (GET /api/heatmap, gexsrv.dayview; the page gexsrv/web/day.*).

It needs a DuckDB cursor and the lake's folder only, so it runs wherever reads run (a worker thread today).
The rows come from the database, or, for a window the database holds no snapshot of, from the Parquet lake's
strikes and snapshots files (gexsrv.lake, gexsrv.lakekinds). A lake written before it kept snapshots holds strike
rows only: from such days the level series are null and a band around spot cannot be drawn.

A bucket is [t, t + bucket) with t a multiple of the bucket width since the epoch; only buckets holding a snapshot
are returned. `last` shows each bucket's last snapshot (a strike it lacks is null); `mean` the mean of each
strike's values over the bucket's snapshots that hold it. The levels are always the bucket's last snapshot's.
"""

import datetime as dt
import io
import os

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from gexsrv.lakekinds import DAY, PART
from gexsrv.pathnames import decode, encode

MEASURES = {"vol": "gamma", "oi": "oi_gamma"}  # GEX by volume, by open interest (gex_strikes' columns)
AGGS = ("last", "mean")
LEVELS = ("spot", "zero_gamma", "major_pos_vol", "major_pos_oi", "major_neg_vol", "major_neg_oi")
SERIES = ("at", "snapshots", *LEVELS)  # per bucket: its last snapshot's time, its snapshots, the levels
DAY_MS = 86_400_000

FEED = "ticker = $ticker AND endpoint IS NOT DISTINCT FROM $endpoint AND timestamp >= $since AND timestamp < $until"
BUCKET = "timestamp - timestamp % $bucket"
# arg_max_null: a level the last snapshot lacks is null, not an earlier snapshot's; what JSON cannot hold (NaN, as
# an adopted legacy row may) is null too.
FINITE = "CASE WHEN isfinite({0}) THEN {0} END"
LAST_LEVELS = ", ".join(f"arg_max_null({FINITE.format(column)}, timestamp) AS {name}" for column, name in
                        zip(("spot_price", *LEVELS[1:]), LEVELS))
DATABASE_BUCKETS = f"""SELECT {BUCKET} AS bucket, max(timestamp) AS at, count(*) AS snapshots, {LAST_LEVELS},
        min({FINITE.format("spot_price")}) AS spot_low, max({FINITE.format("spot_price")}) AS spot_high
    FROM {{snapshots}} WHERE {FEED} GROUP BY bucket"""
NO_LEVELS = ", ".join(f"NULL::DOUBLE AS {name}" for name in LEVELS)
LAKE_BUCKETS = f"""SELECT {BUCKET} AS bucket, max(timestamp) AS at, count(DISTINCT timestamp) AS snapshots,
        {NO_LEVELS}, NULL::DOUBLE AS spot_low, NULL::DOUBLE AS spot_high
    FROM strike_rows GROUP BY bucket"""
CELLS = {
    "last": "SELECT b.bucket, r.strike, r.value FROM strike_rows r JOIN buckets b ON r.timestamp = b.at{where}",
    "mean": f"SELECT {BUCKET} AS bucket, strike, avg(value) AS value FROM strike_rows r{{where}} GROUP BY ALL",
}
IN_BAND = " WHERE r.strike >= (SELECT lo FROM band) AND r.strike <= (SELECT hi FROM band)"
# The pivot: every bucket gets one value per strike of the axis, in strike order (null where it has none).
GRID = """
    WITH strike_rows AS ({rows}), buckets AS ({buckets}),
    band AS (SELECT min({lo}) AS lo, max({hi}) AS hi FROM buckets),
    cells AS ({cells}),
    axis AS (SELECT DISTINCT strike FROM cells),
    grid AS (SELECT b.bucket, list(c.value ORDER BY a.strike) AS row
             FROM buckets b CROSS JOIN axis a LEFT JOIN cells c ON c.bucket = b.bucket AND c.strike = a.strike
             GROUP BY b.bucket)
    SELECT $source AS source, (SELECT coalesce(list(strike ORDER BY strike), []) FROM axis) AS strikes,
        coalesce(list(b.bucket ORDER BY b.bucket), []) AS times,
        coalesce(list(coalesce(g.row, []) ORDER BY b.bucket), []) AS grid,
        {{{series}}} AS series
    FROM buckets b LEFT JOIN grid g USING (bucket)"""
SERIES_LISTS = ", ".join(f"'{name}': coalesce(list(b.{name} ORDER BY b.bucket), [])" for name in SERIES)
# The reply's JSON is written by DuckDB: turning 100,000s of cells into Python objects and encoding them would hold
# the GIL, and so the event loop, for longer than the whole query takes.
AS_JSON = "SELECT to_json(found)::VARCHAR FROM ({grid}) found"
ROWS = f"SELECT timestamp, strike, {FINITE.format('{value}')} AS value FROM {{table}} WHERE {FEED}"
HELD = f"SELECT 1 FROM gex_snapshots WHERE {FEED} LIMIT 1"


class Selection(msgspec.Struct, frozen=True):
    """What to show: one feed (endpoint None: the legacy rows) over [since_ms, until_ms), and how."""

    ticker: str
    endpoint: str | None
    since_ms: int
    until_ms: int
    bucket_ms: int = 60_000
    measure: str = "vol"
    agg: str = "last"
    band_pct: float | None = None  # strikes within this percent of the window's lowest and highest spot
    min_strike: float | None = None
    max_strike: float | None = None


class NoSpot(ValueError):
    """A band around spot was asked of lake rows, which hold no spot."""


def lake_files(root, selection, kind="strikes"):
    """The lake's files of a kind (day files and parts) of the UTC days the window touches."""
    if selection.endpoint is None:  # legacy rows are never exported
        return []
    folder = os.path.join(root, encode(selection.ticker), encode(selection.endpoint))
    first, last = (dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).date()
                   for ms in (selection.since_ms, selection.until_ms - 1))
    days = {(first + dt.timedelta(days=k)).strftime("%Y%m%d") for k in range((last - first).days + 1)}
    names = os.listdir(folder) if os.path.isdir(folder) else []
    return sorted(os.path.join(folder, name) for name in names if (found := DAY.match(name) or PART.match(name))
                  and found["kind"] == kind and found["day"] in days)


def _limits(selection):
    """The band's SQL bounds: explicit strikes, a percent around the window's spot range, or none."""
    if selection.band_pct is not None:
        return "spot_low * (1 - $band / 100)", "spot_high * (1 + $band / 100)"
    return ("$min_strike" if selection.min_strike is not None else "'-infinity'::DOUBLE",
            "$max_strike" if selection.max_strike is not None else "'infinity'::DOUBLE")


def _sql(selection, files):
    """The grid's query over the database, or over the lake's files ({kind: paths}, the snapshots' may be None)."""
    lo, hi = _limits(selection)
    banded = (selection.band_pct, selection.min_strike, selection.max_strike) != (None, None, None)
    cells = CELLS[selection.agg].format(where=IN_BAND if banded else "")
    rows = ROWS.format(value=MEASURES[selection.measure], table="read_parquet($strikes)" if files else "gex_strikes")
    if not files:
        buckets = DATABASE_BUCKETS.format(snapshots="gex_snapshots")
    elif files["snapshots"]:
        buckets = DATABASE_BUCKETS.format(snapshots="read_parquet($snapshots)")
    else:
        buckets = LAKE_BUCKETS
    return GRID.format(rows=rows, buckets=buckets, lo=lo, hi=hi, cells=cells,
                       series=SERIES_LISTS)


def _params(selection, sql, files=None):
    given = {"ticker": selection.ticker, "endpoint": selection.endpoint, "since": selection.since_ms,
             "until": selection.until_ms, "bucket": selection.bucket_ms, "band": selection.band_pct,
             "min_strike": selection.min_strike, "max_strike": selection.max_strike, **(files or {})}
    return {name: value for name, value in given.items() if f"${name}" in sql}


def _lake(lake_root, selection):
    """{kind: paths} of the window's strike and snapshot files (snapshots None when it has none), or None."""
    strikes = lake_files(lake_root, selection)
    return {"strikes": strikes, "snapshots": lake_files(lake_root, selection, "snapshots") or None} if strikes else None


def _selected(cursor, lake_root, selection):
    """(source, files): the database when it holds a snapshot of the window, else the lake's files of it (None
    when there are none either: the database's empty answer then). Raises NoSpot for a band on lake rows without
    their snapshots."""
    if cursor.execute(HELD, _params(selection, HELD)).fetchall():
        return "database", None
    files = _lake(lake_root, selection)
    if files is None:
        return None, None
    if files["snapshots"] is None and selection.band_pct is not None:
        raise NoSpot("band needs spot, which the Parquet lake holds for this window in its strike files only (it "
                     "is no longer in the database): give min_strike and max_strike instead")
    return "lake", files


def _run(cursor, lake_root, selection, wrap, fetch):
    """fetch(cursor, sql, params) of the grid's query, wrapped by wrap ({grid} is the query)."""
    source, files = _selected(cursor, lake_root, selection)
    sql = wrap.format(grid=_sql(selection, files))
    try:
        return fetch(cursor, sql, {**_params(selection, sql, files), "source": source})
    except duckdb.IOException:
        if files is None:
            raise
        # a compaction merged the parts listed into their day file meanwhile: the folder is listed again
        return fetch(cursor, sql, {**_params(selection, sql, _lake(lake_root, selection)), "source": source})


def as_json(cursor, lake_root, selection):
    """The grid as one JSON object (bytes): {"source", "strikes", "times", "grid", "series": {name: [per time]}};
    source is "database", "lake", or null when neither holds a snapshot of the window."""
    return _run(cursor, lake_root, selection, AS_JSON,
                lambda cursor, sql, params: cursor.execute(sql, params).fetchall()[0][0].encode())


def as_table(cursor, lake_root, selection):
    """The grid as an Arrow table: a row per time with its series, a column per strike named by its value."""
    found = _run(cursor, lake_root, selection, "{grid}",
                 lambda cursor, sql, params: cursor.sql(sql, params=params).to_arrow_table())
    rows = pc.list_flatten(found["grid"])
    series = found["series"].combine_chunks()
    columns = {"time": pc.list_flatten(found["times"]),
               **{name: pc.list_flatten(series.field(name)) for name in SERIES}}
    for j, strike in enumerate(pc.list_flatten(found["strikes"]).to_pylist()):
        columns[str(strike)] = pc.list_element(rows, j)
    return pa.table(columns)


def export(cursor, lake_root, selection, form):
    """The grid (as_table) as CSV or Parquet bytes."""
    table, out = as_table(cursor, lake_root, selection), io.BytesIO()
    if form == "csv":
        pacsv.write_csv(table, out)
    else:
        pq.write_table(table, out, compression="zstd")
    return out.getvalue()


ALL = object()  # days(): no filter on the endpoint
DAYS = """SELECT ticker, endpoint, strftime(epoch_ms(timestamp), '%Y-%m-%d') AS date, count(*) AS snapshots,
        min(timestamp) AS first, max(timestamp) AS last
    FROM gex_snapshots WHERE true{filters} GROUP BY ALL ORDER BY ticker, endpoint NULLS FIRST, date"""


def _names(folder):
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _lake_days(root, ticker, endpoint):
    """{(ticker, endpoint, YYYY-MM-DD)} of the lake's strikes files."""
    found = set()
    if endpoint is None:  # legacy rows are never exported
        return found
    for folder_t in [encode(ticker)] if ticker is not None else _names(root):
        base = os.path.join(root, folder_t)
        for folder_e in [encode(endpoint)] if endpoint is not ALL else _names(base):
            folder = os.path.join(base, folder_e)
            for name in os.listdir(folder) if os.path.isdir(folder) else []:
                if (match := DAY.match(name) or PART.match(name)) and match["kind"] == "strikes":
                    day = match["day"]
                    found.add((decode(folder_t), decode(folder_e), f"{day[:4]}-{day[4:6]}-{day[6:]}"))
    return found


def days(cursor, root, ticker=None, endpoint=ALL):
    """The UTC days holding snapshots of each feed, [{ticker, endpoint (None: legacy), date, snapshots, first,
    last, source}], from the database, and those only the lake's strike files hold (their counts unknown: None)."""
    filters, params = "", {}
    if ticker is not None:
        filters, params["ticker"] = filters + " AND ticker = $ticker", ticker
    if endpoint is not ALL:
        filters, params["endpoint"] = filters + " AND endpoint IS NOT DISTINCT FROM $endpoint", endpoint
    found = cursor.execute(DAYS.format(filters=filters), params)
    names = [column[0] for column in found.description]
    stored = [{**dict(zip(names, row)), "source": "database"} for row in found.fetchall()]
    held = {(day["ticker"], day["endpoint"], day["date"]) for day in stored}
    lake = [{"ticker": t, "endpoint": e, "date": d, "snapshots": None, "first": None, "last": None, "source": "lake"}
            for t, e, d in _lake_days(root, ticker, endpoint) if (t, e, d) not in held]
    return sorted(stored + lake, key=lambda day: (day["ticker"], day["endpoint"] or "", day["date"]))
