"""A staged history file -> the Records POST /gex would make of its snapshots (gexsrv.decode, the one rule),
written in chunks.

The whole file is read first (read_records): every snapshot is decoded, and one the rule refuses fails the file
with nothing stored. Then the snapshots are written CHUNK at a time (write_records), one transaction each on a
cursor of the caller's, so a full-day import leaves room for live ingest between its transactions; a chunk a
concurrent write conflicts with is written again (gexsrv.store.write). Keys already stored are skipped (the first
stored wins), so an interrupted import resumes by running it again. Ticker and endpoint are the job's; source is
history:<job id>. What the rule left out of a snapshot (a bad strike row, an alias that disagrees) is counted and its
first examples kept, as a reply's `problems` would be.

File shapes: a JSON array of snapshots, {"data": [...]}, one snapshot object, or JSON Lines (one per line).
"""

import contextlib
import time

import msgspec
from msgspec import Raw

from gexsrv import store
from gexsrv.decode import Rules, check_utf8, decode_gex
from gexsrv.payloads import PayloadError

CHUNK = 2_000
NO_LOCK = contextlib.nullcontext()
EXAMPLES = 20


class InvalidFile(Exception):
    """The file is not a history file gexsrv can import; nothing of it was stored."""


class Wrapped(msgspec.Struct):
    data: list[Raw] | None = None


ARRAY = msgspec.json.Decoder(list[Raw])
WRAPPED = msgspec.json.Decoder(Wrapped)
ANY = msgspec.json.Decoder()


def snapshots(data):
    """The snapshots of a file's bytes, each as raw JSON."""
    head = data[:64].lstrip()
    if head.startswith(b"{") and _json_lines(data, min(len(data), 64) - len(head)):
        return [Raw(line) for line in data.splitlines() if line.strip()]
    try:
        if head.startswith(b"["):
            return ARRAY.decode(data)
        if not head.startswith(b"{"):
            raise InvalidFile("the file is neither JSON (an array or an object) nor JSON Lines")
        wrapped = WRAPPED.decode(data)
    except msgspec.DecodeError as exc:
        raise InvalidFile(f"invalid JSON: {exc}") from None
    return wrapped.data if wrapped.data is not None else [Raw(data)]


def _json_lines(data, start):
    """Whether data, from start, is JSON Lines: a first line that is a whole JSON value, and another object after
    it. (The first line of a pretty-printed object is not whole.)"""
    end = data.find(b"\n", start)
    if end == -1 or data.find(b"{", end) == -1:
        return False
    try:
        ANY.decode(data[start:end])
    except msgspec.DecodeError:
        return False
    return True


def decode_all(items, ticker, endpoint, source, rules):
    """Every snapshot as a Record (without its strike objects), and the problems found; InvalidFile if the rule
    refuses one."""
    received = round(time.time() * 1000)
    records, problems = [], []
    for i, raw in enumerate(items):
        try:
            record = decode_gex(raw, rules, received)
        except PayloadError as exc:
            raise InvalidFile(f"snapshot {i}: {exc.reason} - at `{exc.field}`") from None
        if record.kind != "snapshot":
            raise InvalidFile(f"snapshot {i}: a {record.kind} payload, not a snapshot")
        problems += [{**problem, "snapshot": i} for problem in record.problems]
        records.append(msgspec.structs.replace(record, ticker=ticker, endpoint=endpoint, source=source,
                                               problems=[]).held())
    return records, problems


def write_chunk(cursor, chunk, lock, on_conflict=None):
    """Commit one chunk, holding lock; return (snapshots stored, strike rows stored). A live ingest that commits
    one of its keys first makes the commit conflict: store.write writes it again, skipping that key, and tells
    on_conflict()."""
    with lock:
        outcomes, _ = store.write(cursor, chunk, on_conflict=on_conflict)
    stored = [r for r, outcome in zip(chunk, outcomes) if outcome is True]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    if refused:
        raise InvalidFile(f"the database refused {len(refused)} snapshots of this chunk: {refused[0]}")
    return len(stored), sum(r.strike_rows for r in stored)


def read_records(data, ticker, endpoint, source, rules=Rules()):
    """Every snapshot of a file's bytes as a Record, and the problems found; InvalidFile when the file cannot be
    imported whole (not UTF-8 or JSON, or a snapshot the rule refuses)."""
    try:
        check_utf8(data)
    except PayloadError as exc:
        raise InvalidFile(exc.reason) from None
    return decode_all(snapshots(data), ticker, endpoint, source, rules)


def write_records(cursor, records, progress=None, lock=NO_LOCK, committed=None, on_conflict=None):
    """Write the records CHUNK at a time; return (snapshots stored, strike rows stored). progress(snapshots, strike
    rows) and committed(the chunk's records, stored before or now) are called after each chunk's commit; lock is
    held around each transaction (the lake exporter's, gexsrv.lake); on_conflict() after each commit that
    conflicted with live ingest's (write_chunk)."""
    stored = rows = 0
    for start in range(0, len(records), CHUNK):
        chunk = records[start:start + CHUNK]
        chunk_stored, chunk_rows = write_chunk(cursor, chunk, lock, on_conflict)
        stored, rows = stored + chunk_stored, rows + chunk_rows
        if committed:
            committed(chunk)
        if progress:
            progress(stored, rows)
    return stored, rows


def summary(problems):
    """The problems as a job keeps them: their count and the first examples."""
    return {"count": len(problems), "examples": problems[:EXAMPLES]}


def import_file(cursor, path, ticker, endpoint, source, progress=None, rules=Rules(), lock=NO_LOCK):
    """Import one staged file; return (snapshots stored, strike rows stored, problems summary)."""
    with open(path, "rb") as f:
        data = f.read()
    records, problems = read_records(data, ticker, endpoint, source, rules)
    return *write_records(cursor, records, progress, lock), summary(problems)
