"""One ingest transaction (Store.write) of N snapshots into a DuckDB file on a tmp dir, each round with new keys;
the strike rows are read from the request bodies by DuckDB (gexsrv.gexwrite). 400 and 420 snapshots of 300 strikes
fall either side of a DuckDB row group (122,880 rows): from one row group up, DuckDB writes the rows into the
database file at the commit rather than into its WAL (conf/gexsrv.toml, ingest_interval_ms)."""
import pytest

from conftest import FLUSH, STRIKES, FreshKeys, records
from gexsrv import kinds
from gexsrv.store import Store

ROUNDS = 10


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "data"), kinds.WRITERS, threads=1)  # the server's default duckdb_threads
    store.open()
    assert store.state == "writable"
    yield store
    store.close()


@pytest.mark.parametrize("n", [1, 16, FLUSH, 400, 420, 1000])
def test_store_write(benchmark, store, n):
    fresh = FreshKeys(records(n))
    written = []

    def setup():
        batch = fresh()
        written.append(batch)
        return (batch,), {}

    stored = benchmark.pedantic(store.write, setup=setup, rounds=ROUNDS, warmup_rounds=1)
    assert stored == [True] * n
    snapshots, strike_rows = store.read("SELECT (SELECT count(*) FROM gex_snapshots), "
                                        "(SELECT count(*) FROM gex_strikes)")[0]
    assert (snapshots, strike_rows) == (len(written) * n, len(written) * n * STRIKES)
    benchmark.extra_info["strike_rows_per_s"] = round(n * STRIKES / benchmark.stats.stats.median)
