"""The README's quick start, read examples and lake recipes, run as written against a real server: the reads return
the quick start's own snapshot (the /api/snapshots example returned [] when its `until`, exclusive, sat on it)."""

import datetime
import re

from helpers import README, TS, eventually, lake_health, quick_start_body, snapshot


def read_examples():
    return re.findall(r"curl '(localhost:8877/api/(?:snapshots|strikes)\?[^']+)'", README)


def test_the_read_examples_return_the_quick_starts_snapshot(server):
    assert server.request("POST", "/gex?ack=ingested", quick_start_body()).status == 202
    examples = read_examples()
    assert len(examples) == 2
    snapshots, strikes = (server.get(url.removeprefix("localhost:8877")).json() for url in examples)
    assert [(s["timestamp"], s["spot"]) for s in snapshots["snapshots"]] == [(1777492800000, 7138.55)]
    assert strikes["strikes"] == [[7135.0, -228.0, -86.9, [-240.5, -243.1, -245.2, -221.2, -220.1]]]


def lake_recipes():
    """The Python blocks of the README's lake section: the notebook recipe, with Polars and with DuckDB."""
    section = README[README.index("### The Parquet lake"):README.index("## Validating the data")]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_the_lake_recipes_run_as_written_against_a_running_servers_lake(start_server, monkeypatch):
    server = start_server(None, "--lake-export-interval", "0.2")
    assert server.request("POST", "/gex?ack=ingested", quick_start_body()).status == 202
    for i in (1, 2):  # two more snapshots of the quick start's day, their spot a point higher each
        body = snapshot(timestamp=TS + 60 * i, n_strikes=6, spot=7138.55 + i)
        assert server.post("/gex?ack=ingested", body).status == 202
    lake_health(server, lambda h: h["exported"]["snapshots"] == 3)
    # the quick start's day is past: wait for its parts to be compacted into day files, or a recipe could list a
    # part just before it is deleted (the README says so)
    feed = server.data_dir / "parquet" / "gexbot" / "SPX" / "gex_zero"
    eventually(lambda: sorted(p.name for p in feed.iterdir()) == ["20260429.snapshots.parquet",
                                                                  "20260429.strikes.parquet"], "the day compacted")
    monkeypatch.chdir(server.data_dir.parent)  # the recipes read data/parquet/..., as from a notebook beside data/
    results = []
    for block in lake_recipes():
        names = {}
        exec(block, names)  # while the server runs: the lake is what can be read meanwhile
        results.append(names)
    assert len(results) == 2
    server.stop()
    with server.db() as db:
        spot_vs_zero = db.execute("SELECT epoch_ms(timestamp), spot_price, zero_gamma FROM gex_snapshots "
                                  "ORDER BY timestamp").fetchall()
        near_spot = db.execute("SELECT timestamp, sum(gamma) FROM gex_strikes JOIN gex_snapshots "
                               "USING (ticker, endpoint, timestamp) WHERE abs(strike - spot_price) <= 10 "
                               "GROUP BY timestamp ORDER BY timestamp").fetchall()
    assert spot_vs_zero[0] == (datetime.datetime(2026, 4, 29, 20, 0), 7138.55, None)  # the quick start's
    assert len(spot_vs_zero) == 3 and near_spot[0] == (TS * 1000, -228.0) and len(near_spot) == 3
    polars_names, duckdb_names = results
    assert polars_names["spot_vs_zero"].rows() == duckdb_names["spot_vs_zero"] == spot_vs_zero
    assert polars_names["near_spot"].rows() == duckdb_names["near_spot"] == near_spot
