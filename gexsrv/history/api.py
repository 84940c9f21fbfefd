"""The gexbot history API: where a day's file is.

GET {api}/v2/hist/{ticker}/{package}/{category}/{YYYY-MM-DD}?noredirect, with the key as a Bearer token, answers
{"url": <a pre-signed download link>}, or 404 when there is no file for that day. Requests are spaced by a rate
limit (every request counts, retries too); 429, 5xx and network errors are retried with exponential backoff.
"""

import asyncio
import logging
import time
import urllib.parse

import msgspec
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import SimpleAsyncHTTPClient

log = logging.getLogger("gexsrv.history")

NETWORK_ERROR = 599  # Tornado's code for "no HTTP response"
REQUEST_TIMEOUT_S = 60.0
LONGEST_RETRY_AFTER_S = 60.0


class KeyRefused(Exception):
    """No key, or the API refused it (401/403): every request would fail alike."""


class ApiFailed(Exception):
    """This day's URL could not be had."""


class Answer(msgspec.Struct):
    url: str


ANSWER = msgspec.json.Decoder(Answer)


class RateLimit:
    """Request starts at least 1/per_second apart, in the order callers asked."""

    def __init__(self, per_second):
        self.interval = 1.0 / per_second
        self.next_at = 0.0

    async def wait(self):
        now = time.monotonic()
        at = max(now, self.next_at)
        self.next_at = at + self.interval  # taken before sleeping: a concurrent caller gets the slot after
        await asyncio.sleep(at - now)


class HistApi:
    def __init__(self, base_url, key, per_second, attempts, backoff_s, connect_timeout):
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.limit = RateLimit(per_second)
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.connect_timeout = connect_timeout
        self.client = None  # made on first use, on the running event loop

    @classmethod
    def from_settings(cls, conf):
        return cls(conf.gexbot_api_url, conf.gexbot_api_key, conf.gexbot_api_rate, conf.gexbot_api_attempts,
                   conf.history_backoff_seconds, conf.history_connect_timeout)

    def close(self):
        if self.client:
            self.client.close()
            self.client = None

    def url(self, ticker, package, category, day):
        path = "/".join(urllib.parse.quote(part, safe="") for part in (ticker, package, category, day.isoformat()))
        return f"{self.base_url}/v2/hist/{path}?noredirect"

    async def file_url(self, ticker, package, category, day):
        """The download link of that day's file, or None when the API has none (404)."""
        if not self.key:
            raise KeyRefused("no gexbot API key: set GEXBOT_API_KEY")
        what = f"{ticker} {package}/{category} {day}"
        for attempt in range(1, self.attempts + 1):
            await self.limit.wait()
            code, body, retry_after = await self._get(self.url(ticker, package, category, day))
            if code == 200:
                return _link(body, what)
            if code == 404:
                return None
            if code in (401, 403):
                raise KeyRefused(f"the gexbot API refused the key (HTTP {code}); check GEXBOT_API_KEY")
            reason = "network error" if code == NETWORK_ERROR else f"HTTP {code}"
            if not (code == 429 or code >= 500) or attempt == self.attempts:
                raise ApiFailed(f"the gexbot API answered {reason} for {what}")
            delay = max(self.backoff_s * 2 ** (attempt - 1), retry_after)
            log.warning("the gexbot API answered %s for %s; attempt %d in %.1f s", reason, what, attempt + 1, delay)
            await asyncio.sleep(delay)

    async def _get(self, url):
        """(status code, body, seconds of its Retry-After); code 599 when no answer came."""
        if self.client is None:
            self.client = SimpleAsyncHTTPClient(force_instance=True)
        request = HTTPRequest(url, headers={"Authorization": f"Bearer {self.key}", "Accept": "application/json"},
                              follow_redirects=False, connect_timeout=self.connect_timeout,
                              request_timeout=REQUEST_TIMEOUT_S)
        try:
            response = await self.client.fetch(request, raise_error=False)
        except (HTTPClientError, OSError):  # raise_error=False still raises when no response came
            return NETWORK_ERROR, b"", 0.0
        return response.code, response.body or b"", _seconds(response.headers.get("Retry-After"))


def _link(body, what):
    try:
        link = ANSWER.decode(body).url
    except msgspec.DecodeError as exc:
        raise ApiFailed(f"the gexbot API's answer for {what} is not {{\"url\": ...}}: {exc}") from None
    if urllib.parse.urlsplit(link).scheme not in ("http", "https"):
        raise ApiFailed(f"the gexbot API's answer for {what} holds no http(s) URL")
    return link


def _seconds(retry_after):
    """A Retry-After in seconds (APIs like this one do not send its date form), capped; 0 when absent."""
    if retry_after and retry_after.strip().isdigit():
        return min(float(retry_after), LONGEST_RETRY_AFTER_S)
    return 0.0
