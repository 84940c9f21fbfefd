"""Gexbot-style history files (CONTRACT section 2) for the tests and benchmarks: one ticker's session of snapshots.

The file is one JSON array of snapshot objects, as gexbot serves it, or with --jsonl one snapshot per line;
--gzip compresses either. Snapshots start at the opening bell (09:30 New York) of --date, --every seconds apart,
their spot on a seeded random walk; each is a bench/snapshots.py gex_snapshot, so its sums and majors match its
strikes. The defaults give one regular session at one snapshot a second: 23,400 snapshots, 2.8M strike rows.

Usage: python bench/make_history_file.py OUT [--ticker SPX] [--date 2025-10-21] [--snapshots 23400]
           [--strikes 120] [--every 1] [--seed 1] [--gzip] [--jsonl]
Prints one JSON line: the counts and the path.
"""
import argparse
import datetime as dt
import gzip
import json
import math
import random
from zoneinfo import ZoneInfo

from snapshots import SPOT, gex_snapshot

DAY = dt.date(2025, 10, 21)  # a Tuesday
OPENING_BELL = dt.time(9, 30, tzinfo=ZoneInfo("America/New_York"))
VOLATILITY = 1e-4  # relative spot move per square-root second: about 1.5% over a session


def opening_bell(day):
    """Epoch seconds of 09:30 New York time on day, daylight saving time included."""
    return int(dt.datetime.combine(day, OPENING_BELL).timestamp())


def session(rnd, ticker, day, n, n_strikes, every, spot):
    """n snapshots from the opening bell of day on, `every` seconds apart, the spot walking on from `spot`."""
    t0 = opening_bell(day)
    sigma = VOLATILITY * math.sqrt(every)
    for i in range(n):
        spot *= 1 + rnd.gauss(0, sigma)
        yield gex_snapshot(rnd, ticker, t0 + i * every, n_strikes, spot)


def snapshots(n, n_strikes=120, ticker="SPX", day=DAY, every=1, seed=1):
    """The same seed gives the same snapshots; another seed gives the same timestamps with other values."""
    return session(random.Random(seed), ticker, day, n, n_strikes, every, SPOT[ticker])


def write(path, snaps, compress=False, lines=False):
    """Write snaps as a JSON array (or JSON Lines), streamed, so a full day never sits in memory; the count."""
    count = 0
    with (gzip.open if compress else open)(path, "wt") as out:
        out.write("" if lines else "[")
        for count, snap in enumerate(snaps, 1):
            text = json.dumps(snap, separators=(",", ":"))
            out.write(text + "\n" if lines else ("," if count > 1 else "") + text)
        out.write("" if lines else "]")
    return count


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="the file to write (replaced if it exists)")
    ap.add_argument("--ticker", default="SPX", choices=sorted(SPOT))
    ap.add_argument("--date", default=DAY, type=dt.date.fromisoformat, help="the session's day (default %(default)s)")
    ap.add_argument("--snapshots", type=int, default=23_400, help="default %(default)s: a session at --every 1")
    ap.add_argument("--strikes", type=int, default=120, help="strike rows per snapshot (default %(default)s)")
    ap.add_argument("--every", type=int, default=1, help="seconds between snapshots (default %(default)s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gzip", action="store_true", help="gzip the file")
    ap.add_argument("--jsonl", action="store_true", help="JSON Lines: one snapshot per line, no enclosing array")
    a = ap.parse_args(argv)
    made = snapshots(a.snapshots, a.strikes, a.ticker, a.date, a.every, a.seed)
    count = write(a.out, made, compress=a.gzip, lines=a.jsonl)
    print(json.dumps({"snapshots": count, "strike_rows": count * a.strikes, "path": a.out}))


if __name__ == "__main__":
    main()
