"""What the front and the engine say to each other, one module: typed messages on a Unix stream socket, each a
4-byte big-endian length and a msgspec.msgpack body (a tagged union of the Structs below).

A request body never crosses: the front makes records durable in the journal and says how far (Durable); the
engine reads them back from the journal's files. Reads do not cross either: the front passes them to the engine's
HTTP server on a Unix socket (gexsrv.proxy). What crosses here is the journal's progress both ways, the engine's
process, and the keys history imports commit (for the front's duplicate index, gexsrv.keys). msgpack rather than JSON: the hot messages (Durable, Ingested)
are arrays of small ints, which msgpack encodes and decodes without text.

Both sides use Channel on an asyncio loop; the spawner (gexsrv.spawner), which has no loop and no thread, uses
send_blocking and receive_blocking.
"""

import asyncio
import socket
import struct

import msgspec
from msgspec import Raw, Struct

from gexsrv.position import Position

LENGTH = struct.Struct(">I")
MAX_FRAME = 256 << 20  # far past any reply: a length beyond it means the stream is out of step


class Durable(Struct, tag=True, array_like=True, gc=False):
    """Front -> engine: the journal is fsynced through this position (at most one per group fsync), and the first
    seq an ?ack=ingested request waits for (0: none), which the engine ingests without waiting out its interval."""

    position: Position
    wanted: int = 0


class Outcome(Struct, array_like=True, gc=False):
    """One ingested seq: stored (True), a duplicate (False), or refused and quarantined (error set)."""

    seq: int
    stored: bool
    error: str | None = None


class Ingested(Struct, tag=True, array_like=True, gc=False):
    """Engine -> front: ingest committed through this position, with each of its seqs' outcomes."""

    position: Position
    outcomes: list[Outcome]


class Status(Struct, tag=True, array_like=True):
    """Engine -> front, periodically: the engine's process, and why ingest waits if it does."""

    pid: int
    started: float  # unix time
    cpu_s: float
    waiting_because: str = ""  # the engine's Ingester.why_waiting(), or empty


class Fatal(Struct, tag=True, array_like=True):
    """Engine -> front: it cannot run at all (the database is not DuckDB's): the front stops, saying why."""

    reason: str


class KeysLoaded(Struct, tag=True, array_like=True):
    """Engine -> front: the keys stored from `since` on and the newest timestamps (gexsrv.keys.RecentKeys.load),
    read once the database is writable."""

    keys: list
    newest: list  # (group, timestamp ms) pairs


class KeysCommitting(Struct, tag=True, array_like=True):
    """Engine -> front: a history import is about to commit these keys; the import waits for the Noted of id."""

    id: int
    keys: list


class Noted(Struct, tag=True, array_like=True):
    """Front -> engine: the keys of KeysCommitting `id` are marked unknown in the duplicate index."""

    id: int


class KeysCommitted(Struct, tag=True, array_like=True):
    """Engine -> front: a history import committed these keys."""

    keys: list


class Stop(Struct, tag=True, array_like=True):
    """Front -> engine: finish the ingest of what is durable, save the position, and exit."""


class Spawn(Struct, tag=True, array_like=True):
    """Front -> spawner: fork a child running `target` ("module:function") with `args` (msgpack)."""

    target: str
    args: Raw


class Spawned(Struct, tag=True, array_like=True):
    """Spawner -> front: the child's pid (its channel's end follows as a passed descriptor), or why not."""

    pid: int
    error: str | None = None


class Exited(Struct, tag=True, array_like=True):
    """Spawner -> front: a child it forked has ended, with its wait status."""

    pid: int
    status: int


Message = (Durable | Ingested | Status | Fatal | KeysLoaded | KeysCommitting | Noted | KeysCommitted | Stop | Spawn
           | Spawned | Exited)
ENCODER = msgspec.msgpack.Encoder()
DECODER = msgspec.msgpack.Decoder(Message)


class ChannelError(Exception):
    """The stream broke the framing rules: the peer is not speaking this protocol (or is out of step)."""


def frame(message):
    body = ENCODER.encode(message)
    return LENGTH.pack(len(body)) + body


def _length(header):
    (size,) = LENGTH.unpack(header)
    if size > MAX_FRAME:
        raise ChannelError(f"a frame of {size} bytes is past the limit of {MAX_FRAME}")
    return size


def send_blocking(sock, message, fds=()):
    """Send one message; with fds, the descriptors travel with its first byte (SCM_RIGHTS)."""
    data = frame(message)
    sent = socket.send_fds(sock, [data], list(fds)) if fds else sock.send(data)
    if sent < len(data):
        sock.sendall(data[sent:])


def _exactly(sock, size, fds_wanted):
    """size bytes from sock and any descriptors that came with them; None at EOF before the first byte."""
    data, fds = bytearray(), []
    while len(data) < size:
        if fds_wanted and not data:
            chunk, got, _, _ = socket.recv_fds(sock, size, fds_wanted)
            fds += got
        else:
            chunk = sock.recv(size - len(data))
        if not chunk:
            if data:
                raise ChannelError(f"the stream ended inside a frame ({len(data)} of {size} bytes)")
            return None, fds
        data += chunk
    return bytes(data), fds


def receive_blocking(sock, fds_wanted=0):
    """(message, descriptors passed with it); (None, []) at EOF."""
    header, fds = _exactly(sock, LENGTH.size, fds_wanted)
    if header is None:
        return None, fds
    body, _ = _exactly(sock, _length(header), 0)
    if body is None:
        raise ChannelError("the stream ended after a frame's length")
    return DECODER.decode(body), fds


class Channel:
    """One end of the front <-> engine socket, on the running loop."""

    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def over(cls, sock):
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME)
        return cls(reader, writer)

    def send(self, message):
        """Queue one message; the transport writes it without blocking the loop."""
        self.writer.write(frame(message))

    async def receive(self):
        """The next message; None once the peer has closed its end (or died)."""
        try:
            header = await self.reader.readexactly(LENGTH.size)
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise ChannelError("the stream ended inside a frame's length") from None
            return None
        except ConnectionError:  # reset, or a pipe our own send found broken: the peer is gone either way
            return None
        try:
            body = await self.reader.readexactly(_length(header))
        except (asyncio.IncompleteReadError, ConnectionError):
            raise ChannelError("the stream ended inside a frame") from None
        return DECODER.decode(body)

    async def close(self):
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass
