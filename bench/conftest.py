"""Shared makings of the hot-path benchmarks: decoded Records built from the load generator's request bodies.

The benchmarks run only when asked (`make bench`); setup.cfg's testpaths keeps them out of the plain test run.
"""
import itertools
import time

import msgspec

from gexsrv.decode import Rules, decode_gex
from snapshots import START, GexBodies

STRIKES = 300  # strike rows per snapshot, as the load scenarios send
FLUSH = 256  # snapshots in one ingest batch: 76,800 strike rows, under a DuckDB row group


def bodies(n, strikes=STRIKES, start=START):
    """n /gex request bodies, each of its own (ticker, timestamp)."""
    make = GexBodies(strikes, seed=1, start=start)
    return [make(i) for i in range(n)]


def records(n, strikes=STRIKES, start=START):
    """Decoded Records as ingest holds them: with their bodies, which DuckDB reads the strike rows from."""
    received_ms = int(time.time() * 1000)
    return [decode_gex(body, Rules(), received_ms).held() for body in bodies(n, strikes, start)]


class FreshKeys:
    """Copies of a pool of Records moved to timestamps never handed out before, so every batch is new data."""

    def __init__(self, pool):
        self.pool = pool
        self.shift = itertools.count(1)
        self.span_ms = max(r.timestamp_ms for r in pool) - min(r.timestamp_ms for r in pool) + 1000

    def __call__(self):
        offset = next(self.shift) * self.span_ms
        return [msgspec.structs.replace(r, timestamp_ms=r.timestamp_ms + offset) for r in self.pool]
