"""The DuckDB database: opening or adopting it, and writing batches of records in one transaction each.

One thread owns the write connection (Store.run); everything that writes runs there, between ingests. Each kind
of record registers its writer (register()), so the store knows tables only through them.
"""

import asyncio
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa

from gexsrv import schema

log = logging.getLogger("gexsrv.store")

DB_FILE = "gex_data.db"
# kind -> its writer: prepare(records) -> tables; write(con, records, tables, careful) -> indexes stored;
# recent_keys(con, kind, since_ms) -> (key, timestamp ms) of what is stored; newest(con, kind) -> {group: ms}
WRITERS = {}


def register(kind, writer):
    WRITERS[kind] = writer


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
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gexsrv-store")

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

    async def run(self, fn, *args):
        """fn(*args) on the thread that owns the write connection."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def close(self):
        self.executor.shutdown(wait=True)
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

    def journal_position(self):
        """(segment, offset, seq) of the last journal record ingested."""
        rows = self.con.execute('SELECT segment, "offset", seq FROM gexsrv_ingest').fetchall()
        return rows[0] if rows else (0, 0, 0)

    def _save_position(self, position):
        self.con.execute('INSERT OR REPLACE INTO gexsrv_ingest (id, segment, "offset", seq, updated_at) '
                         "VALUES (1, ?, ?, ?, current_timestamp)", list(position))

    def advance(self, position, quarantined=()):
        """Record that ingest reached position, keeping the journaled records it could not ingest on their own
        ((seq, line, error) each) in the quarantine."""
        self._check_writable()
        try:
            self.con.begin()
            if quarantined:
                self.con.executemany("INSERT INTO gexsrv_quarantine (seq, line, error) VALUES (?, ?, ?) "
                                     "ON CONFLICT DO NOTHING", list(quarantined))
            self._save_position(position)
            self.con.commit()
        except duckdb.Error as exc:
            self._rollback()
            self.state, self.error = "failing", str(exc)
            raise StorageError(str(exc)) from exc

    def recent_keys(self, since_ms):
        """(key, timestamp ms) of what is stored from since_ms on, as records key themselves (gexsrv.keys)."""
        return [pair for kind, writer in WRITERS.items() for pair in writer.recent_keys(self.con, kind, since_ms)]

    def newest_keys(self):
        """The newest timestamp stored per (kind, ticker, endpoint)."""
        return {group: ts for kind, writer in WRITERS.items() for group, ts in writer.newest(self.con, kind).items()}

    def quarantined(self):
        return self.read("SELECT count(*) FROM gexsrv_quarantine")[0][0]

    def prepare(self, records):
        """The Arrow tables of a batch, by kind, or None when a record cannot be converted (write() then finds
        it). Any thread may build them: ingest calls this on the event loop, so the thread that owns the
        connection then needs the GIL for DuckDB calls only."""
        try:
            return self._tables(records)
        except pa.ArrowException:
            return None

    def _tables(self, records):
        by_kind = {}
        for i, record in enumerate(records):
            by_kind.setdefault(record.kind, []).append(i)
        return {kind: (indexes, WRITERS[kind].prepare([records[i] for i in indexes]))
                for kind, indexes in by_kind.items()}

    def _check_writable(self):
        if self.con is None or self.state in ("read-only", "closed"):
            raise StorageError(f"database is {self.state}: {self.error}")

    def write(self, records, prepared=None, position=None):
        """Commit records in one transaction, with the journal position they reach; return, per record, True if
        stored, False if a duplicate, or the RecordRefused that refused it.

        The first try is plain INSERTs, the cheap path. If a key is already stored, the unique index refuses
        the batch; it is rolled back and written again with ON CONFLICT DO NOTHING, which finds whose it was.
        A batch that fails otherwise is retried record by record, so only a guilty record is refused (the
        position is then left to the caller, which keeps the refused ones: Store.advance); when every record
        fails alone too, the database is at fault and StorageError is raised.
        """
        self._check_writable()
        try:
            stored = self._write(records, prepared or self._tables(records), position)
        except (duckdb.Error, pa.ArrowException) as exc:
            if len(records) == 1:
                self.state, self.error = "failing", str(exc)
                raise StorageError(str(exc)) from exc
            log.warning("a batch of %d failed (%s); writing its records one by one", len(records), exc)
            stored = [self._alone(record) for record in records]
            if all(isinstance(outcome, StorageError) for outcome in stored):
                raise stored[0]
            stored = [RecordRefused(str(o)) if isinstance(o, StorageError) else o for o in stored]
            if position is not None and not any(isinstance(o, RecordRefused) for o in stored):
                self.advance(position)
        self.state, self.error = "writable", None
        return stored

    def _alone(self, record):
        try:
            return self.write([record])[0]
        except StorageError as exc:
            return exc

    def _write(self, records, prepared, position):
        try:
            try:
                return self._commit(records, prepared, position, careful=False)
            except duckdb.ConstraintException:
                self._rollback()
                return self._commit(records, prepared, position, careful=True)
        except duckdb.Error:
            self._rollback()
            raise

    def _commit(self, records, prepared, position, careful):
        stored = [False] * len(records)
        self.con.begin()
        for kind, (indexes, tables) in prepared.items():
            group = [records[i] for i in indexes]
            for i in WRITERS[kind].write(self.con, group, tables, careful):
                stored[indexes[i]] = True
        if position is not None:
            self._save_position(position)
        self.con.commit()
        return stored

    def _rollback(self):
        try:
            self.con.rollback()
        except duckdb.Error:
            log.exception("rollback failed")
