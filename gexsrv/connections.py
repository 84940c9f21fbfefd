"""Bounds on connections: at most max_connections open at once, each closed after idle_connection_timeout_s
without a request, and the process' open-file limit raised so that the bound fits in it.

Without a cap, every idle keep-alive connection holds a descriptor: about 1,000 of them exhaust the usual limit
of 1,024, and then nothing can open a file (the journal's segments included). Past the cap, a new connection
gets a 503 written at once and is closed once the client has read it (LINGER_S at most).
"""

import asyncio
import logging
import resource
import socket

import msgspec
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError

log = logging.getLogger("gexsrv")

# Descriptors the server needs besides its connections: 15 at rest (database and WAL, journal segment and lock,
# the journal's reserve, stdio, the listening socket, epoll, the event loop's wakeup pipe and socket pair); more
# while it exports, archives, downloads history files or sends notifications.
OWN_DESCRIPTORS = 64
# A refused connection is drained for this long before it is closed: closing a socket whose request is unread
# resets it, and the client may lose the 503 (seen with a client that sent its request at once). At most
# LINGERING at a time; past that, one is closed as soon as the 503 is written.
LINGER_S = 2.0
LINGERING = 64
DRAIN_BYTES = 65536


class TooFewDescriptors(Exception):
    pass


def raise_descriptor_limit(max_connections):
    """Raise the soft open-file limit to the hard one (a usual soft limit is 1,024); TooFewDescriptors when
    max_connections and the server's own files do not fit in it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # some systems cap it below the hard limit: keep the soft one
            log.warning("cannot raise the open-file limit from %d to %d: %s", soft, hard, exc)
    needed = max_connections + LINGERING + OWN_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and needed > soft:
        raise TooFewDescriptors(
            f"--max-connections {max_connections} needs {needed} file descriptors ({LINGERING} for refusing "
            f"connections past it, {OWN_DESCRIPTORS} for the server's own files), but this process may open {soft} "
            "(ulimit -n); lower --max-connections, or raise the limit")


class Connections:
    """Open connections against the cap, and how many were refused since start (/health `connections`)."""

    def __init__(self, cap):
        self.cap = cap
        self.open = 0
        self.refused = 0
        self.lingering = 0  # refused ones not closed yet

    def report(self):
        return {"open": self.open, "max": self.cap, "refused": self.refused}


def busy_reply(cap, retry_after):
    body = msgspec.json.encode({"status": "error", "error": f"server busy: {cap} connections are open; try again "
                                "shortly", "outcome": "not stored"})
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (retry_after, len(body), body))


class CappedHTTPServer(HTTPServer):
    """An HTTPServer that serves at most connections.cap connections at once."""

    def initialize(self, *args, connections, retry_after, **kwargs):
        super().initialize(*args, **kwargs)
        self.connections = connections
        self.busy = busy_reply(connections.cap, retry_after)

    def handle_stream(self, stream, address):
        if self.connections.open >= self.connections.cap:
            self.connections.refused += 1
            return self._refuse(stream)
        self.connections.open += 1
        return super().handle_stream(stream, address)

    def on_close(self, server_conn):
        self.connections.open -= 1
        super().on_close(server_conn)

    async def _refuse(self, stream):
        """Answer 503 before the request is read (the client learns why, and when to come back), and close."""
        linger = self.connections.lingering < LINGERING
        self.connections.lingering += linger
        try:
            await stream.write(self.busy)
            if linger:
                stream.socket.shutdown(socket.SHUT_WR)
                await asyncio.wait_for(drain(stream), LINGER_S)
        except (StreamClosedError, OSError, asyncio.TimeoutError):
            pass  # the client is gone, or had its time
        finally:
            self.connections.lingering -= linger
            stream.close()


async def drain(stream):
    """Read and drop what the client sends until it closes (StreamClosedError)."""
    while True:
        await stream.read_bytes(DRAIN_BYTES, partial=True)
