"""The engine's share of a /gex snapshot, --processes 2 (issue 18): its journal line decoded (decode_line) and
ingested (Store.prepare, Store.write) into a DuckDB file on a tmp dir, as the engine's store thread does, in CPU
time (the process' CPU, DuckDB's threads included), so other load on the machine does not skew it.

The lines are made as the front makes them: each body decoded by the request's rules, its header from the record
(gex_header), encoded by encode_line.

Usage: python bench/engine_lines.py [--snapshots 4000] [--strikes 300] [--batch 500] [--rounds 5]
Prints one JSON line: CPU ms per snapshot of the decoding alone and of decoding plus ingest, the best and the
median round of each (DuckDB's share varies from round to round far more than the decoding's).
"""
import argparse
import json
import os
import statistics
import tempfile
import time

from gexsrv import kinds
from gexsrv.decode import Rules, decode_gex
from gexsrv.journalline import decode_line, encode_line, gex_header
from gexsrv.position import Position
from gexsrv.store import Store
from snapshots import GexBodies

RECEIVED_MS = 1_777_492_800_500


def journal_lines(n, strikes, start):
    """n journal lines of snapshots, each of its own (ticker, timestamp), as the front writes them."""
    make = GexBodies(strikes, seed=1, start=start)
    lines = []
    for i in range(n):
        body = make(i)
        header = gex_header(decode_gex(body, Rules(), RECEIVED_MS), "/gex")
        header.dup, header.arrived = False, RECEIVED_MS
        lines.append(b"".join(encode_line(header, body, i + 1)))
    return lines


def cpu_ms_per_line(lines, batch, step):
    """CPU ms per line of step(lines of one batch, index of its first)."""
    started = time.process_time()
    for i in range(0, len(lines), batch):
        step(lines[i:i + batch], i)
    return (time.process_time() - started) * 1000 / len(lines)


def decoding(rules):
    return lambda lines, _: [decode_line(line, rules) for line in lines]


def ingesting(rules, store):
    def step(lines, i):
        records = [decode_line(line, rules) for line in lines]
        outcomes = store.write(records, store.prepare(records), Position(1, 0, i + len(lines)))
        assert outcomes == [True] * len(records), outcomes
    return step


def summary(rounds):
    return {"best": round(min(rounds), 4), "median": round(statistics.median(rounds), 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=4000)
    parser.add_argument("--strikes", type=int, default=300)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rules = Rules().replaying()  # the engine's (gexsrv.server.storage_parts)
    decoded, ingested = [], []
    lines = journal_lines(args.snapshots, args.strikes, 1_777_492_800)
    for _ in range(args.rounds):
        decoded.append(cpu_ms_per_line(lines, args.batch, decoding(rules)))
        # every round into a database of its own, so each one stores new keys into tables of the same size
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(os.path.join(tmp, "data"), kinds.WRITERS, threads=1)  # the default duckdb_threads
            store.open()
            assert store.state == "writable", store.error
            ingested.append(cpu_ms_per_line(lines, args.batch, ingesting(rules, store)))
            store.close()
    print(json.dumps({"snapshots": args.snapshots, "strikes": args.strikes, "batch": args.batch,
                      "rounds": args.rounds, "decode_cpu_ms": summary(decoded),
                      "decode_and_ingest_cpu_ms": summary(ingested)}))


if __name__ == "__main__":
    main()
