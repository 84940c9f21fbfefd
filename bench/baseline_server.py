"""The comparison baseline: the simplest way to write the capture server, one synchronous thread per connection.

POST /gex: json.loads the snapshot, insert it into gex_snapshots and its strikes into gex_strikes (executemany),
commit, reply 202 {"status":"ok","ticker":T}. POST /uw: store the raw body, reply 200 {"status":"received"}.
Usage: baseline_server.py [--port 0] --db PATH; prints "listening on http://127.0.0.1:PORT" once it accepts.
"""
import json
import threading

import duckdb

import threaded_http
from threaded_http import JsonHandler

DDL = """
CREATE TABLE IF NOT EXISTS gex_snapshots (
    timestamp BIGINT, ticker VARCHAR, spot_price DOUBLE, zero_gamma DOUBLE, net_gex DOUBLE, min_dte INTEGER,
    sec_min_dte INTEGER, major_pos_vol DOUBLE, major_pos_oi DOUBLE, major_neg_vol DOUBLE, major_neg_oi DOUBLE,
    sum_gex_vol DOUBLE, sum_gex_oi DOUBLE, delta_risk_reversal DOUBLE, max_priors VARCHAR);
CREATE TABLE IF NOT EXISTS gex_strikes (
    timestamp BIGINT, ticker VARCHAR, strike DOUBLE, gamma DOUBLE, oi_gamma DOUBLE, priors DOUBLE[]);
CREATE TABLE IF NOT EXISTS universal_webhooks (received_at TIMESTAMP, body VARCHAR);
"""
# net_gex is sum_gex_vol, the alias the original used, so that key appears twice.
SNAPSHOT_COLUMNS = ("spot", "zero_gamma", "sum_gex_vol", "min_dte", "sec_min_dte", "major_pos_vol", "major_pos_oi",
                    "major_neg_vol", "major_neg_oi", "sum_gex_vol", "sum_gex_oi", "delta_risk_reversal")


def store_snapshot(cur, snap):
    # Rows are built before BEGIN so that a malformed snapshot fails before any write.
    ts_ms = int(float(snap["timestamp"]) * 1000)
    ticker = snap["ticker"].upper()
    snapshot_row = [ts_ms, ticker, *(snap.get(c) for c in SNAPSHOT_COLUMNS), json.dumps(snap.get("max_priors"))]
    strike_rows = [[ts_ms, ticker, row[0], row[1], row[2] if len(row) > 2 else None, row[3] if len(row) > 3 else None]
                   for row in snap.get("strikes", [])]
    cur.execute("BEGIN")
    try:
        cur.execute("INSERT INTO gex_snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", snapshot_row)
        if strike_rows:
            cur.executemany("INSERT INTO gex_strikes VALUES (?, ?, ?, ?, ?, ?)", strike_rows)
        cur.execute("COMMIT")
    except duckdb.Error:
        cur.execute("ROLLBACK")
        raise
    return ticker


def store_webhook(cur, body):
    cur.execute("INSERT INTO universal_webhooks VALUES (current_timestamp, ?)", [body.decode()])


class Handler(JsonHandler):
    con = None  # set by main(); one connection, one cursor per thread
    local = threading.local()

    def cursor(self):
        if not hasattr(self.local, "cur"):
            self.local.cur = self.con.cursor()
        return self.local.cur

    def do_POST(self):
        body = self.read_body()
        if self.path not in ("/gex", "/uw"):
            return self.reply(404, {"error": "not found"})
        try:
            if self.path == "/uw":
                store_webhook(self.cursor(), body)
                return self.reply(200, {"status": "received"})
            ticker = store_snapshot(self.cursor(), json.loads(body))
        except (ValueError, KeyError, TypeError, IndexError, duckdb.Error) as exc:
            return self.reply(400, {"error": str(exc)})
        self.reply(202, {"status": "ok", "ticker": ticker})


def main():
    args = threaded_http.parse_args(__doc__.splitlines()[0])
    Handler.con = duckdb.connect(args.db)
    Handler.con.execute(DDL)
    threaded_http.serve(Handler, args.port, Handler.con.close)


if __name__ == "__main__":
    main()
