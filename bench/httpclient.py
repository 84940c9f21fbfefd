"""The load generator's HTTP/1.1 client: one keep-alive connection that POSTs a body and reads the reply's status.

The generator shares the machine's two cores with the server it measures, so its own CPU per request is taken
from the server's: aiohttp took 0.28 ms of CPU per 45 KB snapshot at saturation, this client 0.13
(docs/performance.md, Disk stalls). It reads what the measured servers send: a status line, headers with a
Content-Length, that many bytes of body; a reply without a Content-Length is an error (NoContentLength). After
`Connection: close`, or any error, the next request opens a new connection.
"""

import asyncio

HEAD = b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
HEADERS_END = b"\r\n\r\n"


class NoContentLength(Exception):
    """A reply this client cannot delimit."""


class ReplyReader(asyncio.Protocol):
    """Collects one reply at a time; `waiter` resolves to its status."""

    def __init__(self):
        self.transport = None
        self.buffer = bytearray()
        self.waiter = None
        self.reply_end = None  # where the reply being read ends in the buffer, once its headers are in
        self.status = None
        self.closing = False  # the reply said Connection: close

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        if self.reply_end is None and not self._read_head():
            return
        if len(self.buffer) >= self.reply_end:
            del self.buffer[:self.reply_end]
            self.reply_end = None
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    def _read_head(self):
        end = self.buffer.find(HEADERS_END)
        if end < 0:
            return False
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        self.status = int(lines[0].split(None, 2)[1])
        pairs = (line.partition(b":") for line in lines[1:])
        fields = {name.strip().lower(): value.strip() for name, _, value in pairs}
        self.closing = fields.get(b"connection", b"").lower() == b"close"
        if b"content-length" not in fields:
            self._fail(NoContentLength(lines[0].decode(errors="replace")))
            return False
        self.reply_end = end + len(HEADERS_END) + int(fields[b"content-length"])
        return True

    def _fail(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc or ConnectionResetError("the server closed the connection"))


class Connection:
    """POSTs to host:port over one connection at a time, opened when first needed."""

    def __init__(self, host, port, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self.authority = f"{host}:{port}".encode()
        self.reader = None

    async def post(self, path, body):
        """The reply's status; raises OSError, asyncio.TimeoutError or NoContentLength when there is none."""
        try:
            async with asyncio.timeout(self.timeout):
                reader = self.reader or await self._open()
                reader.waiter = asyncio.get_running_loop().create_future()
                reader.transport.writelines([HEAD % (path.encode(), self.authority, len(body)), body])
                status = await reader.waiter
        except BaseException:
            self.close()
            raise
        if reader.closing:
            self.close()
        return status

    async def _open(self):
        _, self.reader = await asyncio.get_running_loop().create_connection(ReplyReader, self.host, self.port)
        return self.reader

    def close(self):
        if self.reader is not None:
            self.reader.transport.close()
            self.reader = None
