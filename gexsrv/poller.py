"""The original's gexbot API poller: every poll interval, fetch each ticker's classic/zero snapshot and
maxchange and store them exactly as POST /gex would (endpoint gex_zero). On only when an API key is set."""

import logging
import time
import urllib.parse

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import PeriodicCallback

from gexsrv.buffer import Overloaded
from gexsrv.payloads import PayloadError, decode_gex
from gexsrv.store import StorageError

log = logging.getLogger("gexsrv.poller")

TICKERS = ("NQ_NDX", "ES_SPX", "SPY", "QQQ", "SPX", "NDX")
PATHS = ("classic/zero", "classic/zero/maxchange")


class Poller:
    def __init__(self, api_url, api_key, interval_s, buffer):
        self.api_url = api_url.rstrip("/")
        self.api_key = api_key
        self.buffer = buffer
        self.timer = PeriodicCallback(self.poll, interval_s * 1000)
        self.client = AsyncHTTPClient()
        self.last_poll_at = None
        self.stored = 0
        self.errors = 0

    def start(self):
        self.timer.start()

    def stop(self):
        self.timer.stop()

    def url(self, ticker, path):
        return f"{self.api_url}/{ticker}/{path}?" + urllib.parse.urlencode({"key": self.api_key})

    async def poll(self):
        self.last_poll_at = time.time()
        for ticker in TICKERS:
            for path in PATHS:
                await self.fetch_and_store(ticker, path)

    async def fetch_and_store(self, ticker, path):
        try:
            response = await self.client.fetch(self.url(ticker, path), connect_timeout=5, request_timeout=10)
            record = decode_gex(response.body, "gex_zero", round(time.time() * 1000))
            self.stored += await self.buffer.put(record)
        except (HTTPClientError, OSError, PayloadError, Overloaded, StorageError) as exc:
            self.errors += 1
            log.warning("poll of %s/%s failed: %s", ticker, path, exc)

    def report(self):
        return {"enabled": True, "last_poll_at": self.last_poll_at, "stored": self.stored, "errors": self.errors}
