"""A staged history file -> the Records POST /gex would make of its snapshots (gexsrv.decode, the one rule),
written in chunks.

Every snapshot is decoded first, and one the rule refuses fails the file with nothing stored; only then is
anything committed. The decoding is the import's longest part (Python, holding the GIL), so DuckDB's part, as long
again, runs beside it (import_data): the file is decoded a piece at a time (gexsrv.history.pieces), and each CHUNK
of decoded snapshots is inserted on a cursor of its own while the next is decoded, its transaction left open
(store.stage). Once the whole file has passed, those transactions are committed one by one, so a full-day import
leaves room for live ingest between its commits; a chunk whose commit a concurrent write conflicts with, or that
could not be inserted so, is written again the ordinary way (write_chunk, gexsrv.store.write). Keys already stored
are skipped (the first stored wins), so an interrupted import resumes by running it again. Ticker and endpoint are
the job's; source is history:<job id>. What the rule left out of a snapshot (a bad strike row, an alias that
disagrees) is counted and its first examples kept, as a reply's `problems` would be.
"""

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import duckdb
import msgspec

from gexsrv import gexwrite, store
from gexsrv.decode import Rules, check_utf8, decode_gex
from gexsrv.history import pieces
from gexsrv.payloads import PayloadError

CHUNK = 2_000
NO_LOCK = contextlib.nullcontext()
EXAMPLES = 20


class InvalidFile(Exception):
    """The file is not a history file gexsrv can import; nothing of it was stored."""


class Hooks(NamedTuple):
    """Called from the import's threads: inserted(snapshots so far, not committed yet) after each chunk's insert;
    progress(snapshots, strike rows) and committed(the chunk's records, stored before or now) after each chunk's
    commit; committing(every record) once the file has passed the rule, before the first commit; on_conflict()
    after each commit that conflicted with live ingest's."""

    progress: object = None
    committing: object = None
    committed: object = None
    on_conflict: object = None
    inserted: object = None


class Imported(NamedTuple):
    snapshots: int  # stored
    strike_rows: int  # stored
    found: int  # the file's snapshots
    problems: list


def decode_all(items, ticker, endpoint, source, rules, received, first=0):
    """Every snapshot as a Record (without its strike objects), and the problems found; InvalidFile if the rule
    refuses one. items are the file's snapshots from its `first` on; received is the import's clock (epoch ms)."""
    records, problems = [], []
    for i, raw in enumerate(items, first):
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


def chunks(data, ticker, endpoint, source, rules, problems):
    """A file's snapshots as Records, CHUNK at a time, the problems found added to `problems`; InvalidFile at the
    first snapshot the rule refuses, or when the file is not UTF-8 or JSON."""
    try:
        check_utf8(data)
    except PayloadError as exc:
        raise InvalidFile(exc.reason) from None
    received, first, chunk = round(time.time() * 1000), 0, []
    for items in _pieces(data):
        records, found = decode_all(items, ticker, endpoint, source, rules, received, first)
        first += len(items)
        chunk += records
        problems += found
        while len(chunk) >= CHUNK:
            yield chunk[:CHUNK]
            chunk = chunk[CHUNK:]
    if chunk:
        yield chunk


def _pieces(data):
    try:
        yield from pieces.pieces(data)
    except pieces.NotJson as exc:
        raise InvalidFile(str(exc)) from None


def read_records(data, ticker, endpoint, source, rules=Rules()):
    """Every snapshot of a file's bytes as a Record, and the problems found; InvalidFile when the file cannot be
    imported whole (not UTF-8 or JSON, or a snapshot the rule refuses)."""
    problems = []
    return [record for chunk in chunks(data, ticker, endpoint, source, rules, problems) for record in chunk], problems


def _stored(chunk, inserted):
    """(snapshots, strike rows) of the chunk's records marked True."""
    stored = [r for r, outcome in zip(chunk, inserted) if outcome is True]
    return len(stored), sum(r.strike_rows for r in stored)


def write_chunk(cursor, chunk, lock, on_conflict=None):
    """Commit one chunk, holding lock; return (snapshots stored, strike rows stored). A live ingest that commits
    one of its keys first makes the commit conflict: store.write writes it again, skipping that key, and tells
    on_conflict()."""
    with lock:
        outcomes, _ = store.write(cursor, chunk, gexwrite.WRITERS, on_conflict=on_conflict)
    refused = [o for o in outcomes if isinstance(o, Exception)]
    if refused:
        raise InvalidFile(f"the database refused {len(refused)} snapshots of this chunk: {refused[0]}")
    return _stored(chunk, outcomes)


def _stage(cursor, chunk):
    """(a new cursor whose open transaction holds the chunk, what it inserted), or None when the chunk could not
    be inserted so: it is written the ordinary way at its commit."""
    try:
        con = cursor.cursor()
    except duckdb.Error:
        return None
    inserted = store.stage(con, chunk, gexwrite.WRITERS)
    if inserted is None:
        con.close()
        return None
    return con, inserted


def _roll_back(held):
    """End a staged chunk's open transaction, storing nothing of it (held: what _stage returned)."""
    if held is not None:
        held[0].close()


def _roll_back_all(futures):
    """Wait for the chunks being staged, and roll each back."""
    for future in futures:
        with contextlib.suppress(Exception):  # a chunk whose insert failed holds nothing
            _roll_back(future.result())


def _commit(cursor, chunk, staged, on_conflict):
    """Commit a staged chunk; return (snapshots stored, strike rows stored). A commit that conflicts with live
    ingest's (which committed one of its keys since) ends its transaction: the chunk is written again, skipping
    that key; so is a chunk that could not be staged."""
    if staged is not None:
        con, inserted = staged
        try:
            con.commit()
            return _stored(chunk, inserted)
        except duckdb.Error as exc:
            if store.conflict(exc, careful=False) == "commit" and on_conflict:
                on_conflict()
        finally:
            con.close()
    return write_chunk(cursor, chunk, NO_LOCK, on_conflict)


def import_data(cursor, data, ticker, endpoint, source, rules=Rules(), lock=NO_LOCK, hooks=Hooks()):
    """Import a file's bytes (see the module's docstring): each decoded chunk inserted while the next is decoded,
    all committed once the whole file has passed the rule; return Imported. lock is held from the first insert to
    the last commit (the lake exporter's, gexsrv.lake: a transaction still open holds strike rows' sequence
    numbers). InvalidFile, with nothing committed, when the file cannot be imported whole."""
    problems = []

    def stage(chunk, through):  # on the inserter's thread: through, the snapshots inserted once chunk is
        held = _stage(cursor, chunk)
        if hooks.inserted:
            hooks.inserted(through)
        return held

    with lock, ThreadPoolExecutor(1, thread_name_prefix="gexsrv-import") as inserter:
        staged, through = [], 0
        try:
            for chunk in chunks(data, ticker, endpoint, source, rules, problems):
                through += len(chunk)
                staged.append((chunk, inserter.submit(stage, chunk, through)))
            staged = [(chunk, future.result()) for chunk, future in staged]
        except BaseException:
            _roll_back_all(future for _chunk, future in staged)
            raise
        stored = rows = 0
        try:
            if hooks.committing:
                hooks.committing([record for chunk, _ in staged for record in chunk])
            for i, (chunk, held) in enumerate(staged):
                staged[i] = (chunk, None)  # its transaction ends here, however the commit goes
                chunk_stored, chunk_rows = _commit(cursor, chunk, held, hooks.on_conflict)
                stored, rows = stored + chunk_stored, rows + chunk_rows
                if hooks.committed:
                    hooks.committed(chunk)
                if hooks.progress:
                    hooks.progress(stored, rows)
        finally:
            for _chunk, held in staged:
                _roll_back(held)
    return Imported(stored, rows, sum(len(chunk) for chunk, _ in staged), problems)


def summary(problems):
    """The problems as a job keeps them: their count and the first examples."""
    return {"count": len(problems), "examples": problems[:EXAMPLES]}


def import_file(cursor, path, ticker, endpoint, source, rules=Rules(), lock=NO_LOCK, hooks=Hooks()):
    """Import one staged file; return (snapshots stored, strike rows stored, problems summary)."""
    with open(path, "rb") as f:
        data = f.read()
    imported = import_data(cursor, data, ticker, endpoint, source, rules, lock, hooks)
    return imported.snapshots, imported.strike_rows, summary(imported.problems)
