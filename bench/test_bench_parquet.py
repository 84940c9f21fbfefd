"""Parquet: Polars' zstd write of a strikes batch, the lake's publish (write + fsync + link), and the lake's
export of committed snapshots (their strike rows and snapshot rows) from DuckDB to part files (gexsrv.lake)."""
import io
import itertools

import polars as pl
import pytest

from conftest import FLUSH, STRIKES, records
from gexsrv import kinds, lake
from gexsrv.store import Store

ROWS = FLUSH * STRIKES


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    """FLUSH snapshots' strike rows as the store keeps them."""
    store = Store(str(tmp_path_factory.mktemp("frame")), kinds.WRITERS)
    store.open()
    batch = records(FLUSH)
    store.write(batch)
    frame = pl.from_arrow(store.con.sql("SELECT * EXCLUDE (seq) FROM gex_strikes").to_arrow_table())
    store.close()
    return frame


def test_write_parquet_zstd(benchmark, frame):
    def write():
        out = io.BytesIO()
        frame.write_parquet(out, compression="zstd")
        return out

    out = benchmark(write)
    out.seek(0)
    assert pl.read_parquet(out).height == ROWS


def test_lake_publish(benchmark, frame, tmp_path):
    names = (f"20260430.{i}.strikes.parquet" for i in itertools.count())

    def setup():
        return (frame, str(tmp_path), next(names)), {}

    assert benchmark.pedantic(lake.publish, setup=setup, rounds=10, warmup_rounds=1) is True
    assert pl.read_parquet(tmp_path / "20260430.0.strikes.parquet").equals(frame)


def test_lake_export_range(benchmark, tmp_path):
    store = Store(str(tmp_path / "data"), kinds.WRITERS)
    store.open()
    try:
        batch = records(FLUSH)
        assert store.write(batch) == [True] * FLUSH
        high = lake.sequence_high(store.con)
        assert high == ROWS + FLUSH  # each snapshot's row draws a number too
        roots = (str(tmp_path / f"lake{i}") for i in itertools.count())

        def setup():
            return (store.con.cursor(), next(roots), 0, high), {}

        files, rows = benchmark.pedantic(lake.export_range, setup=setup, rounds=5, warmup_rounds=1)
    finally:
        store.close()
    assert rows == {"strikes": ROWS, "snapshots": FLUSH, "majors": 0, "maxchange": 0}
    assert files == 2 * len({r.ticker for r in batch})  # one day, one endpoint: a part per ticker and kind
    benchmark.extra_info["strike_rows_per_s"] = round(ROWS / benchmark.stats.stats.median)
