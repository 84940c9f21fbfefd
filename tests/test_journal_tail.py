"""The journal as the engine reads it (gexsrv.journal_tail) over a journal the front's Journal wrote: the same
records as the Journal reads, never a line past the durable position it was told, and the same answers to where
ingest stands."""

import asyncio

from journalkit import append_all, opened, read_all

from gexsrv.journal_tail import Tail
from gexsrv.position import START, Position

BODIES = [b'{"i":%d,"pad":"%s"}' % (i, b"x" * 300) for i in range(40)]


def written(folder):
    """Journal BODIES into folder over several segments; (what the Journal reads back, its durable position)."""
    async def run():
        journal = await opened(folder, segment_bytes=2048)
        await append_all(journal, BODIES)
        found, position = read_all(journal), journal.durable_position
        await journal.close()
        return found, position

    return asyncio.run(run())


def test_the_tail_reads_what_the_journal_holds_up_to_its_durable_position(tmp_path):
    found, durable = written(tmp_path)
    assert len({segment for segment, _, _ in found}) > 3
    assert durable == Position(found[-1][0], found[-1][1], len(BODIES))
    tail = Tail(str(tmp_path))
    assert tail.read(START, len(BODIES), 1000) == []  # told nothing yet: nothing is known to be durable
    tail.told(durable)
    assert tail.read(START, len(BODIES), 1000) == found
    assert tail.read(START, 10, 1000) == found[:10]
    middle = Position(*found[9][:2], 10)
    assert tail.read(middle, len(BODIES), 5) == found[10:15]
    assert tail.first_seq() == 1


def test_lines_past_the_durable_position_are_not_read(tmp_path):
    found, _ = written(tmp_path)
    tail = Tail(str(tmp_path))
    tail.told(Position(*found[24][:2], 25))
    assert tail.read(START, len(BODIES), 1000) == found[:25]
    tail.told(Position(*found[5][:2], 6))  # an older position changes nothing
    assert tail.durable_seq == 25
    assert tail.bytes_after(START) == sum(len(line) for _, _, line in found[:25])


def test_the_tail_finds_which_seq_ends_at_a_position(tmp_path):
    found, durable = written(tmp_path)
    tail = Tail(str(tmp_path), durable)
    segment, end, _ = found[17]
    assert tail.seq_ending_at(segment, end) == 18
    assert tail.seq_ending_at(segment, end - 1) is None
    assert tail.seq_ending_at(10**9, 1) is None
