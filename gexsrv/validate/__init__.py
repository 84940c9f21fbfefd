"""Integrity validation of a data dir: `python -m gexsrv validate` and GET /integrity. It never modifies data.

run(con, data_dir, options) takes any read connection (a read-only one of its own, or a cursor of the server's),
runs every check inside one read transaction, so all see the same snapshot of a database that may be taking
writes meanwhile, and returns a report.Report. Each check is one SQL query over temporary views (sources.py).
"""

import datetime as dt
import os
import time

import duckdb

from gexsrv.validate import crosscheck, journaled, links, report, rules, structure, timeline
from gexsrv.validate.sources import Context

CHECKS = (structure.CHECKS + rules.CHECKS + timeline.CHECKS + crosscheck.CHECKS + links.CHECKS
          + journaled.CHECKS)
DB_FILE = "gex_data.db"


class Unreadable(Exception):
    """The data cannot be read at all (exit code 2); `locked` when a running server holds the database."""

    def __init__(self, message, locked=False):
        super().__init__(message)
        self.locked = locked


def open_read_only(data_dir):
    """A read-only connection to data_dir's database, or an in-memory one when there is only Parquet/JSON."""
    path = os.path.join(data_dir, DB_FILE)
    if not os.path.isdir(data_dir):
        raise Unreadable(f"no data dir {data_dir}")
    if not os.path.exists(path):
        return duckdb.connect()
    try:
        return duckdb.connect(path, read_only=True)
    except duckdb.Error as exc:
        locked = "lock" in str(exc).lower()
        why = "it is locked by another process (a running gexsrv?)" if locked else str(exc).splitlines()[0]
        raise Unreadable(f"cannot open {path} read-only: {why}", locked=locked) from None


def run(con, data_dir, options, now_ms=None):
    started = dt.datetime.now(dt.timezone.utc)
    now_ms = now_ms if now_ms is not None else int(started.timestamp() * 1000)
    option_values = {f: getattr(options, f) for f in options.__struct_fields__}
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.Error as exc:
        return report.finish([], data_dir, option_values, started, error=str(exc))
    try:
        ctx = Context(con, data_dir, options, now_ms)
        if not ctx.tables and not ctx.lake_files and not ctx.staged_files:
            return report.finish([], data_dir, option_values, started, error=f"nothing to validate in {data_dir}")
        checks = [_run_one(check, ctx) for check in CHECKS]
    except duckdb.Error as exc:
        return report.finish([], data_dir, option_values, started, error=str(exc).splitlines()[0])
    finally:
        con.execute("ROLLBACK")
    return report.finish(checks, data_dir, option_values, started)


def _run_one(check, ctx):
    """A check whose query fails (a file that cannot be read, a column of the wrong type) is a failed check."""
    started = time.perf_counter()
    try:
        outcome = check(ctx)
    except duckdb.Error as exc:
        name = f"{check.__module__.rsplit('.', 1)[1]}.{check.__name__}"
        outcome = report.CheckResult(name=name, status=report.FAILED,
                                     detail=f"query failed: {str(exc).splitlines()[0]}")
    outcome.elapsed_s = round(time.perf_counter() - started, 3)
    return outcome
