"""How far ingest has read the journal: the one name for the triple the journal, ingest and the store pass around."""

from typing import NamedTuple


class Position(NamedTuple):
    """The journal segment (its first seq), the byte offset just past the last line ingested in it, and that
    line's seq. START is before the first record."""

    segment: int
    offset: int
    seq: int


START = Position(0, 0, 0)
