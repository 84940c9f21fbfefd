"""A gex_data.db in gexsrv's own layout holding one session of one feed, built in DuckDB SQL (no HTTP, no JSON), for
the day view's benchmark and tests: a full day of 1-second snapshots x 300 strikes (7M strike rows) in seconds.

Snapshots start at the opening bell (09:30 New York) of --date, --every seconds apart; spot walks (a seeded hash,
so the same arguments give the same rows); each snapshot's strikes are centred on its spot, so the strike set
shifts as spot moves; GEX by strike is positive above zero gamma and negative below, fading away from spot, plus
noise; the majors are the strikes of the largest and smallest GEX. Rows are written as ingest writes them
(endpoint set, `source` live, `seq` drawn), so the Parquet exporter and every read take them as its own.

Usage: python bench/make_day_db.py DATA_DIR [--ticker SPX] [--endpoint gex_zero] [--date 2025-10-21]
           [--snapshots 23400] [--strikes 300] [--every 1] [--seed 1]
Refuses a DATA_DIR that holds a database already. Prints one JSON line: the counts and the path.
"""
import argparse
import datetime as dt
import json
import os
import sys

from gexsrv import kinds
from gexsrv.store import DB_FILE, Store
from make_history_file import DAY, opening_bell
from snapshots import SPOT, STEP

# One row per snapshot: its time and spot, the walk's steps summed in a window (hash(seed, i) is the noise).
SNAPSHOTS = """
    CREATE TEMP TABLE day AS
    SELECT $t0 + i * $every AS timestamp, $spot * exp(sum(noise) OVER (ORDER BY i)) AS spot
    FROM (SELECT i, ((hash($seed, i) % 2000001)::BIGINT - 1000000) / 1e6 * 2e-4 * sqrt($every) AS noise
          FROM range($n) t(i))"""
STRIKES = """
    INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors)
    SELECT ms, $ticker, $endpoint, strike, gamma, round(gamma * 0.4, 3), [gamma, gamma, gamma, gamma, gamma]
    FROM (SELECT timestamp * 1000 AS ms, strike,
                 round(5e6 * tanh((strike - spot * 0.998) / (8 * $step)) * exp(-abs(strike - spot) / (60 * $step))
                       + ((hash($seed, timestamp, j) % 200001)::BIGINT - 100000) / 10.0, 3) AS gamma
          FROM (SELECT timestamp, spot, j, round(spot / $step) * $step + (j - $strikes // 2) * $step AS strike
                FROM day, range($strikes) s(j)))
    ORDER BY ms, strike"""
LEVELS = """
    INSERT INTO gex_snapshots BY NAME
    SELECT d.timestamp * 1000 AS timestamp, $ticker AS ticker, $endpoint AS endpoint, round(d.spot, 2) AS spot_price,
           round(d.spot * 0.998, 2) AS zero_gamma, 0 AS min_dte, 1 AS sec_min_dte,
           arg_max(strike, gamma) AS major_pos_vol, arg_max(strike, oi_gamma) AS major_pos_oi,
           arg_min(strike, gamma) AS major_neg_vol, arg_min(strike, oi_gamma) AS major_neg_oi,
           sum(gamma) AS sum_gex_vol, sum(oi_gamma) AS sum_gex_oi, sum(gamma) AS net_gex, 0.1 AS delta_risk_reversal,
           '[]' AS max_priors, d.timestamp * 1000 AS received_at, 'live' AS source
    FROM day d JOIN gex_strikes s ON s.timestamp = d.timestamp * 1000 AND s.ticker = $ticker
    GROUP BY d.timestamp, d.spot ORDER BY d.timestamp"""


def build(data_dir, ticker="SPX", endpoint="gex_zero", day=DAY, n=23_400, strikes=300, every=1, seed=1):
    """Write the day into data_dir/gex_data.db (which must not exist); the counts."""
    if os.path.exists(os.path.join(data_dir, DB_FILE)):
        raise FileExistsError(f"refusing to touch existing {os.path.join(data_dir, DB_FILE)}")
    store = Store(str(data_dir), kinds.WRITERS, threads=os.cpu_count())
    store.open()
    try:
        con = store.con
        params = {"t0": opening_bell(day), "every": every, "spot": SPOT[ticker], "seed": seed, "n": n}
        con.execute(SNAPSHOTS, params)
        con.execute(STRIKES, {"ticker": ticker, "endpoint": endpoint, "step": STEP[ticker], "seed": seed,
                              "strikes": strikes})
        con.execute(LEVELS, {"ticker": ticker, "endpoint": endpoint})
        snapshots, rows = con.execute("SELECT (SELECT count(*) FROM gex_snapshots), "
                                      "(SELECT count(*) FROM gex_strikes)").fetchone()
    finally:
        store.close()
    return {"snapshots": snapshots, "strike_rows": rows, "path": os.path.join(str(data_dir), DB_FILE)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data_dir", help="the data dir to create the database in")
    ap.add_argument("--ticker", default="SPX", choices=sorted(SPOT))
    ap.add_argument("--endpoint", default="gex_zero")
    ap.add_argument("--date", default=DAY, type=dt.date.fromisoformat, help="the session's day (default %(default)s)")
    ap.add_argument("--snapshots", type=int, default=23_400, help="default %(default)s: a session at --every 1")
    ap.add_argument("--strikes", type=int, default=300, help="strike rows per snapshot (default %(default)s)")
    ap.add_argument("--every", type=int, default=1, help="seconds between snapshots (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    try:
        made = build(a.data_dir, a.ticker, a.endpoint, a.date, a.snapshots, a.strikes, a.every, a.seed)
    except FileExistsError as exc:
        sys.exit(str(exc))
    print(json.dumps(made))


if __name__ == "__main__":
    main()
