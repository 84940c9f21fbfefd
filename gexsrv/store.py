"""The DuckDB database: opening or adopting it, and writing batches of records in one transaction each.

One thread owns the write connection (Store.run); everything that writes runs there, between ingests. The store
knows tables only through the writers it is given, one per kind of record (gexsrv.kinds names them all):
prepare(records) -> tables; write(con, records, tables, careful) -> indexes stored; recent_keys(con, kind,
since_ms) -> (key, timestamp ms) of what is stored; newest(con, kind) -> {group: ms}.
"""

import asyncio
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pyarrow as pa

from gexsrv import schema
from gexsrv.position import START, Position

log = logging.getLogger("gexsrv.store")

DB_FILE = "gex_data.db"
def cause_of(exc):
    """What kind of trouble an error opening the database is: locked | damaged | permission | io."""
    text = str(exc).lower()
    if "lock" in text:
        return "locked"
    if "not a valid duckdb database" in text or "corrupt" in text or isinstance(exc, duckdb.SerializationException):
        return "damaged"
    if "permission denied" in text or "read-only file system" in text:
        return "permission"
    return "io"


# Who commits beside whom: live ingest on the store's thread, a history import on a cursor of its own.
COMMITTERS = ("ingest", "history")


class StorageError(Exception):
    """The database could not take a write; the batch was rolled back and can be retried."""


class RecordRefused(Exception):
    """The database refused this record on its own while its batch-mates were stored: retrying cannot help."""


class Store:
    def __init__(self, data_dir, writers, threads=1, checkpoint_mb=16, memory_mb=None):
        self.data_dir, self.writers = data_dir, writers
        # No extension is fetched or loaded on demand: a query of GET /api/sql naming one of its functions must
        # not reach the network (gexsrv.sql); json and parquet are built in.
        self.config = {"threads": threads, "checkpoint_threshold": f"{checkpoint_mb}MiB",
                       "autoinstall_known_extensions": False, "autoload_known_extensions": False}
        if memory_mb:
            self.config["memory_limit"] = f"{memory_mb}MiB"
        self.path = os.path.join(data_dir, DB_FILE)
        self.con = None
        self.reader = None  # a second connection for reports, so they never wait behind a commit
        self.reader_lock = threading.Lock()
        self.state = "closed"  # writable | read-only | failing | closed
        self.error = None
        self.cause = None  # why it is not writable: locked | damaged | permission | io
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gexsrv-store")
        self.conflicts = {writer: 0 for writer in COMMITTERS}  # commits retried after a conflict
        self.conflicts_lock = threading.Lock()  # ingest and a history import count from their own threads

    def open(self):
        """Open (or create) and adopt the database for writing, on a fresh connection; when that fails, open it for
        reading if possible. Raises nothing: state, error and cause say how it went."""
        self._disconnect()
        try:
            os.makedirs(self.data_dir, exist_ok=True)
            con = duckdb.connect(self.path, config=self.config)
            try:
                schema.apply(con)
            except duckdb.Error:
                con.close()
                raise
        except (duckdb.Error, OSError) as exc:
            self.state, self.error, self.cause = "failing", str(exc).strip(), cause_of(exc)
            log.error("cannot open %s for writing: %s", self.path, self.error)
            self._open_read_only()
            return
        self.con, self.reader = con, con.cursor()
        self.state, self.error, self.cause = "writable", None, None

    def _open_read_only(self):
        """Readers (reports, job listings) still work on a database that cannot be written, unless it is locked."""
        if self.cause in ("locked", "damaged") or not os.path.exists(self.path):
            return
        try:
            self.con = duckdb.connect(self.path, read_only=True, config=self.config)
        except duckdb.Error as exc:
            log.error("cannot open %s for reading either: %s", self.path, exc)
            return
        self.reader = self.con.cursor()
        self.state = "read-only"

    def _disconnect(self):
        with self.reader_lock:
            for con in (self.reader, self.con):
                if con is not None:
                    try:
                        con.close()
                    except duckdb.Error:  # a connection broken by a fatal error may refuse even this
                        log.warning("closing a broken DuckDB connection failed", exc_info=True)
            self.con = self.reader = None

    async def run(self, fn, *args):
        """fn(*args) on the thread that owns the write connection."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def use(self, fn, *args):
        """fn(write connection, *args) on that thread; StorageError when the database cannot be written."""
        def call():
            self._check_writable()
            try:
                return fn(self.con, *args)
            except duckdb.Error as exc:
                raise StorageError(str(exc)) from exc
        return await self.run(call)

    def close(self):
        self.executor.shutdown(wait=True)
        self._disconnect()
        self.state = "closed"

    def read(self, sql, params=()):
        """Rows of a read-only query, from any thread; StorageError when the database cannot be read."""
        with self.reader_lock:
            if self.reader is None:
                raise StorageError(f"the database cannot be read now ({self.state}: {self.error})")
            try:
                return self.reader.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                raise StorageError(f"the database cannot be read now: {exc}") from exc

    def cursor(self):
        """A read connection of its own, for long reports (GET /integrity) that must not hold reader_lock."""
        with self.reader_lock:
            return self.reader.cursor() if self.reader is not None else None

    def conflicted(self, writer):
        """Count a commit of writer's that conflicted with another's and was written again (not a failure)."""
        with self.conflicts_lock:
            self.conflicts[writer] += 1

    def pending_history_jobs(self):
        return self.read(
            "SELECT count(*) FROM gex_history_queue WHERE status NOT IN ('completed', 'skipped', 'failed')")[0][0]

    def journal_position(self):
        """The Position of the last journal record ingested."""
        rows = self.con.execute('SELECT segment, "offset", seq FROM gexsrv_ingest').fetchall()
        return Position(*rows[0]) if rows else START

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
        return [pair for kind, writer in self.writers.items()
                for pair in writer.recent_keys(self.con, kind, since_ms)]

    def newest_keys(self):
        """The newest timestamp stored per (kind, ticker, endpoint)."""
        return {group: ts for kind, writer in self.writers.items()
                for group, ts in writer.newest(self.con, kind).items()}

    def quarantined(self):
        return self.read("SELECT count(*) FROM gexsrv_quarantine")[0][0]

    def prepare(self, records):
        """The Arrow tables of a batch (see prepare()), built by the caller's thread: ingest builds them on the
        event loop, so the store's thread then needs the GIL for DuckDB calls only."""
        return prepare(records, self.writers)

    def _check_writable(self):
        if self.con is None or self.state in ("read-only", "closed"):
            raise StorageError(f"database is {self.state}: {self.error}")

    def write(self, records, prepared=None, position=None):
        """Commit records with the journal position they reach (see write()); return, per record, True if stored,
        False if a duplicate, or the RecordRefused that refused it. When a record was refused, the position is
        left to the caller, which keeps the refused ones (Store.advance)."""
        self._check_writable()
        save = (lambda: self._save_position(position)) if position is not None else None
        try:
            outcomes, whole = write(self.con, records, self.writers, prepared, save,
                                    lambda: self.conflicted("ingest"))
        except (duckdb.Error, pa.ArrowException) as exc:
            self.state, self.error = "failing", str(exc)
            raise StorageError(str(exc)) from exc
        if not whole and position is not None and not any(isinstance(o, RecordRefused) for o in outcomes):
            self.advance(position)
        self.state, self.error = "writable", None
        return outcomes


def prepare(records, writers):
    """The Arrow tables of a batch, by kind, or None when a record cannot be converted (write() then finds it)."""
    try:
        return _tables(records, writers)
    except pa.ArrowException:
        return None


def _tables(records, writers):
    by_kind = {}
    for i, record in enumerate(records):
        by_kind.setdefault(record.kind, []).append(i)
    return {kind: (indexes, writers[kind].prepare([records[i] for i in indexes]))
            for kind, indexes in by_kind.items()}


# What a record's own values cause (a NOT NULL or unique column, a value out of range or of the wrong type): the
# same record fails again however often it is tried, while the database takes others.
REFUSALS = (duckdb.ConstraintException, duckdb.ConversionException, duckdb.OutOfRangeException,
            duckdb.TypeMismatchException, pa.ArrowException)


def write(con, records, writers, prepared=None, before_commit=None, on_conflict=None):
    """Commit records on con in one transaction (before_commit() runs inside it); return (outcomes, whole).

    The first try is plain INSERTs, the cheap path. If a key is already stored, the unique index refuses the
    batch; it is rolled back and written again with ON CONFLICT DO NOTHING, which finds whose it was. So it is
    when another transaction (a history import on its cursor, or live ingest) committed one of the keys since this
    one began: DuckDB refuses the COMMIT or the careful INSERT (conflict()); on_conflict() is told, and the retry
    finds the key stored, which wins. A batch that fails otherwise is retried record by record, so only a guilty
    record is refused (RecordRefused in its place; `whole` is then False and before_commit did not run). A record
    that fails alone for anything but its own values (REFUSALS: a full disk fails a commit as well) means the
    database is at fault: its error is raised and no record is refused, for the batch to be tried again. The
    records committed alone before it are then found stored by that retry.
    """
    try:
        return _write(con, records, writers, prepared or _tables(records, writers), before_commit, on_conflict), True
    except (duckdb.Error, pa.ArrowException) as exc:
        if (len(records) == 1 and not isinstance(exc, REFUSALS)) or isinstance(exc, duckdb.FatalException):
            raise  # a fatal error invalidates the database: only a fresh connection helps (gexsrv.supervisor)
        log.warning("a batch of %d failed (%s); writing its records one by one", len(records), exc)
    outcomes = []
    for record in records:
        outcome = _alone(con, record, writers, on_conflict)
        if isinstance(outcome, Exception) and not isinstance(outcome, REFUSALS):
            raise outcome
        outcomes.append(outcome)
    return [RecordRefused(str(o)) if isinstance(o, Exception) else o for o in outcomes], False


def conflict(exc, careful):
    """Where another transaction's commit of one of the batch's keys, since this one began, stopped it: "commit"
    (DuckDB refused the COMMIT, which ended the transaction), "insert" (the careful INSERT met the key: ON CONFLICT
    DO NOTHING skips only the keys this transaction sees), or None (not a conflict)."""
    if isinstance(exc, duckdb.TransactionException) and "constraint violation" in str(exc):
        return "commit"
    if careful and isinstance(exc, duckdb.ConstraintException) and "Duplicate key" in str(exc):
        return "insert"
    return None


def _alone(con, record, writers, on_conflict):
    try:
        return _write(con, [record], writers, _tables([record], writers), None, on_conflict)[0]
    except (duckdb.Error, pa.ArrowException) as exc:
        return exc


# Each conflict means another transaction stored one of the batch's keys, which the careful retry sees and skips:
# mostly one conflict per record at most. But a transaction begun just after another's COMMIT, while that commit is
# still being made visible, can meet its keys again (CI saw 3 conflicts for 2 records). So past one per record the
# retry waits a little, doubling from 2 ms (about 0.5 s in all), before the batch is given up as failing.
SPARE_CONFLICTS = 8


def _write(con, records, writers, prepared, before_commit, on_conflict):
    careful, conflicts = False, 0
    while True:
        try:
            return _commit(con, records, writers, prepared, before_commit, careful)
        except pa.ArrowException:
            # A writer that builds its Arrow tables inside the transaction (/uw) can fail there: end the
            # transaction, or every later begin() on the connection fails and nothing is ingested any more.
            _rollback(con)
            raise
        except duckdb.Error as exc:
            where = conflict(exc, careful)
            if where != "commit":  # a refused COMMIT ended the transaction itself
                _rollback(con)
            if where is None:
                if careful or not isinstance(exc, duckdb.ConstraintException):
                    raise
            elif conflicts < len(records) + SPARE_CONFLICTS:
                conflicts += 1
                log.info("a commit of %d records conflicted with another transaction's (%s); written again",
                         len(records), exc)
                if on_conflict is not None:
                    on_conflict()
                if conflicts > len(records):
                    time.sleep(0.001 * 2 ** (conflicts - len(records)))
            else:
                raise
            careful = True


def _commit(con, records, writers, prepared, before_commit, careful):
    stored = _insert(con, records, writers, prepared, careful)
    if before_commit is not None:
        before_commit()
    con.commit()
    return stored


def _insert(con, records, writers, prepared, careful):
    """Begin a transaction on con and insert the records in it; return, per record, whether it was inserted."""
    stored = [False] * len(records)
    con.begin()
    for kind, (indexes, tables) in prepared.items():
        group = [records[i] for i in indexes]
        for i in writers[kind].write(con, group, tables, careful):
            stored[indexes[i]] = True
    return stored


def stage(con, records, writers):
    """Insert records on con in a transaction left open, for the caller to commit or roll back; return, per
    record, whether it was inserted (False: its key was stored already). A history import inserts a chunk so while
    it still decodes the rest of its file, which must pass the decoding rule before anything of it is committed.
    None, the transaction rolled back, when the records cannot be inserted so: the caller writes them with write(),
    which finds out why."""
    prepared = prepare(records, writers)
    if prepared is None:
        return None
    for careful in (False, True):
        try:
            return _insert(con, records, writers, prepared, careful)
        except (duckdb.Error, pa.ArrowException) as exc:
            _rollback(con)
            if not isinstance(exc, duckdb.ConstraintException):  # not a key stored already: write() finds out
                return None
    return None


def _rollback(con):
    try:
        con.rollback()
    except duckdb.Error as exc:
        log.warning("rollback failed: %s", exc)
