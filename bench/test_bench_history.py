"""History import (gexsrv.history.importer.import_file) of a generated gexbot file into a fresh database.

The file comes from ../shared/samples/make_history_file.py; rows/s is in the benchmark's extra_info.
"""
import datetime as dt
import itertools
import json
import os
import sys

import pytest

from conftest import SHARED
from gexsrv.history.importer import import_file
from gexsrv.store import Store

sys.path.insert(0, str(SHARED / "samples"))
from make_history_file import snapshots  # noqa: E402

SNAPSHOTS = 1000
STRIKES = 120  # the sample generator's default: a gex_zero chain
DATE = "2025-10-21"


@pytest.fixture(scope="module")
def history_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("history") / f"{DATE}_SPX_classic_gex_zero.json"
    with open(path, "w") as f:
        json.dump(list(snapshots("SPX", dt.date.fromisoformat(DATE), SNAPSHOTS, STRIKES, 1, 1)), f,
                  separators=(",", ":"))
    return str(path)


def test_history_import(benchmark, history_file, tmp_path):
    dirs = (str(tmp_path / f"data{i}") for i in itertools.count())
    stores = []

    def setup():
        # the import command's Store: DuckDB may use every core
        store = Store(next(dirs), threads=os.cpu_count() or 1)
        store.open()
        stores.append(store)
        return (store.con.cursor(), history_file, "SPX", "gex_zero", "history:bench"), {}

    try:
        result = benchmark.pedantic(import_file, setup=setup, rounds=3, warmup_rounds=1)
        rows = stores[-1].read("SELECT count(*), count(DISTINCT timestamp) FROM gex_strikes")[0]
    finally:
        for store in stores:
            store.close()
    assert result == (SNAPSHOTS, SNAPSHOTS * STRIKES)
    assert rows == (SNAPSHOTS * STRIKES, SNAPSHOTS)
    benchmark.extra_info["strike_rows_per_s"] = round(SNAPSHOTS * STRIKES / benchmark.stats.stats.median)
