"""What the two synchronous comparison servers (baseline_server.py, original_server.py) share: a JSON reply, a
thread per connection over keep-alive HTTP/1.1, and a clean stop on SIGTERM.

`serve(handler, port, close)` prints "listening on http://127.0.0.1:PORT" once it accepts (bench/servers.py
waits for that line), serves until SIGTERM or Ctrl-C, joins the handler threads, then calls `close()`.
"""
import argparse
import json
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps connections alive, so the benchmark measures storage rather than TCP setup.
    protocol_version = "HTTP/1.1"

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def log_message(self, format, *args):
        pass  # a line per request on stderr would cost more than some of what is measured


class Server(ThreadingHTTPServer):
    # Handler threads that are not daemons are joined by server_close(), so requests in flight finish before the
    # database closes; a daemon thread cut off inside DuckDB at exit aborts the process (SIGABRT).
    daemon_threads = False


def parse_args(description):
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=8877, help="0 picks a free port (default %(default)s)")
    ap.add_argument("--db", required=True, help="database file, created if missing")
    return ap.parse_args()


def serve(handler, port, close):
    server = Server(("127.0.0.1", port), handler)
    # SIGTERM stops serve_forever (from another thread: shutdown() waits for it) so the database closes cleanly.
    signal.signal(signal.SIGTERM, lambda signum, frame: threading.Thread(target=server.shutdown).start())
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    server.server_close()
    close()
