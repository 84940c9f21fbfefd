"""Decoded Records as Arrow tables, one per target table; column names match the DuckDB columns (INSERT BY NAME)."""

import msgspec
import numpy as np
import pyarrow as pa

from gexsrv.payloads import net_gex_by_volume

F64 = pa.float64()

# gex_snapshots column -> Snapshot attribute, for the plain numeric ones
SNAPSHOT_NUMBERS = {
    "spot_price": "spot",
    "zero_gamma": "zero_gamma",
    "major_pos_vol": "major_pos_vol",
    "major_pos_oi": "major_pos_oi",
    "major_neg_vol": "major_neg_vol",
    "major_neg_oi": "major_neg_oi",
    "sum_gex_oi": "sum_gex_oi",
    "delta_risk_reversal": "delta_risk_reversal",
}
MAJORS_NUMBERS = ["spot", "zero_gamma", "mpos_vol", "mpos_oi", "mneg_vol", "mneg_oi", "net_gex_vol", "net_gex_oi"]
MAXCHANGE_PAIRS = ["current", "one", "five", "ten", "fifteen", "thirty"]


def warm_up():
    """pyarrow sets up its converters on first use (~60 ms here): pay that at start, not in the first request."""
    snapshots([], "live")
    strikes([])


def first_of_each_key(records):
    """Indexes of the first record of every key: a batch may carry the same payload twice."""
    first = {}
    for i, record in enumerate(records):
        first.setdefault(record.key, i)
    return sorted(first.values())


def _keys(records, source):
    return {
        "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
        "ticker": pa.array([r.ticker for r in records], pa.string()),
        "endpoint": pa.array([r.endpoint for r in records], pa.string()),
        "received_at": pa.array([r.received_ms for r in records], pa.int64()),
        "source": pa.array([source] * len(records), pa.string()),
    }


def _json_text(value):
    return None if value is None else msgspec.json.encode(value).decode()


def snapshots(records, source):
    bodies = [r.body for r in records]
    columns = _keys(records, source)
    for column, attr in SNAPSHOT_NUMBERS.items():
        columns[column] = pa.array([getattr(b, attr) for b in bodies], F64)
    by_volume = pa.array([net_gex_by_volume(b) for b in bodies], F64)
    columns["net_gex"] = by_volume
    columns["sum_gex_vol"] = by_volume
    columns["min_dte"] = pa.array([b.min_dte for b in bodies], pa.int32())
    columns["sec_min_dte"] = pa.array([b.sec_min_dte for b in bodies], pa.int32())
    columns["max_priors"] = pa.array([_json_text(b.max_priors) for b in bodies], pa.string())
    return pa.table(columns)


def strikes(records):
    """One row per strike of every snapshot; the key columns repeat each snapshot's."""
    counts = np.fromiter((len(r.body.strikes) for r in records), np.int64, len(records))
    owner = np.repeat(np.arange(len(records)), counts)
    keys = pa.table({
        "timestamp": pa.array([r.timestamp_ms for r in records], pa.int64()),
        "ticker": pa.array([r.ticker for r in records], pa.string()),
        "endpoint": pa.array([r.endpoint for r in records], pa.string()),
    }).take(owner)
    rows = [row for r in records for row in r.body.strikes]
    return keys.append_column("strike", pa.array([row.strike for row in rows], F64)) \
        .append_column("gamma", pa.array([row.gamma for row in rows], F64)) \
        .append_column("oi_gamma", pa.array([row.oi_gamma for row in rows], F64)) \
        .append_column("priors", pa.array([row.priors for row in rows], pa.list_(F64)))


def majors(records, source):
    columns = _keys(records, source)
    for attr in MAJORS_NUMBERS:
        columns[attr] = pa.array([getattr(r.body, attr) for r in records], F64)
    return pa.table(columns)


def maxchange(records, source):
    columns = _keys(records, source)
    for name in MAXCHANGE_PAIRS:
        pairs = [getattr(r.body, name) for r in records]
        columns[f"{name}_strike"] = pa.array([p and p.strike for p in pairs], F64)
        columns[f"{name}_value"] = pa.array([p and p.value for p in pairs], F64)
    return pa.table(columns)
