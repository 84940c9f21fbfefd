"""The gex_history_days table: one row per backfilled (ticker, package, category, day), so a re-run knows what is
done. Pre-signed URLs differ per request, so a day is keyed by what it is, not by its URL.

status: planned (its URL is to be asked for) -> no data (the API has no file) | failed (the API could not say) |
queued (job_id is its job in gex_history_queue, whose status then says how the day stands). Writers run on the
store's thread (Store.use) with its connection; readers go through Store.read.
"""

from typing import NamedTuple

from gexsrv.history.queue import DONE

UNFINISHED_JOB = ("pending", "downloading", "importing")
# A day's shown status: the job's once it is queued; a failed job with tries left is planned again.
SHOWN = """CASE WHEN d.status <> 'queued' OR q.status IS NULL THEN d.status
                 WHEN q.status = 'failed' AND d.tries < ? THEN 'planned' ELSE q.status END"""
SELECT = f"""SELECT d.ticker, d.package, d.category, d.day, {SHOWN}, d.tries, d.job_id,
                    coalesce(d.error, CASE WHEN q.status = 'failed' THEN q.last_error END),
                    q.file_path IS NOT NULL, q.snapshots_imported, q.rows_imported
             FROM gex_history_days d LEFT JOIN gex_history_queue q ON q.id = d.job_id"""
ORDER = " ORDER BY d.day, d.ticker, d.package, d.category"
FIELDS = ["ticker", "package", "category", "date", "status", "tries", "job_id", "error", "downloaded",
          "snapshots_imported", "rows_imported"]


class Day(NamedTuple):
    ticker: str
    package: str
    category: str
    day: object  # datetime.date


def _where(tickers=None, package=None, categories=None, first=None, last=None):
    """A WHERE clause and its parameters for the filters given (None: any)."""
    clauses, params = [], []
    for column, values in (("ticker", tickers), ("category", categories)):
        if values:
            clauses.append(f"d.{column} IN ({', '.join('?' * len(values))})")
            params += list(values)
    for clause, value in (("d.package = ?", package), ("d.day >= ?", first), ("d.day <= ?", last)):
        if value is not None:
            clauses.append(clause)
            params.append(value)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _rows(execute, max_tries, filters, limit=None):
    where, params = _where(**filters)
    sql = SELECT + where + ORDER + (f" LIMIT {int(limit)}" if limit else "")
    return [dict(zip(FIELDS, row)) for row in execute(sql, [max_tries, *params])]


def listing(store, max_tries, limit=None, **filters):
    """The days matching the filters (tickers, package, categories, first, last), each as a dict."""
    return _rows(store.read, max_tries, filters, limit)


def plan(con, keys, max_tries):
    """Make every day of keys planned unless it is done or its job is under way; return the keys already done.

    A day whose job is under way (a run was interrupted) keeps it, with its tries reset: if that job fails (its
    pre-signed URL may have expired meanwhile), the day is asked for afresh."""
    tickers = sorted({k.ticker for k in keys})
    categories = sorted({k.category for k in keys})
    package = keys[0].package
    first, last = min(k.day for k in keys), max(k.day for k in keys)
    con.begin()
    try:
        shown = {Day(r["ticker"], r["package"], r["category"], r["date"]): r["status"] for r in _rows(
            lambda sql, params: con.execute(sql, params).fetchall(), max_tries,
            dict(tickers=tickers, package=package, categories=categories, first=first, last=last))}
        again = [list(k) for k in keys if k in shown and shown[k] not in (*DONE, *UNFINISHED_JOB)]
        under_way = [list(k) for k in keys if shown.get(k) in UNFINISHED_JOB]
        new = [list(k) for k in keys if k not in shown]
        key = "ticker = ? AND package = ? AND category = ? AND day = ?"
        if new:
            con.executemany("INSERT INTO gex_history_days (ticker, package, category, day, status) "
                            "VALUES (?, ?, ?, ?, 'planned')", new)
        if again:
            con.executemany("UPDATE gex_history_days SET status = 'planned', tries = 0, error = NULL, "
                            f"updated_at = current_timestamp WHERE {key}", again)
        if under_way:
            con.executemany(f"UPDATE gex_history_days SET tries = 0, updated_at = current_timestamp WHERE {key}",
                            under_way)
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return {k for k in keys if shown.get(k) in DONE}


def next_planned(con, max_tries):
    """The earliest day to ask the API about (a day whose job failed with tries left counts), or None."""
    where = " WHERE " + SHOWN + " = 'planned'"
    rows = con.execute("SELECT d.ticker, d.package, d.category, d.day FROM gex_history_days d "
                       "LEFT JOIN gex_history_queue q ON q.id = d.job_id" + where + ORDER + " LIMIT 1",
                       [max_tries]).fetchall()
    return Day(*rows[0]) if rows else None


def jobs_under_way(con):
    """How many queued days' jobs are not finished yet."""
    return con.execute("SELECT count(*) FROM gex_history_days d JOIN gex_history_queue q ON q.id = d.job_id "
                       f"WHERE d.status = 'queued' AND q.status IN {UNFINISHED_JOB}").fetchone()[0]


def record(con, key, status, job_id=None, error=None):
    """What asking the API about the day came to: one more try."""
    con.execute("UPDATE gex_history_days SET status = ?, job_id = ?, error = ?, tries = tries + 1, "
                "updated_at = current_timestamp WHERE ticker = ? AND package = ? AND category = ? AND day = ?",
                [status, job_id, error, *key])
