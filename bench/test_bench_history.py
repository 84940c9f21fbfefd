"""History import (gexsrv.history.importer.import_file) of a generated gexbot file into a fresh database.

The file comes from bench/make_history_file.py; rows/s is in the benchmark's extra_info.
"""
import itertools
import os

import make_history_file
import pytest

from gexsrv import kinds
from gexsrv.history.importer import import_file
from gexsrv.store import Store

SNAPSHOTS = 1000
STRIKES = 120  # the generator's default: a gex_zero chain


@pytest.fixture(scope="module")
def history_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / f"{make_history_file.DAY}_SPX_classic_gex_zero.json"
    make_history_file.write(path, make_history_file.snapshots(SNAPSHOTS, STRIKES))
    return str(path)


def test_history_import(benchmark, history_file, tmp_path):
    dirs = (str(tmp_path / f"data{i}") for i in itertools.count())
    stores = []

    def setup():
        # the import command's Store: DuckDB may use every core
        store = Store(next(dirs), kinds.WRITERS, threads=os.cpu_count() or 1)
        store.open()
        stores.append(store)
        return (store.con.cursor(), history_file, "SPX", "gex_zero", "history:bench"), {}

    try:
        result = benchmark.pedantic(import_file, setup=setup, rounds=3, warmup_rounds=1)
        rows = stores[-1].read("SELECT count(*), count(DISTINCT timestamp) FROM gex_strikes")[0]
    finally:
        for store in stores:
            store.close()
    assert result == (SNAPSHOTS, SNAPSHOTS * STRIKES, {"count": 0, "examples": []})
    assert rows == (SNAPSHOTS * STRIKES, SNAPSHOTS)
    benchmark.extra_info["strike_rows_per_s"] = round(SNAPSHOTS * STRIKES / benchmark.stats.stats.median)
