"""The files of a data dir the checks read: the Parquet lake (gexsrv.lake) and the staged history JSON.

Folder and staged file names are mapped back to tickers and endpoints by gexsrv.pathnames, which made them.
Lake files are <day>.<kind>.parquet (a compacted day) and <day>.<first>-<last>.<kind>.parquet (parts), <kind> one
of gexsrv.lakekinds.KINDS; a file named otherwise is read as strike rows. A part that a day file lists in its metadata,
whose range an export is still writing, or a backfill part (0-0) of a kind whose backfill is still writing, is
left out, so a lake caught in the middle of an export or a compaction is read as it will be once that finishes.
"""

import functools
import glob
import os
import re

import duckdb

from gexsrv import lakekinds, pathnames
from gexsrv.validate import staged
from gexsrv.validate.options import epoch_ms
from gexsrv.validate.structure import expected_tables

LAKE_DIR = os.path.join("parquet", "gexbot")
STAGED_DIR = os.path.join("source", "gexbot")
LAKE_NAME = re.compile(rf"^(?P<day>\d{{8}})(?:\.(?P<first>\d+)-(?P<last>\d+))?\.(?P<kind>{lakekinds.NAMES})\.parquet$")
PARTS_KEY = lakekinds.PARTS_KEY
DAY_MS = 86_400_000


@functools.cache
def lake_columns():
    """{kind: {column: type}} of the lake's files: the columns gexsrv.lake exports, typed as gexsrv.schema types
    them in the table they copy (Parquet read back by DuckDB gives the very same types)."""
    tables = expected_tables(adopted=True)
    return {kind: {c: tables[k.table][c] for c in ["timestamp", "ticker", "endpoint", *k.columns.split(", ")]}
            for kind, k in lakekinds.KINDS.items()}


def lake_kind(path):
    """The kind of rows a lake file holds, by its name."""
    name = LAKE_NAME.match(os.path.basename(path))
    return name["kind"] if name else "strikes"


def lit(text):
    return "'" + str(text).replace("'", "''") + "'"


def sql_list(paths):
    return "[" + ", ".join(lit(p) for p in paths) + "]"


def _wanted(options, ticker, endpoint):
    return (not options.ticker or ticker in options.ticker) and (not options.endpoint or endpoint in options.endpoint)


def lake_files(data_dir, options, con, writing, backfilling=()):
    """Lake files within the filters, minus parts a day file holds, parts of ranges still being written and
    backfill parts of the kinds in `backfilling`."""
    first = epoch_ms(options.since) // DAY_MS if options.since else None
    last = (epoch_ms(options.until, end_of_day=True) - 1) // DAY_MS if options.until else None
    picked = []
    for path in sorted(glob.glob(os.path.join(glob.escape(os.path.join(data_dir, LAKE_DIR)), "*", "*", "*.parquet"))):
        folder = os.path.dirname(path)
        name = LAKE_NAME.match(os.path.basename(path))
        if not _wanted(options, *_folder_names(folder)):
            continue
        if name and not _day_within(name["day"], first, last):
            continue
        if name and name["first"] and any(lo < int(name["first"]) <= hi for lo, hi in writing):
            continue
        if name and f"{name['first']}-{name['last']}" == lakekinds.BACKFILL and name["kind"] in backfilling:
            continue
        picked.append(path)
    held = _parts_held_by_day_files(con, [p for p in picked if (m := LAKE_NAME.match(os.path.basename(p)))
                                          and not m["first"]])
    return [p for p in picked if p not in held]


def _parts_held_by_day_files(con, day_files):
    if not day_files:
        return set()
    try:
        rows = con.execute(f"SELECT file_name, value::VARCHAR FROM parquet_kv_metadata({sql_list(day_files)}) "
                           f"WHERE key::VARCHAR = {lit(PARTS_KEY)}").fetchall()
    except duckdb.Error:
        return set()  # an unreadable day file: the schema check names it
    held = set()
    for day_file, parts in rows:
        names = re.findall(r'"([^"]+)"', parts)
        held.update(os.path.join(os.path.dirname(day_file), n) for n in names)
    return held


def _day_within(yyyymmdd, first, last):
    try:
        day = epoch_ms(f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}") // DAY_MS
    except ValueError:
        return True  # not a date: the file is read, and its rows are filtered by their timestamps
    return (first is None or day >= first) and (last is None or day <= last)


def _folder_names(folder):
    """(ticker, endpoint) of a lake folder <ticker>/<endpoint>."""
    return pathnames.decode(os.path.basename(os.path.dirname(folder))), pathnames.decode(os.path.basename(folder))


def lake_day_of(path):
    """(ticker, endpoint, epoch day, kind) of a lake file, from its path; None if not a lake name."""
    name = LAKE_NAME.match(os.path.basename(path))
    if not name:
        return None
    folder = os.path.dirname(path)
    try:
        day = epoch_ms(f"{name['day'][:4]}-{name['day'][4:6]}-{name['day'][6:]}") // DAY_MS
    except ValueError:
        return None
    return *_folder_names(folder), day, name["kind"]


def lake_schema_problems(con, files):
    """(file, column, expected type, found type) for every lake column that is missing or mistyped, each file
    held to the columns of its kind."""
    if not files:
        return []
    expected = ", ".join(f"({lit(k)}, {lit(c)}, {lit(t)})" for k, cs in lake_columns().items() for c, t in cs.items())
    kinds = ", ".join(f"({lit(p)}, {lit(lake_kind(p))})" for p in files)
    try:
        return con.execute(f"""WITH
                found AS (SELECT file_name, name, duckdb_type FROM parquet_schema({sql_list(files)})),
                expected(kind, name, type) AS (VALUES {expected}),
                kinds(file_name, kind) AS (VALUES {kinds})
            SELECT f.file_name, e.name, e.type, s.duckdb_type
            FROM (SELECT DISTINCT file_name FROM found) f JOIN kinds k USING (file_name) JOIN expected e USING (kind)
            LEFT JOIN found s ON s.file_name = f.file_name AND s.name = e.name
            WHERE s.duckdb_type IS DISTINCT FROM e.type ORDER BY ALL""").fetchall()
    except duckdb.Error:
        return _unreadable(con, files)


def _unreadable(con, files):
    """Which files cannot be read at all (only asked when reading them together failed)."""
    bad = []
    for path in files:
        try:
            con.execute(f"SELECT count(*) FROM parquet_schema({lit(path)})")
        except duckdb.Error as exc:
            bad.append((path, None, "a Parquet file", str(exc).splitlines()[0]))
    return bad


def staged_files(data_dir, options):
    """(ticker, endpoint, path) of the staged history files within the filters."""
    found = []
    for path in sorted(glob.glob(os.path.join(glob.escape(os.path.join(data_dir, STAGED_DIR)), "*.json"))):
        pair = pathnames.staged_pair(os.path.basename(path))
        if pair and _wanted(options, *pair):
            found.append((*pair, path))
    return found


def staged_snapshots_sql(con, files):
    """One row per staged snapshot, as gexsrv.validate.staged reads it.

    Returns (sql, problems): the files that are no history file at all are left out and listed as (path, why).
    """
    parts, problems = [], []
    for ticker, endpoint, path in files:
        try:
            scan = staged.scan(con, path)
        except (staged.Unreadable, duckdb.Error, OSError) as exc:
            problems.append((path, str(exc).splitlines()[0]))
            continue
        parts.append(f"SELECT {lit(ticker)} AS ticker, {lit(endpoint)} AS endpoint, "
                     f"{staged.TIMESTAMP_MS} AS timestamp, * EXCLUDE (timestamp) FROM {scan}")
    return " UNION ALL ".join(parts), problems


STAGED_STRIKES = """
    SELECT ticker, endpoint, timestamp, (r->>0)::DOUBLE AS strike, (r->>1)::DOUBLE AS gamma,
           (r->>2)::DOUBLE AS oi_gamma, (r->3)::DOUBLE[] AS priors
    FROM (SELECT ticker, endpoint, timestamp, unnest(strikes) AS r FROM v_staged_snapshots)"""
