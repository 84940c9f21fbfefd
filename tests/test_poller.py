"""The original's gexbot poller, against a local stand-in for the gexbot API on 127.0.0.1."""

import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import snapshot

TS = 1777492800


class FakeGexbot(BaseHTTPRequestHandler):
    """/{TICKER}/classic/zero answers a snapshot, /{TICKER}/classic/zero/maxchange a maxchange; QQQ fails."""

    seen = []

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        self.seen.append((url.path, urllib.parse.parse_qs(url.query).get("key")))
        ticker = url.path.split("/")[1]
        if ticker == "QQQ":
            self.send_error(502)
            return
        if url.path.endswith("/maxchange"):
            body = {"timestamp": TS, "ticker": ticker, "current": [100, 5.5], "one": [101, 1.5]}
        else:
            body = snapshot(ticker=ticker, timestamp=TS, n_strikes=3)
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def gexbot():
    api = ThreadingHTTPServer(("127.0.0.1", 0), FakeGexbot)
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    FakeGexbot.seen = []
    yield f"http://127.0.0.1:{api.server_address[1]}"
    api.shutdown()
    api.server_close()


def wait_for_polls(server, rounds, stored=10):
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        poller = server.get("/health").json()["poller"]
        if poller["errors"] >= 2 * rounds and poller["stored"] >= stored:
            return poller
        time.sleep(0.1)
    raise AssertionError(f"poller did not run {rounds} rounds: {poller}")


def test_poller_stores_each_tickers_snapshot_and_maxchange_once(start_server, gexbot):
    server = start_server(None, "--gexbot-api-url", gexbot, "--poll-interval", "0.2",
                          env={"GEXBOT_API_KEY": "k123"})
    poller = wait_for_polls(server, rounds=2)
    server.stop()
    assert poller["enabled"] is True and poller["stored"] == 10  # 5 tickers x 2 payloads, the re-polls are duplicates
    assert ("/SPX/classic/zero", ["k123"]) in FakeGexbot.seen
    assert ("/NQ_NDX/classic/zero/maxchange", ["k123"]) in FakeGexbot.seen
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp FROM gex_snapshots ORDER BY ticker").fetchall()
        maxchange = db.execute("SELECT ticker, current_strike, current_value, one_value FROM gex_maxchange "
                               "WHERE ticker = 'ES_SPX'").fetchall()
        strikes = db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
    tickers = ["ES_SPX", "NDX", "NQ_NDX", "SPX", "SPY"]
    assert snaps == [(t, "gex_zero", TS * 1000) for t in tickers]
    assert maxchange == [("ES_SPX", 100.0, 5.5, 1.5)]
    assert strikes == 5 * 3


def test_poller_polls_once_at_start_then_every_interval(start_server, gexbot):
    server = start_server(None, "--gexbot-api-url", gexbot, "--poll-interval", "3600",
                          env={"GEXBOT_API_KEY": "k123"})
    poller = wait_for_polls(server, rounds=1)
    assert poller["stored"] == 10 and poller["errors"] == 2
    assert len(FakeGexbot.seen) == 12  # one round: 6 tickers x 2 paths, long before the first interval ends


def test_poller_is_off_without_a_key(shared_server):
    assert shared_server.get("/health").json()["poller"] == {"enabled": False}
