"""The raw archive: every journal segment, once closed and wholly ingested, is compressed (zstd) into
data/source/live/<YYYYMMDD>/<first seq>.ndjson.zst and then removed from the journal. It is the raw record of what
arrived, readable as it is: `read_ndjson('data/source/live/*/*.zst')` in DuckDB, or `zstdcat`; and the way
back for a restored or fresh database, which ingest fills again from it (records_after, Ingester.open).

The day is the UTC day the segment's first record arrived, by the server's clock (never a client's received_at,
which would file every record of the segment under its day, for retention to delete). A file is published with
os.link (never replacing one) after an fsync; only then is the journal segment removed. Archives older than
`retention_days` (0: keep forever) are deleted.
"""

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil

import msgspec
import zstandard
from tornado.ioloop import PeriodicCallback

from gexsrv.durable import SyncedWriter, link_new, shrink_away
from gexsrv.journal import SUFFIX, lines_of
from gexsrv.journalline import check_line, seq_of
from gexsrv.streak import Streak

log = logging.getLogger("gexsrv.archive")

# zstd level (archive_zstd_level's default): on the load generator's segments level 1 compresses as well as 3
# (ratio 2.26 against 2.27) at 2.5 times the speed (265 against 105 MB/s); docs/performance.md.
LEVEL = 1


class Unreadable(OSError):
    """An archive file that is not zstd (damaged, or put there by hand): an OSError, as a disk's would be."""


class FirstLine(msgspec.Struct):
    arrived: int | None = None  # the server's clock; lines of gexsrv before it have none


FIRST_LINE = msgspec.json.Decoder(FirstLine)


def archive_dir(data_dir):
    return os.path.join(data_dir, "source", "live")


def day_of(path):
    """YYYYMMDD (UTC) the first record of a journal segment arrived, by the server's clock. A segment an older
    gexsrv wrote has only `received`, which may be a client's received_at: its last write's day is taken
    instead, at most a segment's age later."""
    with open(path, "rb") as f:
        first = f.readline()
    arrived = FIRST_LINE.decode(first[:first.rindex(b',"crc":')] + b"}").arrived
    moment = arrived / 1000 if arrived is not None else os.path.getmtime(path)
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc).strftime("%Y%m%d")


def compress(path, root, level=LEVEL):
    """Compress one journal segment into the archive (it stays in the journal: Journal.retire); return the path.
    A compressor is made per segment: 25 us, against a quarter of a second for a 64 MiB segment."""
    folder = os.path.join(root, day_of(path))
    os.makedirs(folder, exist_ok=True)
    final = os.path.join(folder, os.path.basename(path) + ".zst")
    temp = final + ".tmp"
    with open(path, "rb") as src, open(temp, "wb") as dst:
        zstandard.ZstdCompressor(level=level).copy_stream(src, SyncedWriter(dst))
        dst.flush()
        os.fsync(dst.fileno())
    try:
        if not link_new(temp, final) and not _same(final, path):
            raise FileExistsError(f"{final} exists with other content; {path} stays in the journal")
    finally:
        os.unlink(temp)
    return final


def _same(archived, path):
    """Whether an archive already holds exactly this segment (a repeat after a crash between link and unlink)."""
    with open(archived, "rb") as f, open(path, "rb") as g, unzstd(archived):
        reader = zstandard.ZstdDecompressor().stream_reader(f)
        while True:
            a, b = reader.read(1 << 20), g.read(1 << 20)
            if a != b:
                return False
            if not a:
                return True


@contextlib.contextmanager
def unzstd(path):
    """Decompressing path: its zstd errors raised as Unreadable, naming it."""
    try:
        yield
    except zstandard.ZstdError as exc:
        raise Unreadable(f"{path} is not a readable zstd file ({exc})") from None


def expire(root, retention_days, today=None):
    """Delete archive day folders older than retention_days; return the days deleted."""
    if not retention_days or not os.path.isdir(root):
        return []
    today = today or dt.datetime.now(dt.timezone.utc).date()
    cutoff = (today - dt.timedelta(days=retention_days)).strftime("%Y%m%d")
    gone = sorted(day for day in os.listdir(root) if day.isdigit() and len(day) == 8 and day < cutoff)
    for day in gone:
        folder = os.path.join(root, day)
        for entry in os.scandir(folder):
            if entry.is_file(follow_symlinks=False):
                shrink_away(entry.path)
        shutil.rmtree(folder)
    return gone


def files(root):
    """[(first seq, path)] of every archived segment, oldest first."""
    found = []
    if os.path.isdir(root):
        for day in os.listdir(root):
            folder = os.path.join(root, day)
            for name in os.listdir(folder) if os.path.isdir(folder) else ():
                if name.endswith(SUFFIX + ".zst") and name[:-len(SUFFIX + ".zst")].isdigit():
                    found.append((int(name[:-len(SUFFIX + ".zst")]), os.path.join(folder, name)))
    return sorted(found)


def lines(path):
    """(offset just past the line, line) of every good record of an archived segment."""
    with open(path, "rb") as f, unzstd(path):
        data = zstandard.ZstdDecompressor().stream_reader(f).read()
    return [(offset + len(line), line) for offset, line in lines_of(data) if check_line(line) is not None]


def last_seq(root):
    """The last seq the archive holds (0 when empty), read from its newest segment."""
    found = files(root)
    if not found:
        return 0
    held = lines(found[-1][1])
    return seq_of(held[-1][1]) if held else found[-1][0] - 1


def records_after(root, seq):
    """(first seq of its segment, offset past it, line) of each archived record after seq, in seq order; the
    segments that hold only older records are not read."""
    found = files(root)
    for (first, path), following in zip(found, found[1:] + [(None, None)]):
        if following[0] is not None and following[0] - 1 <= seq:
            continue
        for end, line in lines(path):
            if seq_of(line) > seq:
                yield first, end, line


def size(root):
    """Bytes and files in the archive."""
    total = files = 0
    for folder, _, names in os.walk(root):
        for name in names:
            if name.endswith(SUFFIX + ".zst"):
                total += os.path.getsize(os.path.join(folder, name))
                files += 1
    return total, files


class Archiver:
    """Every few seconds, archives the segments ingest is done with, one at a time, off the event loop."""

    def __init__(self, journal, ingested_seq, root, retention_days, every_s=2.0, level=LEVEL):
        self.journal = journal
        self.ingested_seq = ingested_seq  # () -> the last seq ingested
        self.root = root
        self.retention_days = retention_days
        self.level = level
        self.timer = PeriodicCallback(self.kick, every_s * 1000)
        self.task = None
        self.bytes, self.files = 0, 0
        self.streak = Streak("archive")  # the archiving runs failed in a row, for /health

    async def start(self):
        self.bytes, self.files = await asyncio.to_thread(size, self.root)
        self.timer.start()

    def kick(self):
        """Close an idle, wholly ingested segment, and archive every segment that is done; the journal notes how
        far ingest got (Journal.mark_ingested)."""
        ingested_seq = self.ingested_seq()
        self.journal.seal_idle(ingested_seq)
        if self.task is None or self.task.done():
            done = self.journal.archivable(ingested_seq)
            if done or ingested_seq > self.journal.ingested_mark:
                self.task = asyncio.ensure_future(self._archive(done, ingested_seq))

    async def _archive(self, segments, ingested_seq):
        try:
            await asyncio.to_thread(self.journal.mark_ingested, ingested_seq)
            for segment, last_seq in segments:
                final = await asyncio.to_thread(compress, segment.path, self.root, self.level)
                await asyncio.to_thread(self.journal.retire, segment, last_seq)
                self.bytes += os.path.getsize(final)
                self.files += 1
            gone = await asyncio.to_thread(expire, self.root, self.retention_days)
            if gone:
                self.bytes, self.files = await asyncio.to_thread(size, self.root)
            self.streak.succeeded()
        except OSError as exc:  # the segment stays in the journal and is tried again at the next kick
            self.streak.failed(f"{type(exc).__name__}: {exc}")
            log.error("archiving journal segments failed: %s", exc)

    async def close(self):
        """Stop archiving; note how far ingest got for the next start (after ingest has closed)."""
        self.timer.stop()
        if self.task:
            await self.task
        await asyncio.to_thread(self.journal.mark_ingested, self.ingested_seq())

    def report(self):
        return {"bytes": self.bytes, "files": self.files, "error": self.streak.error}
