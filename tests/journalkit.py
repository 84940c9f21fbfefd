"""A Journal on real files for the tests that drive one directly (test_journal, test_journal_tail): open it,
append bodies and wait until they are durable, read everything back."""

import asyncio

from gexsrv.journal import Journal
from gexsrv.position import START
from helpers import TS as T0


def header(i):
    return {"kind": "snapshot", "path": "/gex", "received": T0 * 1000 + i}


async def opened(folder, segment_bytes=1 << 20, segment_seconds=300.0):
    journal = Journal(str(folder), segment_bytes, segment_seconds)
    journal.open()
    journal.start()
    return journal


async def append_all(journal, bodies):
    """Append every body, wait until all are durable; their seqs."""
    appended = [journal.append(header(i), body) for i, body in enumerate(bodies)]
    await asyncio.gather(*(future for *_, future in appended))
    return [seq for seq, *_ in appended]


def read_all(journal):
    return journal.read(START, journal.next_seq - 1, 1 << 20)
