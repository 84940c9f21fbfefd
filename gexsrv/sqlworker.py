"""Where GET /api/sql's queries run: one at a time (the others wait their turn), on a thread of their own at the
lowest CPU priority, each on a read connection of its own. On 2 cores a query's core is the event loop's or
ingest's, and they should get it first (README, GET /api/sql, has the measured cost). A shutdown stops the query
running, so that neither the store's close nor the exit waits for it.
"""

import asyncio

import duckdb

from gexsrv import sql, sqlout
from gexsrv.lowpriority import one_thread
from gexsrv.reads import read_cursor
from gexsrv.store import StorageError

# Errors of the database, not of the query: a 503 (StorageError), where the query's own errors are a 400.
DATABASE_FAULTS = (duckdb.FatalException, duckdb.IOException)
SHUTTING_DOWN = "the server is shutting down"
INTERRUPT_EVERY_S = 0.1


class SqlWorker:
    def __init__(self):
        self.executor = one_thread("gexsrv-sql", 19, "GET /api/sql queries")
        self.running = None  # the connection of the query running now
        self.closed = False

    async def reply(self, store, query, form, max_rows, timeout_s):
        """(body, Content-Type, whether rows were cut off): the query run by gexsrv.sql, in `form`
        (gexsrv.sqlout). Refused, TimedOut, Unencodable or the query's duckdb.Error when it cannot be answered;
        StorageError when the database cannot be read or the server is shutting down."""
        if self.closed:
            raise StorageError(SHUTTING_DOWN)
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, self._reply, store, query, form, max_rows, timeout_s)

    def _reply(self, store, query, form, max_rows, timeout_s):
        self.running = read_cursor(store)
        try:
            if self.closed:  # it waited its turn past the shutdown
                raise StorageError(SHUTTING_DOWN)
            result = sql.run(self.running, query, max_rows, timeout_s)
        except DATABASE_FAULTS as exc:
            raise StorageError(f"the database cannot be read now: {exc}") from exc
        except (sql.TimedOut, duckdb.InterruptException):
            if self.closed:  # interrupted by close(), not by its time limit
                raise StorageError(SHUTTING_DOWN) from None
            raise
        finally:
            self.running, cursor = None, self.running
            cursor.close()
        return (*sqlout.encode(result, form), result.truncated)

    async def close(self):
        """Stop the query running, refuse the ones waiting, and let the thread end. The interrupt is sent again
        until the thread ends: one sent as a query is only starting may find nothing to stop."""
        self.closed = True
        ended = asyncio.ensure_future(asyncio.to_thread(self.executor.shutdown))
        while not ended.done():
            self._interrupt()
            await asyncio.wait([ended], timeout=INTERRUPT_EVERY_S)

    def _interrupt(self):
        running = self.running
        if running is not None:
            try:
                running.interrupt()
            except duckdb.Error:  # it ended meanwhile
                pass
