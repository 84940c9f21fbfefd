"""Staged history files: data/source/gexbot/{ticker}_{endpoint}_history.json, always plain (decompressed) JSON.

Names come from gexsrv.pathnames (encoded ticker and endpoint; joined by `~` where `_` would be ambiguous).

A file is written under a temporary name (`.*.part`), synced as it is written and at its end, then published with
os.link, which never replaces anything: if a different file already holds the name, it stays and the new one gets
a name with its hash.
Half-written files therefore never appear under a final name; `.part` leftovers are removed at start.

A Sink works on the thread that feeds it; the downloader, on the event loop, feeds it through a Feeder.
"""

import asyncio
import hashlib
import os
import zlib

from gexsrv.durable import SyncedWriter, link_new
from gexsrv.pathnames import staged_stem

GZIP_MAGIC = b"\x1f\x8b"
PART_SUFFIX = ".part"
BLOCK_BYTES = 1 << 20  # what a Feeder gathers before a thread writes it: one hand-over per MiB, not per packet


class TooLarge(Exception):
    """The decompressed content is over the size cap; permanent."""


class BadContent(Exception):
    """The content cannot be a history file (e.g. a truncated gzip stream); permanent."""


def source_dir(data_dir):
    return os.path.join(data_dir, "source", "gexbot")


def clean_leftovers(folder):
    """Remove temporary files a crash left behind; return their names."""
    if not os.path.isdir(folder):
        return []
    gone = [name for name in os.listdir(folder) if name.startswith(".") and name.endswith(PART_SUFFIX)]
    for name in gone:
        os.unlink(os.path.join(folder, name))
    return gone


class Sink:
    """Takes the raw bytes of a file as they arrive; writes them decompressed (gzip is detected by its magic
    bytes, not by the name) to a temporary file, counting the decompressed size against `max_bytes`."""

    def __init__(self, folder, tag, max_bytes):
        os.makedirs(folder, exist_ok=True)
        self.path = os.path.join(folder, f".{tag}{PART_SUFFIX}")
        self.file = open(self.path, "wb")
        self.writer = SyncedWriter(self.file)
        self.max_bytes = max_bytes
        self.size = 0  # decompressed bytes written
        self.received = 0  # raw bytes taken
        self.hash = hashlib.sha256()
        self.inflater = None
        self.head = b""  # the first bytes, held until the format is known

    def feed(self, chunk):
        self.received += len(chunk)
        if self.inflater is None and len(self.head) + len(chunk) < len(GZIP_MAGIC):
            self.head += chunk
            return
        if self.inflater is None:
            chunk, self.head = self.head + chunk, b""
            self.inflater = _Inflater() if chunk.startswith(GZIP_MAGIC) else _Plain()
        for piece in self.inflater.feed(chunk, self.max_bytes - self.size + 1):
            self._write(piece)

    def _write(self, data):
        self.size += len(data)
        if self.size > self.max_bytes:
            raise TooLarge(f"the file is over the {self.max_bytes}-byte limit (decompressed)")
        self.hash.update(data)
        self.writer.write(data)

    def finish(self):
        """Check the stream is complete, flush and fsync; return the sha256 of the decompressed content."""
        if self.head:
            self._write(self.head)
            self.head = b""
        if self.inflater is not None:
            self.inflater.finish()
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        return self.hash.hexdigest()

    def discard(self):
        self.file.close()
        if os.path.exists(self.path):
            os.unlink(self.path)


class Feeder:
    """Feeds a Sink from the event loop: what arrives is gathered into blocks, each written (inflated, hashed,
    size-capped) on a thread, as the final flush and fsync are, so the loop never waits on zlib or the disk."""

    def __init__(self, sink):
        self.sink = sink
        self.pending = []
        self.pending_bytes = 0

    async def feed(self, chunk):
        self.pending.append(chunk)
        self.pending_bytes += len(chunk)
        if self.pending_bytes >= BLOCK_BYTES:
            await self._write()

    async def finish(self):
        """The Sink's finish(), after what is still gathered: the sha256 of the decompressed content."""
        await self._write()
        return await asyncio.to_thread(self.sink.finish)

    async def _write(self):
        block = b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        if block:
            await asyncio.to_thread(self.sink.feed, block)


class _Plain:
    def feed(self, chunk, _limit):
        return [chunk]

    def finish(self):
        pass


class _Inflater:
    """Gzip, possibly several concatenated members, inflated at most `limit` bytes at a time (no zip bombs)."""

    def __init__(self):
        self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def feed(self, chunk, limit):
        out = []
        data = chunk
        while data:
            try:
                out.append(self.z.decompress(data, max(limit, 1)))
            except zlib.error as exc:
                raise BadContent(f"invalid gzip data: {exc}") from None
            limit -= len(out[-1])
            if limit <= 0:
                return out  # over the cap already: the caller raises TooLarge
            data = self.z.unconsumed_tail
            if self.z.eof and self.z.unused_data:
                data = self.z.unused_data
                self.z = zlib.decompressobj(16 + zlib.MAX_WBITS)
        return out

    def finish(self):
        if not self.z.eof:
            raise BadContent("the gzip stream is truncated")


def _sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(temp_path, folder, ticker, endpoint, sha256):
    """Give the finished temporary file its final name without replacing anything; return the final path.

    The usual name is taken unless a file with other content holds it; then the name carries the content hash.
    A file already holding the same content is reused.
    """
    stem = staged_stem(ticker, endpoint)
    names = [f"{stem}.json", f"{stem}.{sha256[:16]}.json"]
    try:
        for name in names:
            final = os.path.join(folder, name)
            if link_new(temp_path, final) or _sha256_of(final) == sha256:
                return final
        raise BadContent(f"{names[-1]} exists with other content than its name's hash says")
    finally:
        os.unlink(temp_path)
