"""The DuckDB database: opening or adopting it, and writing one batch of Records in one transaction.

All methods but open() run on the writer thread (gexsrv.writer), which alone owns the write connection.
"""

import logging
import os
import threading

import duckdb
import pyarrow as pa

from gexsrv import batches, schema
from gexsrv.records import MajorsRow, MaxChangeRow, SnapshotRow
from gexsrv.uw import writer as uw_writer

log = logging.getLogger("gexsrv.store")

DB_FILE = "gex_data.db"


class StorageError(Exception):
    """The database could not take a write; the batch was rolled back and can be retried."""


class RecordRefused(Exception):
    """The database refused this record on its own while its batch-mates were stored: retrying cannot help."""


class Store:
    def __init__(self, data_dir, threads=1, checkpoint_mb=16, memory_mb=None):
        self.data_dir = data_dir
        self.config = {"threads": threads, "checkpoint_threshold": f"{checkpoint_mb}MiB"}
        if memory_mb:
            self.config["memory_limit"] = f"{memory_mb}MiB"
        self.path = os.path.join(data_dir, DB_FILE)
        self.con = None
        self.reader = None  # a second connection for reports, so they never wait behind a commit
        self.reader_lock = threading.Lock()
        self.state = "closed"  # writable | read-only | failing | closed
        self.error = None

    def open(self):
        """Open (or create) and adopt the database; fall back to read-only when it cannot be written."""
        try:
            os.makedirs(self.data_dir, exist_ok=True)
            self.con = duckdb.connect(self.path, config=self.config)
            schema.apply(self.con)
            self.state = "writable"
        except (duckdb.Error, OSError) as exc:
            log.error("cannot open %s for writing (%s); writes will get 503", self.path, exc)
            self.error = str(exc)
            self.state = "read-only"
            self.con = self._open_read_only()
        if self.con is not None:
            self.reader = self.con.cursor()

    def _open_read_only(self):
        if self.con is not None:
            return self.con
        try:
            return duckdb.connect(self.path, read_only=True) if os.path.exists(self.path) else None
        except duckdb.Error as exc:
            log.error("cannot open %s at all: %s", self.path, exc)
            self.state = "failing"
            return None

    def close(self):
        for con in (self.reader, self.con):
            if con is not None:
                con.close()
        self.con = self.reader = None
        self.state = "closed"

    def read(self, sql, params=()):
        """Rows of a read-only query, from any thread."""
        with self.reader_lock:
            return self.reader.execute(sql, params).fetchall()

    def cursor(self):
        """A read connection of its own, for long reports (GET /integrity) that must not hold reader_lock."""
        with self.reader_lock:
            return self.reader.cursor() if self.reader is not None else None

    def pending_history_jobs(self):
        return self.read(
            "SELECT count(*) FROM gex_history_queue WHERE status NOT IN ('completed', 'failed')")[0][0]

    def prepare(self, records, source="live"):
        """The Arrow tables of a batch, by kind, or None when a record cannot be converted (write() then finds
        it). Any thread may build them: the writer calls this on the event loop, so the writer thread then needs
        the GIL for DuckDB calls only."""
        try:
            return self._tables(records, source)
        except pa.ArrowException:
            return None

    def _tables(self, records, source):
        by_kind = {}
        for i, record in enumerate(records):
            by_kind.setdefault(record.kind, []).append(i)
        return {kind: (indexes, WRITERS[kind].prepare([records[i] for i in indexes], source))
                for kind, indexes in by_kind.items()}

    def write(self, records, source="live", prepared=None):
        """Commit records in one transaction; return, per record, True if stored, False if a duplicate, or the
        exception that refused it.

        The first try is plain INSERTs, the cheap path. If a key is already stored, the unique index refuses
        the batch; it is rolled back and written again with ON CONFLICT DO NOTHING, which finds whose it was.
        A batch that fails otherwise is retried record by record, so only a guilty record is refused; when
        every record fails alone too, the database is at fault and StorageError is raised.
        """
        if self.con is None or self.state in ("read-only", "closed"):
            raise StorageError(f"database is {self.state}: {self.error}")
        try:
            stored = self._write(records, source, prepared or self._tables(records, source))
        except (duckdb.Error, pa.ArrowException) as exc:
            if len(records) == 1:
                self.state, self.error = "failing", str(exc)
                raise StorageError(str(exc)) from exc
            log.warning("a batch of %d failed (%s); writing its records one by one", len(records), exc)
            stored = [self._alone(record, source) for record in records]
            if all(isinstance(outcome, StorageError) for outcome in stored):
                raise stored[0]
            stored = [RecordRefused(str(o)) if isinstance(o, StorageError) else o for o in stored]
        self.state, self.error = "writable", None
        return stored

    def _alone(self, record, source):
        try:
            return self.write([record], source)[0]
        except StorageError as exc:
            return exc

    def _write(self, records, source, prepared):
        try:
            try:
                return self._commit(records, source, prepared, careful=False)
            except duckdb.ConstraintException:
                self._rollback()
                return self._commit(records, source, prepared, careful=True)
        except duckdb.Error:
            self._rollback()
            raise

    def _commit(self, records, source, prepared, careful):
        stored = [False] * len(records)
        self.con.begin()
        for kind, (indexes, tables) in prepared.items():
            group = [records[i] for i in indexes]
            for i in WRITERS[kind].write(self.con, group, source, tables, careful):
                stored[indexes[i]] = True
        self.con.commit()
        return stored

    def _rollback(self):
        try:
            self.con.rollback()
        except duckdb.Error:
            log.exception("rollback failed")


def insert(con, table, batch, returning=None):
    """INSERT an Arrow table BY NAME; with `returning`, skip rows whose key exists and return the new keys.

    DuckDB reads the local `batch` by its name (a replacement scan): unlike register(), that adds no catalog
    entry, which makes a small insert about twice as fast.
    """
    if returning is None:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
        return None
    return con.execute(
        f"INSERT INTO {table} BY NAME SELECT * FROM batch ON CONFLICT DO NOTHING RETURNING {returning}"
    ).fetchall()


class Keyed:
    """The writer of a table keyed on (ticker, endpoint, timestamp); snapshots bring their strike rows along."""

    def __init__(self, table, row_type, with_strikes=False):
        self.table = table
        self.row_type = row_type
        self.with_strikes = with_strikes

    def prepare(self, records, source):
        first = batches.first_of_each_key(records)
        chosen = [records[i] for i in first]
        strikes = batches.strikes(chosen) if self.with_strikes else None
        return first, batches.rows(chosen, self.row_type, source), strikes

    def write(self, con, records, source, tables, careful):
        """Insert the prepared tables; return the indexes of the records stored."""
        first, rows, strikes = tables
        if not careful:
            insert(con, self.table, rows)
            if strikes is not None and strikes.num_rows:
                insert(con, "gex_strikes", strikes)
            return first
        keys = set(insert(con, self.table, rows, returning="ticker, endpoint, timestamp"))
        new = [i for i in first if (records[i].ticker, records[i].endpoint, records[i].timestamp_ms) in keys]
        if self.with_strikes and new:
            strikes = batches.strikes([records[i] for i in new])
            if strikes.num_rows:
                insert(con, "gex_strikes", strikes)
        return new


class Unprepared:
    """A writer that builds its own tables on the writer thread: fn(con, records, source, careful)."""

    def __init__(self, fn):
        self.fn = fn

    def prepare(self, records, source):
        return None

    def write(self, con, records, source, tables, careful):
        return self.fn(con, records, source, careful)


# kind -> its writer. `careful` is set on the retry after a ConstraintException: the writer must then skip what
# is already stored.
WRITERS = {
    "snapshot": Keyed("gex_snapshots", SnapshotRow, with_strikes=True),
    "majors": Keyed("gex_majors", MajorsRow),
    "maxchange": Keyed("gex_maxchange", MaxChangeRow),
    "uw": Unprepared(uw_writer.write),
}
