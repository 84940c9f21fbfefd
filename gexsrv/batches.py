"""Decoded Records as Arrow tables, one per target table; column names match the DuckDB columns (INSERT BY NAME).

A row Struct's fields are its table's columns (gexsrv.records), so one function builds every kind's table.
"""

import msgspec
import pyarrow as pa

from gexsrv.records import MajorsRow, MaxChangeRow, SnapshotRow

F64 = pa.float64()
ARROW_TYPES = {float | None: F64, int | None: pa.int32(), str | None: pa.string()}


def _columns(row_type):
    """(name, Arrow type) of a row Struct's plain columns (a snapshot's strike rows are a table of their own)."""
    return [(f.name, ARROW_TYPES[f.type]) for f in msgspec.structs.fields(row_type) if f.type in ARROW_TYPES]


COLUMNS = {row_type: _columns(row_type) for row_type in (SnapshotRow, MajorsRow, MaxChangeRow)}


def warm_up():
    """pyarrow sets up its converters on first use (~60 ms here): pay that at start, not in the first request."""
    rows([], SnapshotRow)
    strike_source([])


def first_of_each_key(records):
    """Indexes of the first record of every key: a batch may carry the same payload twice."""
    first = {}
    for i, record in enumerate(records):
        first.setdefault(record.key, i)
    return sorted(first.values())


def rows(records, row_type):
    """The key columns, received_at and source, then every column of the records' rows."""
    columns = {
        "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
        "ticker": pa.array([r.ticker for r in records], pa.string()),
        "endpoint": pa.array([r.endpoint for r in records], pa.string()),
        "received_at": pa.array([r.received_ms for r in records], pa.int64()),
        "source": pa.array([r.source for r in records], pa.string()),
    }
    for name, arrow_type in COLUMNS[row_type]:
        columns[name] = pa.array([getattr(r.row, name) for r in records], arrow_type)
    return pa.table(columns)


def strike_source(records):
    """What DuckDB reads the snapshots' strike rows from (gexsrv.gexwrite): key, their JSON text, rows skipped."""
    return pa.table({
        "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
        "ticker": pa.array([r.ticker for r in records], pa.string()),
        "endpoint": pa.array([r.endpoint for r in records], pa.string()),
        "strikes": pa.array([r.strikes_json or None for r in records], pa.string()),
        "skip": pa.array([r.skipped for r in records], pa.list_(pa.int64())),
    })
