"""The original's gexbot API poller: at start and then every poll interval, fetch each ticker's classic/zero
snapshot and maxchange and store them exactly as POST /gex would (endpoint gex_zero). On only when an API key is
set. Each response is decoded inside an envelope naming its ticker and `package/category` path, so the one
decoding rule (gexsrv.decode) fills in what the API leaves out."""

import logging
import time
import urllib.parse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import IOLoop, PeriodicCallback

from gexsrv.decode import decode_gex
from gexsrv.intake import Busy, NotDurable
from gexsrv.journalline import gex_header
from gexsrv.payloads import PayloadError
from gexsrv.streak import Streak

log = logging.getLogger("gexsrv.poller")

TICKERS = ("NQ_NDX", "ES_SPX", "SPY", "QQQ", "SPX", "NDX")
PATHS = ("classic/zero", "classic/zero/maxchange")


class Poller:
    def __init__(self, api_url, api_key, interval_s, intake, rules):
        self.api_url = api_url.rstrip("/")
        self.rules = rules
        self.api_key = api_key
        self.intake = intake
        self.timer = PeriodicCallback(self.poll, interval_s * 1000)
        self.client = AsyncHTTPClient()
        self.last_poll_at = None
        self.stored = 0
        self.errors = 0
        self.streak = Streak("poller")  # rounds in a row in which every fetch failed (a wrong key, no network)

    def start(self):
        self.timer.start()
        IOLoop.current().spawn_callback(self.poll)

    def stop(self):
        self.timer.stop()

    def url(self, ticker, path):
        return f"{self.api_url}/{ticker}/{path}?" + urllib.parse.urlencode({"key": self.api_key})

    async def poll(self):
        self.last_poll_at = time.time()
        errors = [await self.fetch_and_store(ticker, path) for ticker in TICKERS for path in PATHS]
        if all(errors):
            self.streak.failed(errors[-1])
        else:
            self.streak.succeeded()

    async def fetch_and_store(self, ticker, path):
        """None once stored (or found a duplicate), else what went wrong."""
        try:
            response = await self.client.fetch(self.url(ticker, path), connect_timeout=5, request_timeout=10)
            envelope = b'{"ticker":"%s","endpoint":"%s","data":%s}' % (ticker.encode(), path.encode(), response.body)
            record = decode_gex(envelope, self.rules, round(time.time() * 1000))
            (duplicate,) = await self.intake.accept([(record, gex_header(record, "poller"))], envelope)
            self.stored += duplicate is not True
            return None
        except (HTTPClientError, OSError, PayloadError, Busy, NotDurable) as exc:
            self.errors += 1
            log.warning("poll of %s/%s failed: %s", ticker, path, exc)
            return f"{ticker}/{path}: {type(exc).__name__}: {exc}"

    def report(self):
        return {"enabled": True, "last_poll_at": self.last_poll_at, "stored": self.stored, "errors": self.errors}
