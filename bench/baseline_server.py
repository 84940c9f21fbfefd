"""The comparison baseline: the simplest way to write the capture server, one synchronous thread per connection.

POST /gex: json.loads the snapshot, insert it into gex_snapshots and its strikes into gex_strikes (executemany),
commit, reply 202 {"status":"ok","ticker":T}. POST /uw: store the raw body, reply 200 {"status":"received"}.
Usage: baseline_server.py [--port 0] --db PATH; prints "listening on http://127.0.0.1:PORT" once it accepts.
"""
import argparse
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import duckdb

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


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, so the benchmark measures storage rather than TCP setup.
    protocol_version = "HTTP/1.1"
    con = None  # set by main(); one connection, one cursor per thread
    local = threading.local()

    def cursor(self):
        if not hasattr(self.local, "cur"):
            self.local.cur = self.con.cursor()
        return self.local.cur

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
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

    def log_message(self, format, *args):
        pass  # a line per request on stderr would cost more than some of what is measured


class Server(ThreadingHTTPServer):
    # Handler threads that are not daemons are joined by server_close(), so requests in flight finish before the
    # database closes; a daemon thread cut off inside DuckDB at exit aborts the process (SIGABRT).
    daemon_threads = False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8877, help="0 picks a free port (default %(default)s)")
    ap.add_argument("--db", required=True, help="DuckDB file, created if missing")
    args = ap.parse_args()
    Handler.con = duckdb.connect(args.db)
    Handler.con.execute(DDL)
    server = Server(("127.0.0.1", args.port), Handler)
    # SIGTERM stops serve_forever (from another thread: shutdown() waits for it) so the database closes cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    Handler.con.close()


if __name__ == "__main__":
    main()
