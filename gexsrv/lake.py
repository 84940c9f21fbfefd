"""The Parquet lake, every stored snapshot whole: data/parquet/gexbot/<ticker>/<endpoint>/<day>[.<range>].<kind>.parquet

A file's <kind> is the name of the table its rows copy without `gex_`: `strikes` (gex_strikes), `snapshots`
(gex_snapshots), `majors` (gex_majors), `maxchange` (gex_maxchange). So the name says where each row comes from,
every kind of a (ticker, endpoint) lies in one folder, and the kinds join on (ticker, endpoint, timestamp).
Every row gexsrv stores in these tables (live or imported) draws a number from gex_strikes_seq, one sequence for
all, so one range of numbers holds a snapshot and its strike rows together. Periodically, and at shutdown, the
exporter writes the rows numbered (lo, hi] to part files named after fixed windows of that range, so an export
that is repeated after a crash writes the very same names and finds them already published. The range is
recorded in gex_lake_exports as 'writing' before any file is written and 'done' after. A part name that is
taken must hold exactly the rows the export would write there (a repeat after a crash); otherwise the export
fails with PartConflict and the range stays 'writing', to be retried once the file is moved away.
Snapshot, majors and maxchange rows stored before they drew numbers (a lake of strikes only) are backfilled once
per kind, as parts named `<YYYYMMDD>.0-0.<kind>.parquet` (numbers start at 1, so no range is 0-0), recorded in
gex_lake_backfills as the ranges are; their rows are never numbered afterwards (nothing is rewritten).
Folder names are the ticker and endpoint encoded by gexsrv.pathnames, so different names never share a folder.
A finished day (before today, UTC) whose parts of a kind exist but whose day file of that kind does not is
compacted into the day file; the day file lists its parts in its Parquet metadata, and the parts are deleted
once it is published. Files are written under a `.tmp` name, fsynced and published with os.link, which never
replaces a file. See docs/parquet.md.
"""

import asyncio
import datetime as dt
import io
import json
import logging
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq

from gexsrv.durable import SyncedWriter, link_new
from gexsrv.lakekinds import BACKFILL, BACKFILLED, DAY, KINDS, PART, PARTS_KEY, lake_root
from gexsrv.lowpriority import one_thread
from gexsrv.pathnames import encode
from gexsrv.streak import Streak

log = logging.getLogger("gexsrv.lake")

WINDOW = 250_000  # numbered rows per part file at most, which bounds the exporter's memory (~300 MB a window)
# An export reads a minute of rows back from DuckDB and writes them with Polars on every core it finds: at 500
# snapshots/s it took both cores for about 10 s a minute, and /gex p99 rose to 100-200 ms meanwhile. Its thread
# (and the Polars threads it starts, which inherit its priority) gives way to the event loop and ingest.
EXPORT_NICENESS = 10
LOCK_POLL_S = 0.05  # how often the exporter looks whether a history import has let go of the lock
DAY_MS = 86_400_000
NUMBERED = "seq > ? AND seq <= ?"
UNNUMBERED = "seq IS NULL AND timestamp >= ? AND timestamp < ?"  # one UTC day of them


def polars():
    """polars, imported at the first export that has rows rather than with this module: its import costs a tenth of
    a CPU-second and starts threads (its allocator's, its spill cleaner), which a process that exports nothing, or
    one that forks (tests/forkserver.py preloads gexsrv), is better without."""
    import polars as pl

    return pl


def rows_sql(kind, where):
    """The rows of `kind` where `where` holds, with their UTC day, in a total order (equal repeats).
    Legacy rows (no endpoint) are not exported."""
    k = KINDS[kind]
    return (f"SELECT timestamp, ticker, endpoint, {k.columns}, strftime(epoch_ms(timestamp), '%Y%m%d') AS day "
            f"FROM {k.table} WHERE {where} AND endpoint IS NOT NULL ORDER BY ticker, endpoint, {k.order}, seq")


class PartConflict(Exception):
    """A part's name holds other rows than the export has for it; nothing is replaced."""


# ---- on the store's thread (Store.run) ----

def sequence_high(con):
    """The last number drawn; call it while no transaction inserting numbered rows is open."""
    rows = con.execute("SELECT last_value FROM duckdb_sequences() WHERE sequence_name = 'gex_strikes_seq'").fetchall()
    return (rows[0][0] or 0) if rows else 0


def unfinished_ranges(con):
    return con.execute("SELECT lo, hi FROM gex_lake_exports WHERE state = 'writing' ORDER BY lo").fetchall()


def plan_range(con, high):
    """Record the next range to export, (lo, high], as 'writing'; None when nothing is new."""
    lo = con.execute("SELECT coalesce(max(hi), 0) FROM gex_lake_exports").fetchone()[0]
    if high <= lo:
        return None
    con.execute("INSERT INTO gex_lake_exports (lo, hi, state) VALUES (?, ?, 'writing')", [lo, high])
    return lo, high


def finish_range(con, lo, files, rows):
    con.execute("UPDATE gex_lake_exports SET state = 'done', files = ?, rows = ?, finished_at = current_timestamp "
                "WHERE lo = ?", [files, rows, lo])


def plan_backfills(con):
    """The kinds whose unnumbered rows are not all in the lake yet, each recorded as 'writing' (a write only the
    first time: the exports that follow find every kind 'done')."""
    states = dict(con.execute("SELECT kind, state FROM gex_lake_backfills").fetchall())
    new = [[kind] for kind in BACKFILLED if kind not in states]
    if new:
        con.executemany("INSERT INTO gex_lake_backfills (kind, state) VALUES (?, 'writing')", new)
    return sorted(kind for kind in BACKFILLED if states.get(kind, "writing") == "writing")


def finish_backfill(con, kind, files, rows):
    con.execute("UPDATE gex_lake_backfills SET state = 'done', files = ?, rows = ?, "
                "finished_at = current_timestamp WHERE kind = ?", [files, rows, kind])


# ---- files, on a worker thread ----

def publish(frame, folder, name, metadata=None):
    """Write frame to folder/name unless that name exists; True if this call published it. The file is made in
    memory and written a MiB at a time, each synced (durable.SyncedWriter): a day file is tens of MB."""
    os.makedirs(folder, exist_ok=True)
    temp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
    content = io.BytesIO()
    frame.write_parquet(content, compression="zstd", metadata=metadata)
    with open(temp, "wb") as f:
        SyncedWriter(f).write(content.getbuffer())
        f.flush()
        os.fsync(f.fileno())
    try:
        return link_new(temp, os.path.join(folder, name))
    finally:
        os.unlink(temp)


def holds(path, frame):
    """Whether the Parquet file at path holds exactly frame: same columns, types, rows and order.

    Asked only when a part's name is taken (a repeated export), so reading the file back costs nothing in the
    usual case; the row count in its footer settles most differences without reading any data.
    """
    pl = polars()
    try:
        if pq.read_metadata(path).num_rows != frame.height:
            return False
        found = pl.read_parquet(path, glob=False)
    except (OSError, pa.ArrowException, pl.exceptions.PolarsError):
        return False  # not a Parquet file we can read: other content
    return found.schema == frame.schema and found.equals(frame)


def publish_parts(frame, root, kind, span, what):
    """Publish frame's rows of `kind` as the part files <day>.<span>.<kind>.parquet, a file per (ticker,
    endpoint, day); return how many. Raises PartConflict."""
    files = 0
    for (ticker, endpoint, day), part in frame.partition_by(["ticker", "endpoint", "day"], as_dict=True).items():
        folder = os.path.join(root, encode(ticker), encode(endpoint))
        name = f"{day}.{span}.{kind}.parquet"
        part = part.drop("day")
        if not publish(part, folder, name) and not holds(os.path.join(folder, name), part):
            raise PartConflict(f"{os.path.join(folder, name)} exists with other rows than the {part.height} "
                               f"{kind} rows of {ticker!r} {endpoint!r} {what} that belong there; it is kept, "
                               "and the export is retried until it is moved away")
        files += 1
    return files


def _frame(cursor, kind, where, params):
    return polars().from_arrow(cursor.sql(rows_sql(kind, where), params=params).to_arrow_table())


def export_range(cursor, root, lo, hi):
    """Write the rows numbered (lo, hi] as part files; return (files, {kind: rows}). Raises PartConflict."""
    files, rows = 0, dict.fromkeys(KINDS, 0)
    for start in range(lo - lo % WINDOW, hi, WINDOW):
        first, last = max(start, lo), min(start + WINDOW, hi)
        for kind in KINDS:
            frame = _frame(cursor, kind, NUMBERED, [first, last])
            files += publish_parts(frame, root, kind, f"{first + 1}-{last}", f"numbered {first + 1}..{last}")
            rows[kind] += frame.height
    return files, rows


def export_backfill(cursor, root, kind):
    """Write the rows of `kind` stored before rows drew numbers as <day>.0-0 parts, a UTC day at a time (which
    bounds memory as WINDOW does); return (files, rows). Raises PartConflict."""
    table = KINDS[kind].table
    days = cursor.sql(f"SELECT DISTINCT timestamp // {DAY_MS} FROM {table} "
                      "WHERE seq IS NULL AND endpoint IS NOT NULL ORDER BY 1").fetchall()
    files = rows = 0
    for (day,) in days:
        frame = _frame(cursor, kind, UNNUMBERED, [day * DAY_MS, (day + 1) * DAY_MS])
        files += publish_parts(frame, root, kind, BACKFILL, "stored before rows were numbered")
        rows += frame.height
    return files, rows


def _folders(root):
    for ticker in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        for endpoint in sorted(os.listdir(os.path.join(root, ticker))):
            yield os.path.join(root, ticker, endpoint)


def listed_parts(day_file):
    metadata = pq.read_metadata(day_file).metadata or {}
    return json.loads(metadata.get(PARTS_KEY.encode(), b"[]"))


def tidy(root):
    """At start: drop `.tmp` leftovers, and parts that a published day file already holds."""
    for folder in _folders(root):
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name.startswith(".") and name.endswith(".tmp"):
                os.unlink(path)
            elif DAY.match(name):
                for part in listed_parts(path):
                    if os.path.exists(os.path.join(folder, part)):
                        os.unlink(os.path.join(folder, part))


def compact(root, today):
    """Merge the parts of each day before `today` (YYYYMMDD) and kind that has no day file yet; return the
    (folder, day, kind) compacted."""
    done = []
    for folder in _folders(root):
        names = os.listdir(folder)
        parts = {}
        for name in names:
            found = PART.match(name)
            if found and found["day"] < today:
                parts.setdefault((found["day"], found["kind"]), []).append(name)
        for (day, kind), day_parts in sorted(parts.items()):
            if f"{day}.{kind}.parquet" in names:
                continue  # never replaced; later parts simply stay beside it
            day_parts.sort()
            paths = [os.path.join(folder, p) for p in day_parts]
            frame = polars().read_parquet(paths, glob=False).sort(KINDS[kind].order.split(", "))
            if publish(frame, folder, f"{day}.{kind}.parquet", {PARTS_KEY: json.dumps(day_parts)}):
                for part in day_parts:
                    os.unlink(os.path.join(folder, part))
                done.append((folder, day, kind))
    return done


def utc_today():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")


class Lake:
    """The periodic exporter: runs every `interval` seconds, when kicked (after an import), and at close."""

    def __init__(self, data_dir, store, interval):
        self.root = lake_root(data_dir)
        self.store = store
        self.interval = interval
        # held by a history import across its transactions: a sequence number drawn by a transaction still open
        # could fall below the bound read meanwhile, and its rows would never be exported
        self.lock = threading.Lock()
        self.exporting = asyncio.Lock()
        self.wake = asyncio.Event()
        self.task = None
        self.stopping = False
        self.exported = dict.fromkeys(KINDS, 0)  # rows of each kind exported since start
        self.last_export_at = None
        self.streak = Streak("lake")  # the exports failed in a row, for /health
        self.worker = one_thread("gexsrv-lake", EXPORT_NICENESS, "Parquet exports")

    async def start(self):
        await asyncio.to_thread(tidy, self.root)
        self.task = asyncio.create_task(self._loop())

    def kick(self):
        self.wake.set()

    async def stop(self):
        """Stop the periodic exports (before ingest stops), letting a running one finish: its worker
        thread cannot be interrupted, and a second export of the same range would only repeat its work."""
        self.stopping = True
        self.wake.set()
        if self.task:
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None

    async def close(self):
        """The last export; call it after ingest has stopped, so it sees every committed row."""
        await self.stop()
        try:
            await self.export(compaction=False)  # compaction waits for the next start: shutdown stays quick
        except Exception:
            log.exception("Parquet export failed at shutdown; its range is retried at the next start")
        await asyncio.to_thread(self.worker.shutdown)

    def report(self):
        return {"exported_rows": self.exported_rows, "exported": dict(self.exported),
                "last_export_at": self.last_export_at, "error": self.streak.error}

    @property
    def exported_rows(self):
        """The strike rows exported since start (what /health and /metrics counted before the other kinds)."""
        return self.exported["strikes"]

    async def _sequence_high(self):
        """sequence_high while no transaction inserting numbered rows is open: live ingest's run on the store's thread,
        and a history import holds the lock across all of its own, for seconds. So the lock is waited for here, on
        the loop, and not on the store's thread, which live ingest needs meanwhile."""
        while not self.lock.acquire(blocking=False):
            await asyncio.sleep(LOCK_POLL_S)
        try:
            return await self.store.use(sequence_high)
        finally:
            self.lock.release()

    async def _loop(self):
        while not self.stopping:
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except asyncio.TimeoutError:
                pass
            self.wake.clear()
            if self.stopping:
                return
            try:
                await self.export()
            except Exception:
                log.exception("Parquet export failed; retrying at the next interval")

    async def export(self, compaction=True):
        """Export every row committed so far, then compact finished days; a failure is kept for /health."""
        if self.store.state != "writable":
            return
        try:
            await self._export(compaction)
        except Exception as exc:
            self.streak.failed(f"{type(exc).__name__}: {exc}")
            raise
        self.streak.succeeded()

    async def _export(self, compaction):
        async with self.exporting:
            use = self.store.use
            for kind in await use(plan_backfills):
                files, rows = await self._in_thread(export_backfill, kind)
                await use(finish_backfill, kind, files, rows)
                self.exported[kind] += rows
                if rows:  # every new database's first export backfills nothing
                    log.info("backfilled the lake with the %s stored before rows were numbered: %d rows in %d "
                             "files", kind, rows, files)
            # a range a crash left unfinished, then what is new: both now, or a shutdown's export leaves the new
            # rows out of the lake until the next start
            ranges = await use(unfinished_ranges)
            planned = await use(plan_range, await self._sequence_high())
            ranges += [planned] if planned else []
            for lo, hi in ranges:
                files, rows = await self._in_thread(export_range, lo, hi)
                await use(finish_range, lo, files, sum(rows.values()))
                for kind, n in rows.items():
                    self.exported[kind] += n
                log.info("exported rows numbered %d..%d to Parquet: %d rows in %d files (%s)", lo + 1, hi,
                         sum(rows.values()), files, ", ".join(f"{n} {kind}" for kind, n in rows.items()))
            if compaction:
                await self._on_worker(compact, self.root, utc_today())
            self.last_export_at = dt.datetime.now(dt.timezone.utc).isoformat()

    async def _in_thread(self, export, *args):
        """export(cursor, root, *args) on the exporter's thread, with a read cursor of the write connection's."""
        cursor = await self.store.use(lambda con: con.cursor())
        try:
            return await self._on_worker(export, cursor, self.root, *args)
        finally:
            cursor.close()

    def _on_worker(self, fn, *args):
        return asyncio.get_running_loop().run_in_executor(self.worker, fn, *args)
