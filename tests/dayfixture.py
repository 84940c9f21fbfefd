"""A generated day for the day view's tests (test_heatmap.py, test_day_page.py), and what the server should make of
it: a gexbot history file (bench/make_history_file.py) imported with `python -m gexsrv import` (forkserver.run_gexsrv),
and the same snapshots in an in-memory DuckDB, where the expected grids are computed by queries of the tests' own."""

import datetime as dt
import json

import duckdb
import pyarrow as pa

from forkserver import run_gexsrv
from helpers import HISTORY_DAY, HISTORY_NAME, HISTORY_OPEN

SNAPS, STRIKES, EVERY = 240, 24, 5  # 20 minutes: 12 snapshots a minute, the strikes shifting as spot walks
OPEN_MS = HISTORY_OPEN * 1000
DAY_MS = 86_400_000
DAY_START = OPEN_MS - OPEN_MS % DAY_MS  # the UTC midnight before the day's first snapshot
LEVELS = ("spot", "zero_gamma", "major_pos_vol", "major_pos_oi", "major_neg_vol", "major_neg_oi")
DAY_QUERY = f"ticker=SPX&endpoint=gex_zero&date={HISTORY_DAY}"


def day_snapshots():
    from make_history_file import snapshots  # from bench/, on the path once helpers is imported
    return list(snapshots(SNAPS, STRIKES, "SPX", dt.date.fromisoformat(HISTORY_DAY), every=EVERY, seed=3))


def import_day(data_dir, snaps):
    """The snapshots imported into data_dir by the command line (the server must not be running there)."""
    path = data_dir.parent / HISTORY_NAME
    path.write_text(json.dumps(snaps))
    run = run_gexsrv(["import", str(path), "--data-dir", str(data_dir)], timeout=120)
    assert run.returncode == 0, run.stderr


def reference(snaps):
    """The snapshots as two in-memory tables: snaps (ts ms and the levels) and strikes (ts, strike, gamma,
    oi_gamma)."""
    con = duckdb.connect()
    snap_rows = pa.Table.from_pylist([{"ts": s["timestamp"] * 1000, **{name: s[name] for name in LEVELS}}
                                      for s in snaps])
    strike_rows = pa.Table.from_pylist([{"ts": s["timestamp"] * 1000, "strike": float(row[0]), "gamma": row[1],
                                         "oi_gamma": row[2]} for s in snaps for row in s["strikes"]])
    con.execute("CREATE TABLE snaps AS SELECT * FROM snap_rows")
    con.execute("CREATE TABLE strikes AS SELECT * FROM strike_rows")
    return con


def expected(con, since, until, bucket_s=60, measure="vol", agg="last", band=None, low=None, high=None):
    """{"times", "strikes", "cells": {(time, strike): value}, "series": {name: [per time]}} as the day view should
    answer: `last` the bucket's newest snapshot (row_number), `mean` avg per (bucket, strike)."""
    column = {"vol": "gamma", "oi": "oi_gamma"}[measure]
    params = {"since": since, "until": until, "b": bucket_s * 1000}
    con.execute("""CREATE OR REPLACE TEMP TABLE chosen AS
        SELECT *, ts - ts % $b AS bucket, row_number() OVER (PARTITION BY ts - ts % $b ORDER BY ts DESC) AS newest,
               count(*) OVER (PARTITION BY ts - ts % $b) AS n
        FROM snaps WHERE ts >= $since AND ts < $until""", params)
    if band is not None:
        low, high = con.execute(f"SELECT min(spot) * (1 - {band} / 100), max(spot) * (1 + {band} / 100) "
                                "FROM chosen").fetchone()
    limits = f" AND k.strike >= {low if low is not None else '-1e300'} AND k.strike <= " \
             f"{high if high is not None else '1e300'}"
    if agg == "last":
        cells = con.execute(f"SELECT c.bucket, k.strike, k.{column} FROM chosen c JOIN strikes k USING (ts) "
                            f"WHERE c.newest = 1{limits}").fetchall()
    else:
        cells = con.execute(f"SELECT c.bucket, k.strike, avg(k.{column}) FROM chosen c JOIN strikes k USING (ts) "
                            f"WHERE true{limits} GROUP BY ALL").fetchall()
    series = con.execute(f"SELECT bucket, ts, n, {', '.join(LEVELS)} FROM chosen WHERE newest = 1 "
                         "ORDER BY bucket").fetchall()
    return {"times": [row[0] for row in series], "strikes": sorted({strike for _, strike, _ in cells}),
            "cells": {(bucket, strike): value for bucket, strike, value in cells},
            "series": {name: [row[k] for row in series] for k, name in enumerate(("at", "snapshots", *LEVELS), 1)}}


def cells_of(reply):
    """The reply's grid as {(time, strike): value}, its nulls left out; and how many nulls it holds."""
    cells, nulls = {}, 0
    for time, row in zip(reply["times"], reply["grid"]):
        assert len(row) == len(reply["strikes"])
        for strike, value in zip(reply["strikes"], row):
            if value is None:
                nulls += 1
            else:
                cells[(time, strike)] = value
    return cells, nulls
