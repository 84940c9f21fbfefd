"""A DuckDB file shaped like the established gex_data.db that gexsrv adopts (CONTRACT section 4), for tests.

Its two tables have the legacy layout: epoch-ms BIGINT timestamps, no endpoint column, no keys, priors as
DOUBLE[], max_priors as JSON text, and a few exact copies of gex_snapshots rows, as the earlier importer left.
Each ticker gets --days weekday sessions from 2025-10-21 on, a snapshot every --every seconds from the opening
bell to the close, made by make_history_file.session, so the rows hold the rules the validator checks.
`fingerprint(path)` hashes the legacy columns of both tables, so a test can prove their rows untouched.

Usage: python bench/make_legacy_db.py PATH [--days 2] [--tickers SPX,NDX] [--every 60] [--strikes 60] [--seed 7]
Refuses an existing PATH. Prints one JSON line: fingerprint(PATH).
"""
import argparse
import datetime as dt
import json
import os
import random
import sys

import duckdb
import pyarrow as pa

from make_history_file import DAY, opening_bell, session
from snapshots import SPOT

SNAPSHOT_COLUMNS = {
    "timestamp": "BIGINT", "ticker": "VARCHAR", "spot_price": "DOUBLE", "zero_gamma": "DOUBLE", "net_gex": "DOUBLE",
    "min_dte": "INTEGER", "sec_min_dte": "INTEGER", "major_pos_vol": "DOUBLE", "major_pos_oi": "DOUBLE",
    "major_neg_vol": "DOUBLE", "major_neg_oi": "DOUBLE", "sum_gex_vol": "DOUBLE", "sum_gex_oi": "DOUBLE",
    "delta_risk_reversal": "DOUBLE", "max_priors": "VARCHAR",
}
STRIKE_COLUMNS = {"timestamp": "BIGINT", "ticker": "VARCHAR", "strike": "DOUBLE", "gamma": "DOUBLE",
                  "oi_gamma": "DOUBLE", "priors": "DOUBLE[]"}
TABLES = {"gex_snapshots": SNAPSHOT_COLUMNS, "gex_strikes": STRIKE_COLUMNS}
SNAPSHOT_KEYS = {"spot_price": "spot", "net_gex": "sum_gex_vol"}  # legacy columns named otherwise in a snapshot
FIRST_MS = opening_bell(DAY) * 1000  # the first snapshot of every ticker: 2025-10-21 13:30:00 UTC
SESSION_S = 390 * 60  # 09:30 to 16:00
EXACT_COPIES = 3  # gex_snapshots rows the earlier importer wrote twice


def trading_days(first, n):
    """The first n weekdays from first on (holidays are not skipped)."""
    days = (first + dt.timedelta(days=k) for k in range(7 * n))
    return [d for d in days if d.weekday() < 5][:n]


def snapshot_row(snap):
    row = {column: snap[SNAPSHOT_KEYS.get(column, column)] for column in SNAPSHOT_COLUMNS}
    return {**row, "timestamp": snap["timestamp"] * 1000, "max_priors": json.dumps(snap["max_priors"])}


def strike_rows(snap):
    ms, ticker = snap["timestamp"] * 1000, snap["ticker"]
    return [{"timestamp": ms, "ticker": ticker, "strike": strike, "gamma": gamma, "oi_gamma": oi_gamma,
             "priors": priors} for strike, gamma, oi_gamma, priors in snap["strikes"]]


def append(con, table, rows):
    """Insert rows (dicts) in one go, in the table's column order; DuckDB casts each to its column's type."""
    batch = pa.Table.from_pylist(rows).select(list(TABLES[table]))
    con.register("batch", batch)
    con.execute(f"INSERT INTO {table} SELECT * FROM batch")
    con.unregister("batch")


def build(path, days=2, tickers=("SPX", "NDX"), every=60, n_strikes=60, seed=7):
    """Write the legacy database at path (which must not exist); its fingerprint."""
    if os.path.exists(path):
        raise FileExistsError(f"refusing to touch existing {path}")
    unknown = sorted(set(tickers) - set(SPOT))
    if unknown:
        raise ValueError(f"no starting spot for {', '.join(unknown)}; known tickers: {', '.join(sorted(SPOT))}")
    rnd = random.Random(seed)
    with duckdb.connect(str(path)) as con:
        for table, columns in TABLES.items():
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        for ticker in tickers:
            spot = SPOT[ticker]
            for day in trading_days(DAY, days):
                snaps = list(session(rnd, ticker, day, SESSION_S // every, n_strikes, every, spot))
                spot = snaps[-1]["spot"]  # the next day opens where this one closed
                append(con, "gex_snapshots", [snapshot_row(s) for s in snaps])
                append(con, "gex_strikes", [row for s in snaps for row in strike_rows(s)])
        _copy_a_few(con)
    return fingerprint(path)


def _copy_a_few(con):
    """Write EXACT_COPIES rows, spread over the table, a second time (never the first row of the table)."""
    (total,) = con.execute("SELECT count(*) FROM gex_snapshots").fetchone()
    picks = sorted({total * k // (EXACT_COPIES + 1) for k in range(1, EXACT_COPIES + 1)} - {0})
    con.execute("INSERT INTO gex_snapshots SELECT * FROM gex_snapshots WHERE rowid IN "
                f"({', '.join(map(str, picks))})")


def fingerprint(path):
    """{table: {"rows", "hash"}}: the row count and an order-free hash of the legacy columns of both tables.

    Columns that gexsrv adds on adoption are left out, so the fingerprint before and after adoption compare.
    """
    out = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for table, columns in TABLES.items():
            rows, total = con.execute(f"SELECT count(*), sum(hash({', '.join(columns)})::HUGEINT) FROM {table}"
                                      ).fetchone()
            out[table] = {"rows": rows, "hash": str(total)}
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="the DuckDB file to create")
    ap.add_argument("--days", type=int, default=2, help="weekday sessions per ticker (default %(default)s)")
    ap.add_argument("--tickers", default="SPX,NDX", help="comma-separated (default %(default)s)")
    ap.add_argument("--every", type=int, default=60, help="seconds between snapshots (default %(default)s)")
    ap.add_argument("--strikes", type=int, default=60, help="strike rows per snapshot (default %(default)s)")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    try:
        made = build(a.path, a.days, a.tickers.split(","), a.every, a.strikes, a.seed)
    except (FileExistsError, ValueError) as exc:
        sys.exit(str(exc))
    print(json.dumps(made))


if __name__ == "__main__":
    main()
