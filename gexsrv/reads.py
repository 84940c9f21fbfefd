"""The database reads behind the status page's JSON (gexsrv.api) and /metrics (gexsrv.metrics).

Each runs in a worker thread, on a read connection of its own (Store.cursor) or the store's reader (Store.read),
never on the write connection, so no read waits for an ingest nor holds one up. Every read is bounded.
StorageError when the database cannot be read.
"""

import duckdb

from gexsrv import heatmap
from gexsrv.history.queue import UNFINISHED
from gexsrv.latest import SNAPSHOT_FIELDS, STRIKES
from gexsrv.store import StorageError

LEGACY = "legacy"  # the endpoint name of legacy rows (NULL endpoint), as the validator names them
COLUMNS = ", ".join(f"{column} AS {name}" for column, name in SNAPSHOT_FIELDS.items())
SNAPSHOT = f"""SELECT timestamp, endpoint, received_at, source, {COLUMNS} FROM gex_snapshots
    WHERE ticker = ? AND endpoint IS NOT DISTINCT FROM ?"""
RANGE = """SELECT timestamp, endpoint, received_at, source, {columns} FROM gex_snapshots
    WHERE ticker = ? AND timestamp >= ? AND timestamp < ? {endpoint}
    ORDER BY timestamp DESC, endpoint LIMIT ?"""
HEAD = ("timestamp", "endpoint", "received_at", "source", *SNAPSHOT_FIELDS.values())
HISTORY_COUNTS = "SELECT status, count(*), sum(rows_imported) FROM gex_history_queue GROUP BY status"
# How long each running import has run: its row was last updated when it entered `importing`.
IMPORTING = """SELECT id, epoch_ms(current_timestamp) - epoch_ms(updated_at) FROM gex_history_queue
    WHERE status = 'importing'"""


def stored_endpoint(endpoint):
    """The endpoint as stored: `legacy` is NULL."""
    return None if endpoint == LEGACY else endpoint


def read_cursor(store):
    """A read connection of its own (Store.cursor); StorageError when the database cannot be read."""
    cursor = store.cursor()
    if cursor is None:
        raise StorageError(f"the database cannot be read now ({store.state}: {store.error})")
    return cursor


def _with_cursor(store, query, *args):
    """query(cursor, *args) on a read connection of its own; StorageError when the database cannot be read."""
    cursor = read_cursor(store)
    try:
        return query(cursor, *args)
    except duckdb.Error as exc:
        raise StorageError(f"the database cannot be read now: {exc}") from exc
    finally:
        cursor.close()


def _rows(store, query, params):
    return _with_cursor(store, lambda cursor: cursor.execute(query, params).fetchall())


def _snapshot(row):
    found = dict(zip(HEAD, row))
    found["endpoint"] = found["endpoint"] or LEGACY
    return found


def snapshots(store, ticker, endpoint, since_ms, until_ms, limit):
    """The snapshots of ticker (and endpoint, when given) in [since_ms, until_ms), newest first, without strike
    rows: (at most `limit` of them, whether there are more)."""
    params = [ticker, since_ms, until_ms]
    where = ""
    if endpoint is not None:
        where, params = "AND endpoint IS NOT DISTINCT FROM ?", [*params, stored_endpoint(endpoint)]
    rows = _rows(store, RANGE.format(columns=COLUMNS, endpoint=where), [*params, limit + 1])
    return [_snapshot(row) for row in rows[:limit]], len(rows) > limit


def snapshot(store, ticker, endpoint, timestamp_ms=None):
    """One snapshot with its strike rows, in the payload's order: the one at timestamp_ms, or the newest; None when
    there is none."""
    stored = stored_endpoint(endpoint)
    if timestamp_ms is None:
        rows = _rows(store, SNAPSHOT + " ORDER BY timestamp DESC LIMIT 1", [ticker, stored])
    else:
        rows = _rows(store, SNAPSHOT + " AND timestamp = ? LIMIT 1", [ticker, stored, timestamp_ms])
    if not rows:
        return None
    found = _snapshot(rows[0])
    found["strikes"] = [list(row) for row in _rows(store, STRIKES, [ticker, found["timestamp"], stored])]
    return found


def held_snapshot(record):
    """A snapshot Record held in memory (gexsrv.latest.Feeds), in the shape of snapshot()."""
    row = record.row
    return {"timestamp": record.timestamp_ms, "endpoint": record.endpoint, "received_at": record.received_ms,
            "source": record.source, **{name: getattr(row, column) for column, name in SNAPSHOT_FIELDS.items()},
            "strikes": row.strikes}


def history_counts(store):
    """({status: jobs}, strike rows imported by completed jobs)."""
    found = store.read(HISTORY_COUNTS)
    return ({status: count for status, count, _ in found},
            sum(rows or 0 for status, _, rows in found if status == "completed"))


def import_rates(store, runner):
    """{job id: strike rows per second} of each import running now, over its run so far."""
    rates = {}
    for job_id, ran_ms in store.read(IMPORTING):
        rows = runner.imported.get(job_id, (0, 0))[1]
        rates[job_id] = round(rows / (ran_ms / 1000), 1) if ran_ms > 0 else 0.0
    return rates


def jobs_with_progress(store, runner, limit):
    """The latest `limit` history jobs, newest first; an unfinished one with its live progress and import rate."""
    rates = import_rates(store, runner)
    jobs = []
    for job in runner.recent()[:limit]:
        if job["status"] in UNFINISHED:
            job = runner.job(job["id"]) or job
        jobs.append({**job, "rows_per_s": rates.get(job["id"])})
    return jobs


def heatmap_grid(store, lake_root, selection, form):
    """The day view's grid as JSON (gexsrv.heatmap.as_json), CSV or Parquet bytes (heatmap.export)."""
    if form == "json":
        return _with_cursor(store, heatmap.as_json, lake_root, selection)
    return _with_cursor(store, heatmap.export, lake_root, selection, form)


def days(store, lake_root, ticker, endpoint):
    """The days stored per feed (gexsrv.heatmap.days); endpoint None: every endpoint."""
    found = _with_cursor(store, heatmap.days, lake_root, ticker,
                         heatmap.ALL if endpoint is None else stored_endpoint(endpoint))
    return [{**day, "endpoint": day["endpoint"] or LEGACY} for day in found]
