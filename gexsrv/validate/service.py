"""GET /integrity: the validator on a read connection of the server's own database, in a worker thread.

The cursor is a separate connection to the same database instance, so the run neither waits for nor blocks the
writer thread, and its one read transaction sees a fixed snapshot while commits go on.
"""

import asyncio
import datetime as dt

from gexsrv import validate
from gexsrv.validate import options, report


def integrity_report(store):
    """An async callable: query arguments -> Report. Runs are serialised: on two cores one at a time is plenty."""
    one_at_a_time = asyncio.Lock()

    async def run(query):
        opts = options.parse(query)
        async with one_at_a_time:
            return await asyncio.to_thread(_run, store, opts)
    return run


def _run(store, opts):
    cursor = store.cursor()
    if cursor is None:
        started = dt.datetime.now(dt.timezone.utc)
        return report.finish([], store.data_dir, {}, started, error=f"database is {store.state}: {store.error}")
    try:
        return validate.run(cursor, store.data_dir, opts)
    finally:
        cursor.close()
