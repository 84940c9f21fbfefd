"""The original's files for its dashboard (CONTRACT section 6), kept when `outputs_dir` is set (off by default):

- latest.json: the view of GET /api/latest (gexsrv.latest), replaced atomically (temp file, fsync, os.replace),
  at most once a second and only when the view changed;
- spot_series.jsonl: one {"timestamp", "spot", "ticker"} line per stored snapshot or majors payload that has a
  spot (a duplicate is not stored, so not repeated), timestamp in epoch seconds; appended once a second.

Observing a record only appends a small struct; the files are written by a periodic task in a worker thread, and once
more at shutdown, after ingest has stored its last batch.
"""

import asyncio
import logging
import os

import msgspec

from gexsrv.durable import replace_file
from gexsrv.latest import seconds
from gexsrv.streak import Streak

log = logging.getLogger("gexsrv.outputs")

LATEST = "latest.json"
SPOT_SERIES = "spot_series.jsonl"
SPOT_COLUMNS = {"snapshot": "spot_price", "majors": "spot"}
MAX_PENDING = 1_000_000  # spot lines kept while the folder cannot be written; the oldest are dropped beyond


class SpotLine(msgspec.Struct, gc=False):
    timestamp: int | float
    spot: float
    ticker: str


def append_lines(folder, lines):
    os.makedirs(folder, exist_ok=True)
    encoder = msgspec.json.Encoder()
    with open(os.path.join(folder, SPOT_SERIES), "ab") as f:
        f.write(b"".join(encoder.encode(line) + b"\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


class Outputs:
    def __init__(self, folder, latest, interval=1.0):
        self.folder = folder
        self.latest = latest
        self.interval = interval
        self.lines = []  # SpotLines not yet appended
        self.written_version = None  # the Latest.version that latest.json holds
        self.stopping = asyncio.Event()
        self.task = None
        self.dropped = 0
        self.streak = Streak("outputs")  # the writes failed in a row, for /health

    def observe(self, record):
        column = SPOT_COLUMNS.get(record.kind)
        spot = getattr(record.row, column) if column else None
        if spot is not None:
            self.lines.append(SpotLine(seconds(record.timestamp_ms), spot, record.ticker))

    def start(self):
        self.task = asyncio.create_task(self._loop())

    async def close(self):
        """Stop the periodic writes and write what is left; call it after ingest has stopped."""
        self.stopping.set()
        if self.task:
            await self.task
        await self.flush()

    def report(self):
        return {"dir": self.folder, "pending_lines": len(self.lines), "dropped_lines": self.dropped,
                "error": self.streak.error}

    async def _loop(self):
        while not self.stopping.is_set():
            try:
                await asyncio.wait_for(self.stopping.wait(), self.interval)
            except asyncio.TimeoutError:
                await self.flush()

    async def flush(self):
        # Both taken at once, so latest.json never shows a payload whose spot line is not appended yet.
        lines, self.lines = self.lines, []
        version = self.latest.version
        view = self.latest.encoded() if version != self.written_version else None
        if lines:
            try:
                await asyncio.to_thread(append_lines, self.folder, lines)
            except OSError as exc:
                self._failed(exc)
                self._keep(lines)
                return
        if view is not None:
            try:
                await asyncio.to_thread(replace_file, self.folder, LATEST, view)
            except OSError as exc:
                self._failed(exc)
                return
            self.written_version = version
        self.streak.succeeded()

    def _failed(self, exc):
        if self.streak.error is None:
            log.error("cannot write to %s: %s; retrying every %s s", self.folder, exc, self.interval)
        self.streak.failed(f"{type(exc).__name__}: {exc}")

    def _keep(self, lines):
        """Keep unwritten lines for the next try, up to MAX_PENDING."""
        self.lines = lines + self.lines
        excess = len(self.lines) - MAX_PENDING
        if excess > 0:
            del self.lines[:excess]
            self.dropped += excess
