"""The front's way to the engine's HTTP server (processes = 2): the engine's routes (gexsrv.app.STORAGE_ROUTES)
are passed on as they came, over a Unix socket, and the engine's reply passed back as it is.

The engine checks what a request must pass (origin, host, token, signature: a signature is used once, so it is
checked in one place only). While no engine runs, or when it ends before it answers, the reply is 503 with
Retry-After, as for any database away. Bodies of passed-on requests are small (history URLs, the SQL text in a
query string): they are read whole, within max_body_bytes.
"""

import socket

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders
from tornado.netutil import Resolver
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from gexsrv.handlers import ApiError, BaseHandler, announces_body

# Hop-by-hop headers (RFC 9110 7.6.1) and those each hop sets for itself.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade",
              "content-length", "date", "server", "expect"}
# The engine's longest answers: /integrity over a large database, a day's heatmap from the lake.
REQUEST_TIMEOUT_S = 600
OWN_TIMEOUT_S = 2  # the front's own asks (/health, /metrics): an engine stuck must not hold them up
MOST_AT_ONCE = 64
# Tornado's client sends these without a Content-Length chunked: the engine, refusing one on a route that takes no
# body, answers and closes before the last chunk, whose write fails. Passed on with Content-Length: 0 instead.
CHUNKED_WITHOUT_LENGTH = ("POST", "PUT", "PATCH")


class UnixResolver(Resolver):
    """Every host name is the engine's socket."""

    def initialize(self, path):
        self.path = path

    async def resolve(self, host, port, family=socket.AF_UNSPEC):
        return [(socket.AF_UNIX, self.path)]


class Engine:
    """The engine's HTTP server as the front reaches it: fetch() a request, or EngineAway."""

    def __init__(self, path, link, max_body_bytes):
        self.link = link  # gexsrv.engine_link.EngineLink: whether an engine runs, and why not
        self.client = SimpleAsyncHTTPClient(force_instance=True, resolver=UnixResolver(path=path),
                                            max_clients=MOST_AT_ONCE, max_body_size=1 << 40,
                                            max_buffer_size=1 << 40)
        self.max_body_bytes = max_body_bytes

    async def fetch(self, method, uri, headers, body=None, timeout=REQUEST_TIMEOUT_S):
        """The engine's response to the request; EngineAway when there is none to give."""
        if self.link.status is None:
            raise EngineAway(self.link.why_waiting())
        # A body waits for the engine's 100 Continue: a request it refuses from its head (a bad token) is answered
        # and the connection closed, and a body sent meanwhile would meet a broken pipe instead of that answer.
        request = HTTPRequest(f"http://engine{uri}", method, headers=headers, body=body,
                              allow_nonstandard_methods=True, follow_redirects=False, decompress_response=False,
                              request_timeout=timeout, expect_100_continue=bool(body))
        try:
            response = await self.client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # not connected, timed out, or the engine ended while answering
            raise EngineAway(f"the engine did not answer ({exc}); retry shortly") from None
        if response.code == 599:  # no HTTP reply: not connected, or the engine ended meanwhile
            raise EngineAway(f"the engine did not answer ({response.error}); retry shortly")
        return response

    def close(self):
        self.client.close()


class EngineAway(Exception):
    """No engine answers now: it is starting, or being started again."""


def forwarded(headers):
    return HTTPHeaders({name: value for name, value in headers.get_all() if name.lower() not in HOP_BY_HOP})


def passed_on(routes, engine, own=None):
    """The front's routes for the engine's (pattern, handler, deps) routes; each takes a body where its handler
    does (body_methods), so a body it refuses is refused from the request's head, unread, as the engine would.
    own: {pattern: (ProxyHandler subclass, its extra deps)} for routes whose reply the front adds to."""
    own = own or {}
    return [(pattern, own.get(pattern, (ProxyHandler, {}))[0],
             dict(engine=engine, body_methods=handler.body_methods, **own.get(pattern, (None, {}))[1]))
            for pattern, handler, _ in routes]


class ProxyHandler(BaseHandler):
    """One of the engine's routes: the engine's reply."""

    def prepare(self):
        self.refuse_foreign()  # the gate again in the engine: a refusal here reads no body
        method, limit = self.request.method, self.engine.max_body_bytes
        if method not in self.body_methods and announces_body(self.request.headers):
            raise ApiError(413, f"{method} {self.request.path} takes no request body")
        length = self.request.headers.get("Content-Length", "")
        if length.isdigit() and int(length) > limit:
            raise ApiError(413, f"body of {length} bytes is over the {limit}-byte limit")
        self.chunks = []
        self.size = 0

    def data_received(self, chunk):
        self.size += len(chunk)
        if self.size <= self.engine.max_body_bytes:  # a chunked body, counted as it comes
            self.chunks.append(chunk)

    async def pass_on(self, *args):
        if self.size > self.engine.max_body_bytes:
            raise ApiError(413, f"body is over the {self.engine.max_body_bytes}-byte limit")
        method = self.request.method
        body = b"".join(self.chunks) if method in self.body_methods or method in CHUNKED_WITHOUT_LENGTH else None
        try:
            response = await self.engine.fetch(method, self.request.uri,
                                               forwarded(self.request.headers), body)
        except EngineAway as exc:
            raise ApiError(503, f"the database is not available now: {exc}",
                           retry_after=self.conf.retry_after_seconds) from None
        self.set_status(response.code, response.reason)
        self._headers = HTTPHeaders()  # the engine's headers, not this handler's defaults
        for name, value in forwarded(response.headers).get_all():
            self.add_header(name, value)
        self.finish(await self.passed_back(response) or None)  # a 204 or 304 carries none

    async def passed_back(self, response):
        """The body the client gets of the engine's response: the engine's own (a route may add to it)."""
        return response.body

    get = post = put = patch = delete = head = options = pass_on
