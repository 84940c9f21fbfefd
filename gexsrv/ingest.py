"""Periodic ingest: what the journal made durable goes into DuckDB in large batches, one transaction each.

Every ingest_interval_ms, or as soon as ingest_batch_records wait or an ?ack=ingested request waits (Ingester.due),
the records made durable since the last ingest are written in one transaction that also records the journal
position reached (table gexsrv_ingest), so each record is ingested once; after a crash the records past that
position are read back from the journal, and the unique keys make a repeat harmless. A position older than the
journal (a database restored from a backup, or started afresh) is caught up from the raw archive first; one that
the journal's records do not bear out (the journal was replaced) has the whole journal ingested again. Records
ingested by such a replay are settled as any others: ?ack=ingested waiters answered, observers told.

Records still held in memory are written from their decoded form, their Arrow tables built on the event loop (on
the ingest thread the same Python would queue for the GIL behind the loop); the rest (after a restart, or once the
in-memory budget is spent) are read back from the journal and decoded on the ingest thread. A batch that fails is
retried record by record (Store.write); a record refused for its own values goes to the quarantine
(gexsrv_quarantine, with its journal line and the error) and never blocks the records behind it.
The ingest thread is the store's own (Store.run), which owns the write connection.
"""

import asyncio
import collections
import logging
import statistics
import time

from msgspec import Struct
from tornado.ioloop import PeriodicCallback

from gexsrv import archive
from gexsrv.journalline import decode_line, seq_of
from gexsrv.position import START, Position
from gexsrv.store import RecordRefused, StorageError

log = logging.getLogger("gexsrv.ingest")


class Entry(Struct, gc=False):
    """A journaled record waiting for ingest; `record` is None once it was let go of to save memory."""

    seq: int
    segment: int  # first seq of its journal segment
    end: int  # byte offset just past its line
    received_ms: int
    size: int
    record: object = None


PROGRESS_EVERY_S = 5.0


def runs_of(found, upto, limit):
    """The (segment, end, line) records found, up to seq upto, in runs of consecutive seqs of at most limit: each
    run is one batch, its position that of its last record."""
    run = []
    for record in found:
        seq = seq_of(record[2])
        if seq > upto:
            break
        if run and (seq != seq_of(run[-1][2]) + 1 or len(run) == limit):
            yield run
            run = []
        run.append(record)
    if run:
        yield run


class Ingester:
    def __init__(self, store, journal, archive_root, rules, interval_ms, batch_records, max_records, memory_bytes,
                 on_settled=None):
        self.store = store
        self.journal = journal
        self.archive_root = archive_root
        self.rules = rules
        self.batch_records = batch_records
        self.max_records = max_records
        self.memory_bytes = memory_bytes
        self.timer = PeriodicCallback(self.tick, interval_ms)
        self.pending = collections.deque()  # Entries in seq order, journaled and not yet ingested
        self.held_bytes = 0  # body bytes of the pending entries still holding their record
        self.position = START  # ingested so far
        self.known = False  # whether position was read from the database
        self.archived = 0  # records re-ingested from the raw archive since start
        self.durable_seq = 0
        self.busy = False
        self.waiters = {}  # seq -> future of an ?ack=ingested request
        self.wanted_seq = 0  # the first seq another process' request waits for (wanted)
        self.observers = []  # called with every record stored (not duplicates) once, on the event loop
        self.stored = collections.Counter()
        self.recent = collections.deque(maxlen=1000)  # (seconds, records) of the latest ingests, for /health
        self.last_error = None
        self.failures = 0
        self.on_failure = lambda error: None  # told when the database took nothing (Supervisor.trouble)
        self.on_ingest = lambda seconds, records: None  # told of each ingest that committed (gexsrv.metrics)
        # Told each committed batch's (seq, record, outcome), in seq order, and [] once open() has read the position
        # (the engine tells the front where the database stands: gexsrv.engine_link).
        self.on_settled = on_settled

    # ---- start, stop ----

    async def open(self):
        """Read the recorded position, then ingest everything past it: what the raw archive holds past a restored
        or fresh database's position, then what the journal holds (the replay of a crash at start, before any
        write is answered, and how ingest resumes once the database is back)."""
        self.busy = True
        try:
            self.position = self._checked(await self.run(self.store.journal_position))
            self.known = True
            if self.on_settled:
                self.on_settled([])
            if self.position.seq < self.journal.first_seq() - 1:
                await self._catch_up_from_archive()
            self.durable_seq = self.journal.durable_seq
            replayed = 0
            while self.position.seq < self.durable_seq:
                replayed += await self._replay(self._from_journal, self.position.seq + 1, self.durable_seq)
        finally:
            self.busy = False
        self._forget_ingested()
        self.last_error = None
        if replayed:
            log.info("replayed %d journaled records into DuckDB", replayed)

    def _checked(self, position):
        """The database's position when the journal bears it out (or it is older than the journal: the archive
        holds what follows); else a position from which the whole journal is ingested again."""
        segment, offset, seq = position
        first = self.journal.first_seq()
        if seq < first or self.journal.seq_ending_at(segment, offset) == seq:
            return position
        log.warning("the database's journal position (seq %d, segment %d, offset %d) is not a record of this "
                    "journal (it was replaced or renumbered): ingesting the whole journal again from seq %d; "
                    "keys stored already are kept as they are", seq, segment, offset, first)
        return Position(0, 0, first - 1)

    async def _catch_up_from_archive(self):
        """Ingest what the raw archive holds between the position and the journal's first record, with a
        progress line every few seconds; records it no longer holds (retention) are named and passed over."""
        upto = self.journal.first_seq() - 1
        log.info("the database has ingested up to seq %d and the journal starts at seq %d: ingesting seqs %d to %d "
                 "again from the raw archive %s", self.position.seq, upto + 1, self.position.seq + 1, upto,
                 self.archive_root)
        runs = runs_of(archive.records_after(self.archive_root, self.position.seq), upto, self.max_records)
        said = time.monotonic()
        while self.position.seq < upto:
            taken = await self._replay(self._archived_batch, runs)
            if not taken:
                break
            self.archived += taken
            if time.monotonic() - said >= PROGRESS_EVERY_S:
                said = time.monotonic()
                log.info("from the raw archive: %d records ingested, at seq %d of %d", self.archived,
                         self.position.seq, upto)
        if self.position.seq < upto:
            log.warning("seqs %d to %d are in neither the raw archive nor the journal (expired or removed): "
                        "they cannot be ingested again", self.position.seq + 1, upto)
            self.position = Position(0, 0, upto)
        log.info("from the raw archive: %d records ingested; the journal follows", self.archived)

    def _archived_batch(self, runs):
        """Write the next run of consecutive archived records (runs_of); on the ingest thread."""
        run = next(runs, None)
        if run is None:
            return []
        first_seq = seq_of(run[0][2])
        if first_seq != self.position.seq + 1:
            log.warning("seqs %d to %d are not in the raw archive (expired or removed): they cannot be ingested "
                        "again", self.position.seq + 1, first_seq - 1)
        lines = [line for _, _, line in run]
        records = [decode_line(line, self.rules) for line in lines]
        segment, end, _ = run[-1]
        position = Position(segment, end, first_seq + len(run) - 1)
        return self._write(records, self.store.prepare(records), position, lines)

    async def _replay(self, read, *args):
        """One batch read back (from the journal or the archive) and written by read(*args) on the ingest thread,
        then settled; return how many records it took."""
        started = time.perf_counter()
        outcomes = await self.run(read, *args)
        return self._settle(outcomes, time.perf_counter() - started)

    def _forget_ingested(self):
        while self.pending and self.pending[0].seq <= self.position.seq:
            entry = self.pending.popleft()
            if entry.record is not None:
                self.held_bytes -= entry.size

    def start(self):
        self.journal.listeners.append(self.on_durable)
        self.timer.start()

    async def close(self, deadline):
        """Ingest everything journaled while the database takes it, until `deadline` (loop time); what is left
        stays in the journal and is ingested at the next start."""
        self.timer.stop()
        loop = asyncio.get_running_loop()
        while (self.position.seq < self.journal.durable_seq and self.store.state == "writable"
               and loop.time() < deadline):
            self.tick()
            await asyncio.sleep(0.005)
        while self.busy:
            await asyncio.sleep(0.005)

    def run(self, fn, *args):
        return self.store.run(fn, *args)

    # ---- on the event loop ----

    def add(self, seq, segment, end, received_ms, size, record):
        """A record just journaled; it is kept for ingest while the in-memory budget lasts."""
        held = self.held_bytes + size <= self.memory_bytes
        self.pending.append(Entry(seq, segment, end, received_ms, size, record if held else None))
        if held:
            self.held_bytes += size

    def on_durable(self, seq):
        self.durable_seq = seq
        if self.due() and not self.busy:
            asyncio.get_running_loop().call_soon(self.tick)

    def due(self):
        """Ingest now rather than at the next interval: enough records wait, or an ?ack=ingested request waits for
        a durable record (it would otherwise wait out the interval, which caps such a client at 1/interval)."""
        if self.durable_seq - self.position.seq >= self.batch_records:
            return True
        first_waiter = next(iter(self.waiters), None) or self.wanted_seq  # seqs are added in order
        return self.position.seq < first_waiter <= self.durable_seq

    def waiting(self):
        """Records journaled past the ingested position; before the database told it, past what the journal
        last recorded of it (INGESTED_SEQ) and what it archived (only ingested segments are)."""
        done = self.position.seq if self.known else max(self.journal.first_seq() - 1, self.journal.ingested_mark)
        return self.journal.next_seq - 1 - done

    def why_waiting(self):
        if self.store.state != "writable":
            return f"the database is {self.store.state}: {self.store.error}"
        return f"last error: {self.last_error}" if self.last_error else f"{self.waiting()} records wait for ingest"

    def wanted(self, seq):
        """Another process' request waits for seq (the front's ?ack=ingested: gexsrv.engine_link); 0 for none."""
        self.wanted_seq = seq

    def wait(self, seq):
        """A future resolving to True (stored), False (a duplicate) or raising RecordRefused, once ingested."""
        future = asyncio.get_running_loop().create_future()
        self.waiters[seq] = future
        return future

    def tick(self):
        if self.busy or self.durable_seq <= self.position.seq or self.store.state != "writable":
            return  # nothing to do, or journaled records wait for the database
        entries = self._take()
        self.busy = True
        started = time.perf_counter()
        if entries and all(e.record is not None for e in entries) and entries[0].seq == self.position.seq + 1:
            records = [e.record for e in entries]
            # Arrow built here, on the loop: on the ingest thread the same work would wait for the GIL.
            prepared = self.store.prepare(records)
            last = entries[-1]
            work = self.run(self._write, records, prepared, Position(last.segment, last.end, last.seq))
        else:
            work = self.run(self._from_journal, self.position.seq + 1, entries[-1].seq if entries else self.durable_seq)
        task = asyncio.ensure_future(work)
        task.add_done_callback(lambda done: self._done(done, entries, started))

    def _take(self):
        entries = []
        while self.pending and len(entries) < self.max_records and self.pending[0].seq <= self.durable_seq:
            entries.append(self.pending.popleft())
        return entries

    def _done(self, task, entries, started):
        self.busy = False
        error = task.exception()
        if error is not None:
            self._failed(entries, error)
            return
        self.last_error = None
        for entry in entries:
            if entry.record is not None:
                self.held_bytes -= entry.size
        self._settle(task.result(), time.perf_counter() - started)
        if self.due():
            self.tick()

    def _settle(self, outcomes, took=None):
        """What every ingest does once committed, a replay's too: count, tell the observers, answer the waiters;
        return how many records it took."""
        if took is not None:
            self.recent.append((took, len(outcomes)))
            self.on_ingest(took, len(outcomes))
        for seq, record, outcome in outcomes:
            self._count(record, outcome)
            future = self.waiters.pop(seq, None)
            if future is not None and not future.done():
                (future.set_exception if isinstance(outcome, Exception) else future.set_result)(outcome)
        if outcomes and self.on_settled:
            self.on_settled(outcomes)
        return len(outcomes)

    def _failed(self, entries, error):
        """The database took nothing: keep the entries; ingest resumes (open()) once the database is back."""
        self.pending.extendleft(reversed(entries))
        self.failures += 1
        self.last_error = str(error)
        log.error("ingest of %d records failed: %s", len(entries), error)
        self.on_failure(error)

    def _count(self, record, outcome):
        if isinstance(outcome, Exception):
            self.stored["quarantined"] += 1
        elif outcome:
            for observe in self.observers:
                observe(record)
            self.stored[record.kind] += 1
            if record.kind == "snapshot":
                self.stored["strike_rows"] += record.strike_rows
        else:
            self.stored["duplicates"] += 1

    # ---- on the ingest thread ----

    def _write(self, records, prepared, position, lines=None):
        """Commit records and the position; return (seq, record, outcome) for each."""
        outcomes = self.store.write(records, prepared, position)
        refused = [(i, o) for i, o in enumerate(outcomes) if isinstance(o, RecordRefused)]
        if refused:
            self.store.advance(position, [self._quarantined(records, position, i, o, lines) for i, o in refused])
        self.position = position
        first = position.seq - len(records) + 1
        return [(first + i, record, outcome) for i, (record, outcome) in enumerate(zip(records, outcomes))]

    def _quarantined(self, records, position, index, error, lines):
        seq = position.seq - len(records) + 1 + index
        line = lines[index] if lines else self._line(seq)
        return seq, line.decode(), str(error)

    def _line(self, seq):
        return next(line for _, _, line in self.journal.read(self.position, seq, self.max_records)
                    if seq_of(line) == seq)

    def _from_journal(self, first_seq, upto_seq):
        """Read records first_seq..upto_seq (at most max_records) back from the journal, decode and write them."""
        found = self.journal.read(self.position, upto_seq, self.max_records)
        if not found or seq_of(found[0][2]) != first_seq:
            raise StorageError(f"journal record {first_seq} is missing from {self.journal.folder}")
        lines = [line for _, _, line in found]
        records = [decode_line(line, self.rules) for line in lines]
        segment, end, _ = found[-1]
        position = Position(segment, end, first_seq + len(found) - 1)
        return self._write(records, self.store.prepare(records), position, lines)

    # ---- reports ----

    def report(self):
        recent = sorted(s for s, _ in self.recent)
        oldest = self.pending[0].received_ms if self.pending else None
        return {
            "position": self.position._asdict(),
            "records_waiting": self.waiting(),
            "lag_s": round(time.time() - oldest / 1000, 3) if oldest else 0.0,
            "held_mb": round(self.held_bytes / 2**20, 1),
            "last_error": self.last_error,
            "recent": {"ingests": len(recent),
                       "ms_p50": round(1000 * recent[len(recent) // 2], 2) if recent else None,
                       "ms_max": round(1000 * recent[-1], 2) if recent else None,
                       "records_mean": round(statistics.fmean(n for _, n in self.recent), 1) if recent else None},
            "stored_since_start": dict(self.stored),
        }
