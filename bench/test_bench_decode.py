"""Decoding one /gex body (msgspec) into a Record, its strike rows' check, and an ingest's Records into the Arrow
tables DuckDB reads."""
import msgspec
import pytest

from conftest import FLUSH, STRIKES, bodies, records
from gexsrv import batches
from gexsrv.decode import STRIKES as STRIKE_ROWS, Rules, decode_gex
from gexsrv.payloads import GexPayload
from gexsrv.records import SnapshotRow
from gexsrv.strikecheck import uniform_rows


def test_decode_snapshot(benchmark):
    body = bodies(1)[0]
    record = benchmark(decode_gex, body, Rules(), 0)
    assert (record.kind, record.ticker, record.endpoint) == ("snapshot", "SPX", "gex_zero")
    assert (record.strike_rows, record.skipped) == (STRIKES, ())


def strike_text():
    return bytes(msgspec.json.decode(bodies(1)[0], type=GexPayload).strikes)


def test_strike_check_fast(benchmark):
    """The check decode_gex makes of a snapshot's rows in the common case (gexsrv.strikecheck)."""
    assert benchmark(uniform_rows, strike_text()) == STRIKES


def test_strike_rows_exact(benchmark):
    """What it stands in for: every row decoded into a StrikeRow (the fallback, and the views' with_strikes)."""
    rows = benchmark(STRIKE_ROWS.decode, strike_text())
    assert len(rows) == STRIKES and len(rows[-1].priors) == 5


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
