"""The tests' fake HTTP services, each on 127.0.0.1 in a thread: a file host (FileServer), Discord (FakeDiscord), a
dashboard (Dashboard) and gexbot, its live API and its history API with the file hosts behind it (FakeGexbot)."""

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import NamedTuple

from helpers import TS, eventually, snapshot

GEXBOT_KEY = "test-key"  # the key FakeGexbot's history API takes
DM_CHANNEL = "900000000000000001"  # the DM channel FakeDiscord opens
DM_OPEN = "/api/v10/users/@me/channels"


class Handler(BaseHTTPRequestHandler):
    """A quiet handler with one way to answer."""

    def log_message(self, *args):
        pass

    def send(self, code, body=b"", headers=()):
        try:
            self.send_response(code)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client was killed meanwhile
            pass

    def send_json(self, code, body):
        self.send(code, json.dumps(body).encode(), [("Content-Type", "application/json")])


class ThreadedServer:
    """A ThreadingHTTPServer on an ephemeral port of 127.0.0.1, serving in a thread from entering until exiting."""

    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Stop answering: the port is closed, so connecting to it is refused."""
        self.httpd.shutdown()
        self.httpd.server_close()


class FileServer(ThreadedServer):
    """Files from a folder, for history downloads. Paths: /files/<name> serves a file (a .html one as a page);
    /flaky/<n>/<name> answers 503 n times, then serves it; /drop/<n>/<name> closes the connection without an answer
    n times, then serves it; /status/<code>; /redirect?to=<url> answers 302; POST /hook records the JSON body (an
    alert webhook receiver)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        self.hits = {}
        self.hooks = []
        self.lock = threading.Lock()
        super().__init__(self._handler())

    def count(self, path):
        with self.lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            return self.hits[path]

    def _handler(self):
        server = self

        class Files(Handler):
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

        return Files


class Seen(NamedTuple):
    path: str
    authorization: str | None
    content_type: str | None
    body: dict


class FakeDiscord(FileServer):
    """The Discord calls gexsrv makes (open a DM channel, post a message) and an incoming webhook at /hook, each
    POST recorded; GETs are the FileServer's (GET /status/404 fails a history download)."""

    def __init__(self, folder):
        self.seen = []
        super().__init__(folder)

    def wait_for(self, n, timeout=30):
        eventually(lambda: len(self.seen) >= n, f"{n} requests at the fake Discord", timeout)

    def to(self, path):
        return [s for s in self.seen if s.path == path]

    def _handler(self):
        fake, files = self, super()._handler()

        class Discord(files):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with fake.lock:
                    fake.seen.append(Seen(self.path, self.headers["Authorization"], self.headers["Content-Type"],
                                          body))
                if self.path == DM_OPEN:
                    self.send_json(200, {"id": DM_CHANNEL, "type": 1})
                elif self.path.startswith("/api/v10/channels/") and self.path.endswith("/messages"):
                    self.send_json(200, {"id": "1", "content": body["content"]})
                elif self.path == "/hook":
                    self.send(204)
                else:
                    self.send_json(404, {"message": "404: Not Found"})

        return Discord


class Dashboard(ThreadedServer):
    """A fake dashboard: records every POST as (path, content type, body) and answers `code`; with code None it
    holds the request until closed, past gexsrv's 2 s timeout, and never answers."""

    def __init__(self, code):
        self.code = code
        self.got = []
        self.release = threading.Event()
        super().__init__(self._handler())

    def close(self):
        self.release.set()
        super().close()

    def _handler(self):
        dashboard = self

        class Dash(Handler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                dashboard.got.append((self.path, self.headers["Content-Type"], body))
                if dashboard.code is None:
                    dashboard.release.wait(30)
                    self.close_connection = True
                    return
                self.send(dashboard.code, b'{"accepted": true}')  # not what gexsrv answers: its reply is its own

        return Dash


class FakeGexbot:
    """gexbot: the API on one server, the file host and its mirror on two more.

    History API: GET /v2/hist/{ticker}/{package}/{category}/{date}?noredirect with `Authorization: Bearer
    GEXBOT_KEY` answers {"url": "<host>/files/<name>?sig=<generation>.<n>"} for a day it has a file for, else 404;
    401 without the key; 429 the first time for the days in `busy_once`. Files: 403 for a signature from an earlier
    generation (expire()); the host answers 503 for names in `outage` and holds names in `hang` until release().

    Live API, only when `live` (else 404, so a backfill test's poller stores nothing): /{TICKER}/classic/zero
    answers a snapshot at TS, /{TICKER}/classic/zero/maxchange a maxchange, each request recorded in `seen` as
    (path, its key parameters); QQQ fails with 502."""

    def __init__(self, folder, live=False):
        self.folder = folder
        self.live = live
        self.seen = []
        self.files = {}  # (ticker, package, category, date) -> file name
        self.busy_once, self.outage, self.hang = set(), set(), set()
        self.generation, self.issued = 1, 0
        self.api_log = []  # (monotonic time, ticker, package, category, date) of each request with the key
        self.refused = 0  # requests without it
        self.file_log = []  # (host role, name, status)
        self.hanging = threading.Event()
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.servers = {role: ThreadedServer(self._handler(role)) for role in ("api", "host", "mirror")}
        self.url = {role: srv.url for role, srv in self.servers.items()}

    def __enter__(self):
        for srv in self.servers.values():
            srv.__enter__()
        return self

    def __exit__(self, *exc):
        self.released.set()
        for srv in self.servers.values():
            srv.close()

    def flags(self, data_dir, rate=50):
        host, mirror = (urllib.parse.urlsplit(self.url[role]).netloc for role in ("host", "mirror"))
        return ["--data-dir", str(data_dir), "--gexbot-api-url", self.url["api"], "--gexbot-api-rate", str(rate),
                "--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32",
                "--history-fallback-hosts", f"{host}={mirror}", "--history-backoff-seconds", "0.05"]

    def expire(self):
        """Every URL handed out so far stops working, as pre-signed URLs do."""
        with self.lock:
            self.generation += 1

    def asked(self, since=0):
        with self.lock:
            return [entry[1:] for entry in self.api_log[since:]]

    def _link(self, name):
        with self.lock:
            self.issued += 1
            return f"{self.url['host']}/files/{name}?sig={self.generation}.{self.issued}"

    def _handler(self, role):
        fake = self

        class Gexbot(Handler):
            def do_GET(self):
                parts = urllib.parse.urlsplit(self.path)
                if role != "api":
                    self.file(parts)
                elif fake.live and not parts.path.startswith("/v2/hist/"):
                    self.live(parts)
                else:
                    self.api(parts)

            def live(self, parts):
                with fake.lock:
                    fake.seen.append((parts.path, urllib.parse.parse_qs(parts.query).get("key")))
                ticker = parts.path.split("/")[1]
                if ticker == "QQQ":
                    return self.send_error(502)
                if parts.path.endswith("/maxchange"):
                    body = {"timestamp": TS, "ticker": ticker, "current": [100, 5.5], "one": [101, 1.5]}
                else:
                    body = snapshot(ticker=ticker, timestamp=TS, n_strikes=3)
                self.send_json(200, body)

            def api(self, parts):
                segments = parts.path.strip("/").split("/")
                if segments[:2] != ["v2", "hist"] or parts.query != "noredirect":
                    return self.send(404, b"no such route")
                if self.headers.get("Authorization") != f"Bearer {GEXBOT_KEY}":
                    with fake.lock:
                        fake.refused += 1
                    return self.send(401, b"bad key")
                day = tuple(segments[2:])
                with fake.lock:
                    fake.api_log.append((time.monotonic(), *day))
                    busy = day in fake.busy_once
                    fake.busy_once.discard(day)
                if busy:
                    return self.send(429, b"slow down")
                if day not in fake.files:
                    return self.send(404, b"no data")
                self.send(200, json.dumps({"url": fake._link(fake.files[day])}).encode())

            def file(self, parts):
                name = parts.path.rsplit("/", 1)[-1]
                generation = int(urllib.parse.parse_qs(parts.query)["sig"][0].split(".")[0])
                if role == "host" and name in fake.hang:
                    fake.hanging.set()
                    fake.released.wait(60)
                    code = 503
                elif generation < fake.generation:
                    code = 403
                elif role == "host" and name in fake.outage:
                    code = 503
                else:
                    code = 200
                with fake.lock:
                    fake.file_log.append((role, name, code))
                self.send(code, (fake.folder / name).read_bytes() if code == 200 else b"no")

        return Gexbot
