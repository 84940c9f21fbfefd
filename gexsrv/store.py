"""The DuckDB database: opening or adopting it, and writing one batch of Records in one transaction.

All methods but open() run on the writer thread (gexsrv.writer), which alone owns the write connection.
"""

import logging
import os
import threading

import duckdb

from gexsrv import batches, schema

log = logging.getLogger("gexsrv.store")

DB_FILE = "gex_data.db"


class StorageError(Exception):
    """The database could not take a write; the batch was rolled back and can be retried."""


class Store:
    def __init__(self, data_dir):
        self.data_dir = data_dir
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
            self.con = duckdb.connect(self.path)
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

    def pending_history_jobs(self):
        return self.read(
            "SELECT count(*) FROM gex_history_queue WHERE status NOT IN ('completed', 'failed')")[0][0]

    def write(self, records, source="live"):
        """Commit records in one transaction; return, per record, True if stored or False if a duplicate."""
        if self.con is None or self.state in ("read-only", "closed"):
            raise StorageError(f"database is {self.state}: {self.error}")
        by_kind = {}
        for i, record in enumerate(records):
            by_kind.setdefault(record.kind, []).append(i)
        stored = [False] * len(records)
        try:
            self.con.begin()
            for kind, indexes in by_kind.items():
                for i in WRITERS[kind](self.con, [records[i] for i in indexes], source):
                    stored[indexes[i]] = True
            self.con.commit()
        except duckdb.Error as exc:
            self._rollback()
            self.state, self.error = "failing", str(exc)
            raise StorageError(str(exc)) from exc
        self.state, self.error = "writable", None
        return stored

    def _rollback(self):
        try:
            self.con.rollback()
        except duckdb.Error:
            log.exception("rollback failed")


def _first_of_each_key(records):
    """Indexes of the first record of every key: a batch may carry the same payload twice."""
    first = {}
    for i, record in enumerate(records):
        first.setdefault(record.key, i)
    return sorted(first.values())


def _insert_new(con, table, arrow):
    """INSERT the rows whose key is not stored yet; return the keys that went in."""
    con.register("batch", arrow)
    try:
        rows = con.execute(
            f"INSERT INTO {table} BY NAME SELECT * FROM batch ON CONFLICT DO NOTHING "
            "RETURNING ticker, endpoint, timestamp"
        ).fetchall()
    finally:
        con.unregister("batch")
    return set(rows)


def _write_keyed(table, to_arrow, after=None):
    def write(con, records, source):
        first = _first_of_each_key(records)
        new_keys = _insert_new(con, table, to_arrow([records[i] for i in first], source))
        new = [i for i in first if (records[i].ticker, records[i].endpoint, records[i].timestamp_ms) in new_keys]
        if after and new:
            after(con, [records[i] for i in new])
        return new
    return write


def _insert_strikes(con, records):
    table = batches.strikes(records)
    if table.num_rows:
        con.register("batch", table)
        try:
            con.execute("INSERT INTO gex_strikes BY NAME SELECT * FROM batch")
        finally:
            con.unregister("batch")


WRITERS = {
    "snapshot": _write_keyed("gex_snapshots", batches.snapshots, after=_insert_strikes),
    "majors": _write_keyed("gex_majors", batches.majors),
    "maxchange": _write_keyed("gex_maxchange", batches.maxchange),
}
