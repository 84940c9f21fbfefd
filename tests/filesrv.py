"""A local HTTP server for history-download tests, on 127.0.0.1 in a thread, serving files from a folder.

Paths: /files/<name> serves a file (a .html one as a page); /flaky/<n>/<name> answers 503 n times, then serves
it; /drop/<n>/<name> closes the connection without an answer n times, then serves it; /status/<code>; /redirect?to=<url> answers 302;
POST /hook records the JSON body (an alert webhook receiver).
"""

import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    def __init__(self, folder):
        self.folder = Path(folder)
        self.hits = {}
        self.hooks = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def count(self, path):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            return self.hits[path]

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, code, body=b"", headers=()):
                self.send_response(code)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                hit = server.count(parts.path)
                segments = parts.path.strip("/").split("/")
                if segments[0] == "files":
                    page = [("Content-Type", "text/html")] if segments[1].endswith(".html") else []
                    self.send(200, (server.folder / segments[1]).read_bytes(), page)
                elif segments[0] == "flaky":
                    if hit <= int(segments[1]):
                        self.send(503, b"try later")
                    else:
                        self.send(200, (server.folder / segments[2]).read_bytes())
                elif segments[0] == "drop" and hit <= int(segments[1]):
                    self.close_connection = True
                elif segments[0] == "drop":
                    self.send(200, (server.folder / segments[2]).read_bytes())
                elif segments[0] == "status":
                    self.send(int(segments[1]), b"no")
                elif segments[0] == "redirect":
                    target = urllib.parse.parse_qs(parts.query)["to"][0]
                    self.send(302, b"moved", [("Location", target)])
                else:
                    self.send(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with server.lock:
                    server.hooks.append(json.loads(body))
                self.send(204)

        return Handler
