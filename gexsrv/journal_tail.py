"""The journal as a reader in another process sees it (the engine): read-only, from the segment files the front
writes, and never past the durable position it was last told, so a line still being written, or written but not
yet fsynced, is never ingested.

It offers the reading side of gexsrv.journal.Journal (first_seq, durable_seq, read, seq_ending_at, bytes_after)
with the same readers (journal.read_records, journal.seq_ending_at), so ingest reads either alike. The front alone
creates, rotates and removes segments: a segment older than the position asked for is never opened, since the
front may remove it once it is archived.
"""

import os

from gexsrv.journal import INGESTED_NAME, SUFFIX, read_records, read_seq, segment_name, seq_ending_at
from gexsrv.position import START


class Tail:
    def __init__(self, folder, durable=START):
        self.folder = folder
        self.durable_position = durable
        self.listeners = []  # called with the durable seq each time it moves on (Ingester.on_durable)
        # How far an ingest got, as the front's journal last recorded it: what waits while the database is away.
        self.ingested_mark = read_seq(folder, INGESTED_NAME) or 0

    @property
    def durable_seq(self):
        return self.durable_position.seq

    @property
    def next_seq(self):
        """The seq after the last one this reader may take, as Journal.next_seq is for what waits."""
        return self.durable_seq + 1

    def told(self, position):
        """The front fsynced the journal through position (a Position); an older one changes nothing."""
        if position.seq > self.durable_position.seq:
            self.durable_position = position
            for listener in self.listeners:
                listener(position.seq)

    def _firsts(self):
        return sorted(int(name[:-len(SUFFIX)]) for name in os.listdir(self.folder) if name.endswith(SUFFIX))

    def segments(self, since=0):
        """(first seq, path, durable size) of the segments from segment `since` (a first seq) to the durable one."""
        durable = self.durable_position
        out = []
        for first in self._firsts():
            if first > durable.segment:
                break
            if first >= since:
                path = os.path.join(self.folder, segment_name(first))
                out.append((first, path, durable.offset if first == durable.segment else os.path.getsize(path)))
        return out

    def first_seq(self):
        """The seq of the oldest record the journal's files hold (past the durable position when none)."""
        firsts = self._firsts()
        return firsts[0] if firsts else self.durable_seq + 1

    def read(self, position, upto_seq, limit):
        return read_records(self.segments(position.segment), position, min(upto_seq, self.durable_seq), limit)

    def seq_ending_at(self, first_seq, offset):
        found = [(path, size) for first, path, size in self.segments(first_seq) if first == first_seq]
        return seq_ending_at(*found[0], offset) if found else None

    def bytes_after(self, position):
        return sum(size - (position.offset if first == position.segment else 0)
                   for first, _, size in self.segments(position.segment) if first >= position.segment)
