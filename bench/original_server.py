"""A stand-in for the original server's write path, as its users run it today: the peer gexsrv has to beat.

The original (CONTRACT sections 5 and 6) was one file: a `ThreadingHTTPServer` that kept SQLite tables and
upserted a repeated (ticker, timestamp, endpoint). This stand-in does what it did to the database per POST /gex:
json.loads the snapshot; in one transaction, upsert the snapshot row keyed (ticker, timestamp, endpoint)
(INSERT ... ON CONFLICT DO UPDATE), DELETE that snapshot's strike rows and insert its new ones (executemany),
commit; reply 202 {"status":"ok","ticker":T}.

The settings are the ones a single-file server gets without trying: one SQLite connection shared by the handler
threads and guarded by a lock (sqlite3's default refuses a connection used from several threads; a connection per
request would pay for opening the file and its schema every time, and still queue on SQLite's file lock), the
default rollback journal (journal_mode=DELETE) and synchronous=FULL, so each commit is durable when the reply
goes out, as gexsrv's are. The strike rows are indexed by their snapshot's key, without which the DELETE would
scan the whole table. Priors, which SQLite has no array type for, are stored as JSON text.

Left out, so the stand-in is if anything faster than the original: its per-request file writes (latest.json
rewritten, spot_series.jsonl and the raw JSONL appended), /uw, /gex_history_url, envelopes, majors and
maxchange payloads, ISO-8601 timestamps.
Usage: original_server.py [--port 0] --db PATH; prints "listening on http://127.0.0.1:PORT" once it accepts.
"""
import json
import sqlite3
import threading
import urllib.parse

import threaded_http
from threaded_http import JsonHandler

DDL = """
CREATE TABLE IF NOT EXISTS gex_snapshots (
    ticker TEXT NOT NULL, timestamp INTEGER NOT NULL, endpoint TEXT NOT NULL, spot REAL, zero_gamma REAL,
    net_gex_vol REAL, net_gex_oi REAL, major_pos_vol REAL, major_pos_oi REAL, major_neg_vol REAL,
    major_neg_oi REAL, delta_risk_reversal REAL, min_dte INTEGER, sec_min_dte INTEGER, max_priors TEXT,
    UNIQUE (ticker, timestamp, endpoint));
CREATE TABLE IF NOT EXISTS gex_strikes (
    ticker TEXT NOT NULL, timestamp INTEGER NOT NULL, endpoint TEXT NOT NULL, strike REAL, gex_vol REAL,
    gex_oi REAL, priors TEXT);
CREATE INDEX IF NOT EXISTS gex_strikes_snapshot ON gex_strikes (ticker, timestamp, endpoint);
"""
VALUE_COLUMNS = ("spot", "zero_gamma", "net_gex_vol", "net_gex_oi", "major_pos_vol", "major_pos_oi", "major_neg_vol",
                 "major_neg_oi", "delta_risk_reversal", "min_dte", "sec_min_dte", "max_priors")
UPSERT = (f"INSERT INTO gex_snapshots VALUES ({', '.join('?' * (3 + len(VALUE_COLUMNS)))}) "
          "ON CONFLICT (ticker, timestamp, endpoint) DO UPDATE SET "
          + ", ".join(f"{c} = excluded.{c}" for c in VALUE_COLUMNS))
DELETE_STRIKES = "DELETE FROM gex_strikes WHERE ticker = ? AND timestamp = ? AND endpoint = ?"
INSERT_STRIKE = "INSERT INTO gex_strikes VALUES (?, ?, ?, ?, ?, ?, ?)"
# The original's aliases (CONTRACT 6): the first of each list present wins.
ALIASES = {"net_gex_vol": ("net_gex", "net_gex_vol", "sum_gex_vol"), "net_gex_oi": ("net_gex_oi", "sum_gex_oi")}


def first_of(snap, column):
    return next((snap[k] for k in ALIASES.get(column, (column,)) if k in snap), None)


def rows_of(snap):
    """The snapshot row and its strike rows, built before the transaction so that bad input writes nothing."""
    if not isinstance(snap, dict):
        raise ValueError("the body is not a JSON object")
    key = (snap["ticker"].upper(), int(float(snap["timestamp"])), snap.get("endpoint") or "gex_zero")
    values = [first_of(snap, c) for c in VALUE_COLUMNS[:-1]] + [json.dumps(snap.get("max_priors"))]
    strikes = [(*key, row[0], row[1], row[2] if len(row) > 2 else None,
                json.dumps(row[3]) if len(row) > 3 else None)
               for row in snap.get("strikes") or () if len(row) >= 2]  # shorter rows were skipped, as the original did
    return key, values, strikes


class Handler(JsonHandler):
    con = None  # set by main(): the one connection, used under `lock`
    lock = threading.Lock()

    def store(self, key, values, strikes):
        with self.lock, self.con:  # the connection's context manager commits, or rolls back on an error
            self.con.execute(UPSERT, (*key, *values))
            self.con.execute(DELETE_STRIKES, key)
            self.con.executemany(INSERT_STRIKE, strikes)

    def do_POST(self):
        body = self.read_body()
        if urllib.parse.urlsplit(self.path).path.rstrip("/") != "/gex":
            return self.reply(404, {"error": "not found"})
        try:
            key, values, strikes = rows_of(json.loads(body))
        except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
            return self.reply(400, {"error": f"{type(exc).__name__}: {exc}"})
        self.store(key, values, strikes)
        self.reply(202, {"status": "ok", "ticker": key[0]})


def connect(path):
    con = sqlite3.connect(path, check_same_thread=False)  # handler threads take turns under Handler.lock
    con.execute("PRAGMA journal_mode = DELETE")
    con.execute("PRAGMA synchronous = FULL")
    con.executescript(DDL)
    return con


def main():
    args = threaded_http.parse_args(__doc__.splitlines()[0])
    Handler.con = connect(args.db)
    threaded_http.serve(Handler, args.port, Handler.con.close)


if __name__ == "__main__":
    main()
