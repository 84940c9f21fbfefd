"""Decoding one /gex body (msgspec) into a Record, and an ingest's Records into the Arrow tables DuckDB reads."""
import pytest

from conftest import FLUSH, STRIKES, bodies, records
from gexsrv import batches
from gexsrv.decode import Rules, decode_gex
from gexsrv.records import SnapshotRow


def test_decode_snapshot(benchmark):
    body = bodies(1)[0]
    record = benchmark(decode_gex, body, Rules(), 0)
    assert (record.kind, record.ticker, record.endpoint) == ("snapshot", "SPX", "gex_zero")
    assert len(record.row.strikes) == STRIKES
    assert record.row.strikes[-1].priors is not None and len(record.row.strikes[-1].priors) == 5


@pytest.mark.parametrize("n", [1, FLUSH])
def test_snapshots_to_arrow(benchmark, n):
    batch = records(n)
    table = benchmark(batches.rows, batch, SnapshotRow)
    assert table.num_rows == n
    assert table.column("timestamp").to_pylist() == [r.timestamp_ms for r in batch]


@pytest.mark.parametrize("n", [1, FLUSH])
def test_strike_source_to_arrow(benchmark, n):
    batch = records(n)
    table = benchmark(batches.strike_source, batch)
    assert table.num_rows == n
    assert table.column("strikes").to_pylist()[-1] == batch[-1].strikes_json.decode()
