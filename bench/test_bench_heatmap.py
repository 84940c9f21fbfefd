"""The day view's read (GET /api/heatmap's work on its worker thread: gexsrv.dayview.heatmap_body, the query of
gexsrv.heatmap and the reply's encoding) over a full day of 1-second snapshots, 23,400 x 300 strikes (7M strike
rows), built by bench/make_day_db.py. DuckDB runs on one thread, as the server's (duckdb_threads = 1)."""
import json

import make_day_db
import pytest

from gexsrv import heatmap, kinds
from gexsrv.dayview import heatmap_body
from gexsrv.lakekinds import lake_root
from gexsrv.store import Store
from make_history_file import DAY, opening_bell

SNAPSHOTS, STRIKES = 23_400, 300
DAY_MS = 86_400_000
OPEN_MS = opening_bell(DAY) * 1000
SINCE = OPEN_MS - OPEN_MS % DAY_MS
CASES = {
    "last, every strike": ({}, "json"),
    "last, band 2.5%": ({"band_pct": 2.5}, "json"),
    "mean, every strike": ({"agg": "mean"}, "json"),
    "by OI, strikes 6700-6900": ({"measure": "oi", "min_strike": 6700.0, "max_strike": 6900.0}, "json"),
    "last, every strike, as Parquet": ({}, "parquet"),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    data = tmp_path_factory.mktemp("day") / "data"
    made = make_day_db.build(data, n=SNAPSHOTS, strikes=STRIKES)
    assert (made["snapshots"], made["strike_rows"]) == (SNAPSHOTS, SNAPSHOTS * STRIKES)
    store = Store(str(data), kinds.WRITERS, threads=1)
    store.open()
    yield store
    store.close()


@pytest.mark.parametrize("case", CASES)
def test_heatmap_full_day(benchmark, store, case):
    options, form = CASES[case]
    selection = heatmap.Selection("SPX", "gex_zero", SINCE, SINCE + DAY_MS, **options)
    body = benchmark.pedantic(heatmap_body, args=(store, lake_root(store.data_dir), selection, {}, form), rounds=7,
                              warmup_rounds=1)
    if form == "json":
        reply = json.loads(body)
        assert (reply["source"], len(reply["times"])) == ("database", 390)
        assert set(reply["series"]["snapshots"]) == {60}
        benchmark.extra_info["cells"] = len(reply["times"]) * len(reply["strikes"])
    benchmark.extra_info["reply_bytes"] = len(body)
