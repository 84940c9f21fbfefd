"""Thin HTTP handlers: read the body, decode it, hand it to the intake (journal, then ingest), reply in JSON."""

import contextlib
import time

import msgspec
from tornado.web import HTTPError, RequestHandler, stream_request_body

from gexsrv import auth
from gexsrv.decode import decode_gex
from gexsrv.intake import Busy, NotDurable, NotIngested
from gexsrv.journalline import gex_header
from gexsrv.payloads import PayloadError
from gexsrv.store import RecordRefused, StorageError

from gexsrv.validate.options import OptionsError

ACKS = ("journal", "ingested")
NOT_STORED = {"outcome": "not stored"}  # what a refused write's 503 says of it


class ApiError(HTTPError):
    """An error reply: `error` is what went wrong, `field` the JSON path it concerns, if any."""

    def __init__(self, status, error, field=None, retry_after=None, extra=None):
        super().__init__(status, reason=None)
        self.error = error
        self.field = field
        self.retry_after = retry_after
        self.extra = extra or {}


@contextlib.contextmanager
def database_or_503(retry_after, write=False):
    """A StorageError inside becomes 503 + Retry-After: the database is away for now (gexsrv.supervisor); the
    reply to a write says it was not stored."""
    try:
        yield
    except StorageError as exc:
        raise ApiError(503, f"the database is not available now: {exc}", retry_after=retry_after,
                       extra=NOT_STORED if write else None) from None


def announces_body(headers):
    """Whether a request's head says a body follows (a Content-Length other than 0, or chunked)."""
    length = headers.get("Content-Length", "0")
    return "Transfer-Encoding" in headers or not (length.isdigit() and int(length) == 0)


# Streaming, so that no route buffers a body: Tornado would read a whole one (up to its hard stop, outside the
# bodies_in_flight budget) before any handler code runs. Writes read theirs (IngestHandler); the others refuse one.
@stream_request_body
class BaseHandler(RequestHandler):
    # When authentication is on (gexsrv.auth), a GET needs the same credentials as a write, its signature taken
    # over the request target (path and query). Routes that show no stored data set open_to_all; a route read by
    # a client that can send a token but cannot sign (a Prometheus scrape) sets signed_reads = False.
    open_to_all = False
    signed_reads = True
    body_methods = ()  # the methods of the route whose requests carry a body

    def initialize(self, **deps):
        for name, value in deps.items():
            setattr(self, name, value)

    signature = None  # the signature this request claimed (gexsrv.auth.Signatures)

    def prepare(self):
        self.refuse_foreign()
        self.refuse_unwanted()
        if self.request.method == "GET" and not self.open_to_all:
            self.refuse_if(auth.token_problem(self.conf, self.request.headers.get("Authorization")))
            if self.signed_reads:
                self.check_signature(b"")

    def foreign(self):
        """Why the request's Origin or Host is not allowed (gexsrv.origins), or None; judged once per request,
        though set_default_headers asks again for an error reply."""
        if not hasattr(self, "_foreign"):
            self._foreign = self.application.settings["gate"].refusal(self.request)
        return self._foreign

    def refuse_foreign(self):
        """A page of a site not allowed, or a Host name not allowed, gets 403 before anything else is looked at."""
        refusal = self.foreign()
        if refusal:
            raise ApiError(403, refusal[0], extra={"setting": refusal[1]})

    def refuse_if(self, problem):
        if problem:
            raise ApiError(401, problem)

    def check_signature(self, body):
        request = self.request
        problem, self.signature = self.application.settings["signatures"].check(
            request.method, request.uri, body, request.headers, time.time())
        self.refuse_if(problem)

    def on_finish(self):
        if self.signature and (self.get_status() >= 300 or not self._finished):  # refused, failed or cut off
            self.application.settings["signatures"].release(self.signature)
            self.signature = None

    def refuse_unwanted(self):
        """A method the route does not answer, or a body it does not take, is refused from the request's head:
        none of the body is read, and the connection is closed after the reply."""
        method = self.request.method
        if getattr(type(self), method.lower()) is getattr(RequestHandler, method.lower()):
            raise ApiError(405, f"{method} is not answered on {self.request.path}")
        if method not in self.body_methods and announces_body(self.request.headers):
            raise ApiError(413, f"{method} {self.request.path} takes no request body")

    def data_received(self, chunk):
        pass  # what arrives of a refused body before its connection closes is dropped

    @property
    def conf(self):
        """The gexsrv Settings (set_default_headers runs before initialize, so they live in the Application)."""
        return self.application.settings["gexsrv"]

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json")
        self.set_header("Vary", "Origin")
        origin = self.request.headers.get("Origin")
        if origin is not None and not self.foreign():
            self.set_header("Access-Control-Allow-Origin", origin)  # an allowed page's, never `*`
            self.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
            self.set_header("Access-Control-Allow-Headers",
                            "Content-Type, Authorization, X-Signature, X-Signature-Timestamp")

    def options(self, *args):
        # Private Network Access: Chrome asks before a public site's script reaches a private address (the
        # userscript on the Unusual Whales site posting to a server on the LAN); prepare() let only allowed
        # origins this far.
        if self.request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
            self.set_header("Access-Control-Allow-Private-Network", "true")
        self.set_status(204)
        self.finish()

    def reply(self, status, body):
        self.set_status(status)
        self.finish(msgspec.json.encode(body))

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None))[1]
        body = {"status": "error", "error": self._reason}
        if isinstance(exc, ApiError):
            body["error"] = exc.error
            if exc.field:
                body["field"] = exc.field
            body.update(exc.extra)
            if exc.retry_after is not None:
                self.set_header("Retry-After", str(exc.retry_after))
            if exc.status_code == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="gexsrv"')
        elif isinstance(exc, HTTPError) and exc.log_message:
            body["error"] = exc.log_message % exc.args if exc.args else exc.log_message
        self.finish(msgspec.json.encode(body))


class NotFoundHandler(BaseHandler):
    def prepare(self):
        if self.request.method != "OPTIONS":  # a CORS preflight is answered on any path
            raise ApiError(404, f"no such path: {self.request.path}")
        super().prepare()


class HealthHandler(BaseHandler):
    open_to_all = True  # liveness probes; it shows the server's state, no stored data

    async def get(self):
        self.reply(200, await self.health())


class IntegrityHandler(BaseHandler):
    """GET /integrity: the validation report (gexsrv.validate) for the filters in the query arguments."""

    async def get(self):
        query = {name: self.get_argument(name) for name in self.request.arguments}
        try:
            report = await self.integrity(query)
        except OptionsError as exc:
            raise ApiError(400, str(exc))
        self.reply(503 if report.exit_code == 2 else 200, report)


@stream_request_body
class IngestHandler(BaseHandler):
    """Reads the body as it streams in, so an oversized one is refused from its Content-Length alone."""

    body_methods = ("POST",)
    held = 0  # bytes counted against bodies_in_flight_mb
    counted = False  # in requests_in_flight, which shutdown waits for
    token_problem = None  # why the request's bearer token is refused, answered once its body is in (body())

    def prepare(self):
        super().prepare()
        self.chunks = []
        self.size = 0
        if self.request.method == "POST":  # its signature is checked over the body, once it is in (body())
            self.refuse_bad_token()
        length = self.request.headers.get("Content-Length", "")
        declared = int(length) if length.isdigit() else 0
        if declared > self.conf.max_body_bytes:
            raise ApiError(413, f"body of {declared} bytes is over the {self.conf.max_body_bytes}-byte limit")
        if not self.token_problem:  # a refused body is read and dropped, never held
            self.hold(declared)
        self.application.settings["requests_in_flight"][0] += 1
        self.counted = True

    def refuse_bad_token(self):
        """A client that asked for 100 Continue sends no body before it: it is refused from the request's head. Any
        other is sending its body already, and a refusal from the head would close the connection under it: a client
        still sending (a large body) meets a reset instead of the 401. It is refused once the body is in."""
        problem = auth.token_problem(self.conf, self.request.headers.get("Authorization"))
        if self.request.headers.get("Expect", "").lower() == "100-continue":
            self.refuse_if(problem)
        self.token_problem = problem

    def hold(self, size):
        """Count bytes against the memory all bodies in flight may take; 503 past it."""
        in_flight = self.application.settings["bodies_in_flight"]
        limit = self.conf.bodies_in_flight_mb << 20
        if in_flight[0] + size > limit and size:
            raise ApiError(503, f"server busy: {in_flight[0] >> 20} MiB of request bodies are arriving",
                           retry_after=self.conf.retry_after_seconds, extra=NOT_STORED)
        in_flight[0] += size
        self.held += size

    def on_finish(self):
        super().on_finish()
        self.application.settings["bodies_in_flight"][0] -= self.held
        self.held = 0
        if self.counted:
            self.application.settings["requests_in_flight"][0] -= 1
            self.counted = False

    on_connection_close = on_finish

    def data_received(self, chunk):
        if self._finished:  # refused from the head (413, 503, a 401 after Expect): the rest is dropped as it closes
            return
        self.size += len(chunk)
        if self.token_problem:  # refused once it is in (body())
            return
        if self.size > self.held:  # a chunked body, counted as it comes
            self.hold(self.size - self.held)
        if self.size <= self.conf.max_body_bytes:
            self.chunks.append(chunk)

    def body(self):
        self.refuse_if(self.token_problem)
        if self.size > self.conf.max_body_bytes:
            raise ApiError(413, f"body is over the {self.conf.max_body_bytes}-byte limit")
        body = b"".join(self.chunks)
        self.check_signature(body)
        if not body.strip():
            raise ApiError(400, "empty request body", field="$")
        return body

    def received_ms(self):
        return round(time.time() * 1000)

    def ack(self):
        """`?ack=journal` (the default): reply once the request is fsynced in the journal; `?ack=ingested`: once
        its rows are committed in DuckDB."""
        given = self.get_query_arguments("ack")
        if len(given) > 1:
            raise ApiError(400, "ack is given more than once", field="ack")
        ack = given[0] if given else "journal"
        if ack not in ACKS:
            raise ApiError(400, f"ack must be one of {', '.join(ACKS)}, not {ack[:20]!r}", field="ack")
        return ack

    async def accept(self, items, body):
        """Journal the request's (record, header) items; their duplicate flags once durable (Intake.accept)."""
        retry = self.conf.retry_after_seconds
        try:
            return await self.intake.accept(items, body, self.ack())
        except Busy as exc:
            raise ApiError(503, f"server busy, not stored: {exc}", retry_after=retry, extra=NOT_STORED)
        except NotDurable as exc:
            raise ApiError(503, str(exc), retry_after=retry,
                           extra={"outcome": "unknown"} if exc.unknown else NOT_STORED)
        except NotIngested as exc:
            raise ApiError(503, str(exc), retry_after=retry, extra={"outcome": "journaled"})
        except RecordRefused as exc:
            raise ApiError(422, "journaled, but the database refused it on its own; it is kept in the quarantine "
                                f"(gexsrv_quarantine): {exc}")


def gex_reply(record, duplicate):
    """What a GEX record's reply says about it (the original's {"status", "ticker"} and more)."""
    return {"ticker": record.ticker, "endpoint": record.endpoint, "kind": record.kind,
            "timestamp": record.timestamp_ms, "duplicate": duplicate, "problems": record.problems}


class GexHandler(IngestHandler):
    async def post(self):
        body = self.body()
        try:
            record = decode_gex(body, self.rules, self.received_ms())
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        (duplicate,) = await self.accept([(record, gex_header(record, "/gex"))], body)
        self.reply(202, {"status": "ok", **gex_reply(record, duplicate)})
