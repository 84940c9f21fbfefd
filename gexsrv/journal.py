"""The write-ahead journal: every accepted request, appended as one NDJSON line and fsynced before its reply.

data/journal/<first seq>.ndjson holds one line per record, in the format of gexsrv.journalline (the header's
fields, the request body, a CRC-32 by which a record cut short by a crash is recognised). Lines are appended on
the event loop (one write each); a thread calls fdatasync, one call covering every line written since the
previous one (group fsync), and only then are the lines' futures resolved, so a reply waits for exactly one fsync
that covers it. Segments rotate by size and age.

At open, every segment is read back: a torn line at the very end of the last segment (a crash mid-append: never
acknowledged) is cut off; any other damaged line stops the start with JournalCorrupt naming segment and offset.

A seq is never handed out twice, whatever leaves the journal: data/journal/LAST_SEQ holds the highest seq known to
be used, written (fsynced, then renamed into place) at every open and before a segment is removed for the archive.
The next seq follows the highest of the segments' records, LAST_SEQ, and what the caller knows (the database's
position, the archive), so neither an emptied journal nor a database that cannot be read at start makes ingest
take new records for ones it stored long ago.
"""

import asyncio
import collections
import errno
import fcntl
import logging
import os
import threading
import time
from dataclasses import dataclass, field

from gexsrv.durable import fsync_dir, replace_file, shrink_away
from gexsrv.journalline import check_line, encode_line, seq_of
from gexsrv.position import START, Position

log = logging.getLogger("gexsrv.journal")

SUFFIX = ".ndjson"
RETIRING = ".retiring"  # the name of a segment being deleted (Journal.retire), which a crash may leave behind
LOCK_NAME = "LOCK"
MARK_NAME = "LAST_SEQ"
INGESTED_NAME = "INGESTED_SEQ"
# Descriptors held in reserve: a new segment's file and, for a moment, its folder's (to sync the new name).
RESERVE = 2
OUT_OF_DESCRIPTORS = {errno.EMFILE, errno.ENFILE}


class JournalCorrupt(Exception):
    """A damaged record that is not a torn tail: the journal cannot be trusted past it."""


class JournalBusy(Exception):
    """Another process holds the journal."""


class JournalError(Exception):
    """A record could not be appended or made durable; `unknown` says whether it may be on disk anyway."""

    def __init__(self, message, unknown=False):
        super().__init__(message)
        self.unknown = unknown


def segment_name(first_seq):
    return f"{first_seq:016d}{SUFFIX}"


def lines_of(data, base_offset=0):
    """(offset, line) of every complete line in data; a last line without its newline is left out."""
    offset = 0
    while True:
        end = data.find(b"\n", offset)
        if end < 0:
            return
        yield base_offset + offset, data[offset:end + 1]
        offset = end + 1


@dataclass
class Segment:
    path: str
    first_seq: int
    fd: int = -1
    size: int = 0  # bytes of whole, good lines
    created: float = field(default_factory=time.monotonic)
    dirty: bool = False  # written since its last fdatasync
    closing: bool = False  # rotated away: closed once synced
    dir_synced: bool = False
    broken: bool = False  # a write failed: the file may hold a part of a line past `size`


def scan_segment(path, is_last, after=None):
    """(last seq, good size) of a segment whose first record follows seq `after` (None: any); cuts a torn tail
    of the last segment; JournalCorrupt otherwise."""
    with open(path, "rb") as f:
        data = f.read()
    last_seq, good = after, 0
    for offset, line in lines_of(data):
        body = check_line(line)
        if body is None:
            if is_last and offset + len(line) == len(data):
                break
            raise JournalCorrupt(f"damaged journal record in {path} at byte offset {offset}: its checksum "
                                 "does not match; move the segment aside and restore it, or cut it at that offset "
                                 "knowingly (records after it would be lost)")
        seq = seq_of(line)
        if last_seq is not None and seq != last_seq + 1:
            raise JournalCorrupt(f"journal record {seq} in {path} at byte offset {offset} follows {last_seq}")
        last_seq, good = seq, offset + len(line)
    if good < len(data):
        if not is_last:
            raise JournalCorrupt(f"journal segment {path} ends with {len(data) - good} bytes of a torn record, "
                                 "but it is not the last segment")
        log.warning("cutting a torn record (%d bytes, never acknowledged) off the end of %s", len(data) - good, path)
        with open(path, "r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return last_seq, good


def read_records(segments, position, upto_seq, limit):
    """[(segment, offset just past the line, line)] of the records after position (a Position), up to and including
    upto_seq, at most limit of them; segments are (first seq, path, size) in order, each read up to its size (the
    bytes known to hold whole lines)."""
    out = []
    for first_seq, path, size in segments:
        if first_seq < position.segment:
            continue
        start = position.offset if first_seq == position.segment else 0
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(max(size - start, 0))
        for offset, line in lines_of(data, start):
            if seq_of(line) > upto_seq or len(out) == limit:
                return out
            out.append((first_seq, offset + len(line), line))
    return out


def seq_ending_at(path, size, offset):
    """The seq of the good record whose line ends at offset in the segment at path (size bytes known whole);
    None if there is none."""
    if not 0 < offset <= size:
        return None
    with open(path, "rb") as f:
        window = 4096
        while True:
            start = max(offset - window, 0)
            f.seek(start)
            data = f.read(offset - start)
            begin = data.rfind(b"\n", 0, len(data) - 1)
            if begin >= 0 or start == 0:
                line = data[begin + 1:]
                break
            window *= 4
    return seq_of(line) if line.endswith(b"\n") and check_line(line) is not None else None


def read_seq(folder, name):
    """The seq a bookkeeping file (LAST_SEQ, INGESTED_SEQ) holds; None without one."""
    path = os.path.join(folder, name)
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return int(text)
    except ValueError:
        raise JournalCorrupt(f"{path} does not hold a seq ({text[:40]!r}); restore it, or delete it: the journal "
                             "then counts from its segments, the database and the archive") from None


class Journal:
    def __init__(self, folder, segment_bytes, segment_seconds):
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.segment_seconds = segment_seconds
        self.segments = []  # unarchived, oldest first; the last one takes appends
        self.next_seq = 1
        self.durable_seq = 0
        self.waiters = collections.deque()  # (seq, future), in seq order
        self.listeners = []  # called with the durable seq after each fsync, on the loop
        self.lock = threading.Condition()
        self.written_seq = 0
        # Where the last written and the last fsynced line end: how far a reader in another process may read
        # (gexsrv.journal_tail).
        self.written_position = self.durable_position = START
        self.thread = None
        self.loop = None
        self.stopping = False
        self.error = None
        self.refusing = None  # why the last append failed (a full disk), until one succeeds again
        self.lock_file = None
        self.marked = 0  # what LAST_SEQ holds
        self.ingested_mark = 0  # what INGESTED_SEQ holds: a seq ingest had reached, for when the database is away
        self.mark_lock = threading.Lock()
        self.bytes_written = 0
        self.fsyncs = 0
        # Held so that a process out of descriptors (a flood of connections) can still open a segment (_rotate).
        self.reserve = []
        self._take_reserve()

    # ---- start and stop ----

    def open(self, known_seq=0, archived_seq=lambda: 0):
        """Take the journal for this process, read every segment back (see the module doc), and continue after the
        highest seq used: the segments' last record, LAST_SEQ, known_seq (the database's position, when it could
        be read) or, in a journal folder without LAST_SEQ (made before it existed, or deleted), archived_seq()."""
        os.makedirs(self.folder, exist_ok=True)
        self._lock_folder()
        try:
            self._read_back(known_seq, archived_seq)
        except BaseException:
            self.lock_file.close()
            raise

    def _read_back(self, known_seq, archived_seq):
        for name in os.listdir(self.folder):
            if name.endswith(SUFFIX + RETIRING):
                shrink_away(os.path.join(self.folder, name))
        names = sorted(n for n in os.listdir(self.folder) if n.endswith(SUFFIX))
        mark = read_seq(self.folder, MARK_NAME)
        self.marked = mark or 0
        self.ingested_mark = read_seq(self.folder, INGESTED_NAME) or 0
        used = max(known_seq, mark if mark is not None else archived_seq())
        last = None
        for i, name in enumerate(names):
            path = os.path.join(self.folder, name)
            last, size = scan_segment(path, is_last=i == len(names) - 1, after=last)
            if not size:  # its first record was torn: the next append makes this segment again
                used = max(used, int(name[:-len(SUFFIX)]) - 1)
                os.unlink(path)
                continue
            self.segments.append(Segment(path, int(name[:-len(SUFFIX)]), size=size, closing=True, dir_synced=True))
        if last is not None and used > last:
            # Seqs past the records held were used (their segments are gone, or the database's numbering is
            # another journal's): going on from `used` would leave a gap the next open takes for a lost segment.
            # Ingest checks its position against the records themselves (Ingester.open) and re-ingests on doubt.
            log.warning("the journal ends at seq %d but seqs up to %d were used; numbering goes on from %d",
                        last, used, last + 1)
        self.next_seq = (used if last is None else last) + 1
        self.durable_seq = self.written_seq = self.next_seq - 1
        last_segment = self.segments[-1] if self.segments else None
        self.durable_position = self.written_position = Position(
            last_segment.first_seq if last_segment else 0, last_segment.size if last_segment else 0, self.durable_seq)
        self.mark_used(self.next_seq - 1)

    def mark_ingested(self, seq):
        """Record that ingest reached seq, so that a start without the database knows what waits; any thread."""
        if seq > self.ingested_mark:
            replace_file(self.folder, INGESTED_NAME, f"{seq}\n".encode())
            self.ingested_mark = seq

    def mark_used(self, seq):
        """Record durably that seqs up to seq were handed out: before the segments holding them leave the journal.
        Any thread."""
        with self.mark_lock:
            if seq > self.marked:
                replace_file(self.folder, MARK_NAME, f"{seq}\n".encode())
                self.marked = seq

    def ingested_position(self):
        """A position no further on than ingest is known to be, from INGESTED_SEQ and the segments held (for the
        front before the engine says where it stands): the oldest segment's start with the highest seq known."""
        first = self.first_seq()
        return Position(first if self.segments else 0, 0, max(self.ingested_mark, first - 1))

    def first_seq(self):
        """The seq of the oldest record still in the journal (next_seq when it holds none)."""
        segments = self.segments
        return segments[0].first_seq if segments else self.next_seq

    def _lock_folder(self):
        """One process appends to a journal: a second server on the same data dir would interleave lines."""
        self.lock_file = open(os.path.join(self.folder, LOCK_NAME), "a+")
        try:
            fcntl.flock(self.lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.lock_file.seek(0)
            holder = self.lock_file.read().strip() or "unknown"
            self.lock_file.close()
            raise JournalBusy(f"the journal {self.folder} is in use by another gexsrv (pid {holder}); two servers "
                              "cannot share a data dir: stop the other one, or give this one its own --data-dir")
        self.lock_file.truncate(0)
        self.lock_file.write(str(os.getpid()))
        self.lock_file.flush()

    def start(self):
        self.loop = asyncio.get_running_loop()
        self.thread = threading.Thread(target=self._sync_loop, name="gexsrv-journal-fsync", daemon=True)
        self.thread.start()

    async def close(self):
        """Make every appended line durable, then stop the fsync thread and close the files."""
        with self.lock:
            self.stopping = True
            self.lock.notify()
        if self.thread:
            await asyncio.to_thread(self.thread.join)
        for segment in self.segments:
            if segment.fd >= 0:
                os.close(segment.fd)
                segment.fd = -1
        if self.lock_file:
            self.lock_file.close()
        while self.reserve:
            os.close(self.reserve.pop())

    # ---- appending, on the event loop ----

    def append(self, header, body):
        """Append one record; return (seq, segment, end offset, future resolving once it is on disk).
        JournalError if it cannot be written (nothing of it stays: the file is cut back to its last good line)."""
        if self.error:
            raise JournalError(f"the journal is failing: {self.error}")
        seq = self.next_seq
        parts = encode_line(header, body, seq)
        try:
            segment = self._segment_for_append()
            size = self._write(segment, parts)
        except JournalError as exc:
            self.refusing = str(exc)
            raise
        self.refusing = None
        self.next_seq += 1
        self.bytes_written += size
        future = self.loop.create_future()
        self.waiters.append((seq, future))
        with self.lock:
            segment.dirty = True
            self.written_seq = seq
            self.written_position = Position(segment.first_seq, segment.size, seq)
            self.lock.notify()
        return seq, segment.first_seq, segment.size, future

    def _segment_for_append(self):
        current = self.segments[-1] if self.segments else None
        if current is None or current.closing or current.size >= self.segment_bytes or (
                time.monotonic() - current.created >= self.segment_seconds and current.size):
            current = self._rotate()
        return current

    def _rotate(self):
        path = os.path.join(self.folder, segment_name(self.next_seq))
        try:
            fd, dir_synced = self._create(path)
        except OSError as exc:
            raise JournalError(f"cannot create {path}: {exc.strerror or exc}") from exc
        segment = Segment(path, self.next_seq, fd=fd, size=os.fstat(fd).st_size, dir_synced=dir_synced)
        with self.lock:
            for older in self.segments:
                older.closing = True
            self.segments.append(segment)
        return segment

    def _create(self, path):
        """(fd, whether its name is synced already) of a new segment. Out of descriptors, the reserve is given up
        for the file and for syncing its folder now (the fsync thread would need one more), then taken again."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:
            return os.open(path, flags, 0o644), False
        except OSError as exc:
            if exc.errno not in OUT_OF_DESCRIPTORS or not self.reserve:
                raise
        log.warning("out of file descriptors: the journal uses its reserve to open %s", path)
        while self.reserve:
            os.close(self.reserve.pop())
        try:
            fd = os.open(path, flags, 0o644)
            try:
                fsync_dir(self.folder)
            except OSError:
                os.close(fd)
                raise
            return fd, True
        finally:
            self._take_reserve()

    def _take_reserve(self):
        while len(self.reserve) < RESERVE:
            try:
                self.reserve.append(os.open(os.devnull, os.O_RDONLY))
            except OSError:  # none left now: taken again at the next new segment
                return

    def _write(self, segment, parts):
        size = sum(map(len, parts))
        try:
            if segment.broken:
                os.ftruncate(segment.fd, segment.size)  # the rest of a write that failed earlier
                segment.broken = False
            written = os.writev(segment.fd, parts)
            if written < size:  # rare: finish what one writev did not take
                line = b"".join(parts)[written:]
                while line:
                    line = line[os.write(segment.fd, line):]
        except OSError as exc:
            segment.broken = True
            self._cut_back(segment)
            raise JournalError(f"cannot append to {segment.path}: {exc.strerror or exc}") from exc
        segment.size += size
        return size

    def _cut_back(self, segment):
        try:
            os.ftruncate(segment.fd, segment.size)
            segment.broken = False
        except OSError as exc:  # tried again before the next write; a restart cuts it as a torn tail
            log.error("cannot cut %s back to %d bytes after a failed write: %s", segment.path, segment.size, exc)

    # ---- group fsync, on its own thread ----

    def _sync_loop(self):
        while True:
            with self.lock:
                while self.written_seq == self.durable_seq and not self.stopping:
                    self._close_rotated()  # a segment sealed while idle (seal_idle)
                    self.lock.wait(1.0)
                if self.written_seq == self.durable_seq and self.stopping:
                    self._close_rotated()
                    return
                target, position = self.written_seq, self.written_position
                dirty = [s for s in self.segments if s.dirty or not s.dir_synced]
                for segment in dirty:
                    segment.dirty = False
            try:
                for segment in dirty:
                    if not segment.dir_synced:
                        fsync_dir(self.folder)
                        segment.dir_synced = True
                    os.fdatasync(segment.fd)
                self.fsyncs += 1
            except OSError as exc:
                self.loop.call_soon_threadsafe(self._failed, target, exc)
                return
            with self.lock:
                self._close_rotated()
            self.durable_position = position
            self.durable_seq = target
            self.loop.call_soon_threadsafe(self._durable, target)

    def _close_rotated(self):
        """Close the files of rotated segments with nothing left to sync; call it holding the lock."""
        for segment in self.segments:
            if segment.closing and not segment.dirty and segment.fd >= 0:
                os.close(segment.fd)
                segment.fd = -1

    def _durable(self, seq):
        while self.waiters and self.waiters[0][0] <= seq:
            _, future = self.waiters.popleft()
            if not future.done():
                future.set_result(True)
        for listener in self.listeners:
            listener(seq)

    def _failed(self, seq, exc):
        """fdatasync failed: whether the lines since the last good one reached the disk is unknown."""
        self.error = f"fdatasync failed: {exc}"
        log.error("journal %s; appends are refused until the server restarts", self.error)
        error = JournalError(f"the journal could not confirm the write ({exc}); it may or may not be stored, "
                             "and sending it again is safe", unknown=True)
        for _, future in self.waiters:
            if not future.done():
                future.set_exception(error)
        self.waiters.clear()

    # ---- reading, for ingest and replay ----

    def read(self, position, upto_seq, limit):
        """[(segment, offset just past the line, line)] of the records after position (a Position),
        up to and including upto_seq, at most limit of them."""
        return read_records([(s.first_seq, s.path, s.size) for s in list(self.segments)], position, upto_seq, limit)

    def bytes_after(self, position):
        """Journal bytes past position (a Position): what ingest has yet to take."""
        return sum(s.size - (position.offset if s.first_seq == position.segment else 0)
                   for s in list(self.segments) if s.first_seq >= position.segment)

    # ---- what the archive takes (gexsrv.archive), on the event loop ----

    def archivable(self, ingested_seq):
        """(segment, its last seq) of the closed segments whose every record is ingested; never the newest."""
        with self.lock:
            done = []
            for segment, following in zip(self.segments, self.segments[1:]):
                if following.first_seq - 1 > ingested_seq or not segment.closing or segment.fd >= 0:
                    break
                done.append((segment, following.first_seq - 1))
        return done

    def seal_idle(self, ingested_seq):
        """Close the current segment once it is old enough and wholly ingested, so it can be archived."""
        current = self.segments[-1] if self.segments else None
        if (current and not current.closing and current.size and self.next_seq - 1 <= ingested_seq
                and time.monotonic() - current.created >= self.segment_seconds):
            with self.lock:
                current.closing = True
                self.lock.notify()

    def retire(self, segment, last_seq):
        """Remove an archived segment holding records up to last_seq from the journal; on a worker thread. It leaves
        the journal by its name at once, and its blocks a few MiB at a time (shrink_away)."""
        self.mark_used(last_seq)
        retiring = segment.path + RETIRING
        os.rename(segment.path, retiring)
        fsync_dir(self.folder)
        with self.lock:
            self.segments.remove(segment)
        shrink_away(retiring)

    def seq_ending_at(self, first_seq, offset):
        """The seq of the good record whose line ends at offset in segment first_seq; None if there is none."""
        segment = next((s for s in list(self.segments) if s.first_seq == first_seq), None)
        return None if segment is None else seq_ending_at(segment.path, segment.size, offset)

    def report(self):
        return {
            "folder": self.folder, "segments": len(self.segments), "next_seq": self.next_seq, "durable_seq": self.durable_seq,
            "bytes_written": self.bytes_written, "fsyncs": self.fsyncs, "error": self.error,
            "refusing": self.refusing,
        }
