"""The load generator's HTTP client (bench/httpclient.py) against a real socket server of the test's own: a
keep-alive connection is reused, `Connection: close` and a dropped connection open a new one, and a reply it cannot
delimit is an error, never a status."""
import asyncio
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from httpclient import Connection, NoContentLength  # noqa: E402


async def serving(replies):
    """A server on 127.0.0.1 answering each request (read whole, by its Content-Length) with the next reply;
    None closes the connection instead. Returns (server, the peer port of every request, the bodies)."""
    peers, bodies = [], []

    async def handle(reader, writer):
        while replies:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            bodies.append(await reader.readexactly(length))
            peers.append(writer.get_extra_info("peername")[1])
            reply = replies.pop(0)
            if reply is None:
                break
            writer.write(reply)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, peers, bodies


def reply(status, body=b"{}", *headers):
    lines = [b"HTTP/1.1 %d X" % status, b"Content-Length: %d" % len(body), *headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def test_keep_alive_close_and_a_dropped_connection():
    async def run():
        replies = [reply(202), reply(503, b'{"status":"error"}'), reply(202, b"{}", b"Connection: close"),
                   reply(200), None, reply(201)]
        server, peers, bodies = await serving(replies)
        connection = Connection("127.0.0.1", server.sockets[0].getsockname()[1], timeout=5)
        statuses = [await connection.post("/gex", b'{"n":%d}' % i) for i in range(4)]
        with pytest.raises(OSError):
            await connection.post("/gex", b'{"n":4}')
        statuses.append(await connection.post("/gex", b'{"n":5}'))
        connection.close()
        server.close()
        return statuses, peers, bodies

    statuses, peers, bodies = asyncio.run(run())
    assert statuses == [202, 503, 202, 200, 201]
    assert bodies == [b'{"n":%d}' % i for i in range(6)]
    assert peers[0] == peers[1] == peers[2] != peers[3] == peers[4] != peers[5]


def test_a_reply_without_a_content_length_is_an_error():
    async def run():
        server, _, _ = await serving([b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nhello"])
        connection = Connection("127.0.0.1", server.sockets[0].getsockname()[1], timeout=5)
        try:
            with pytest.raises(NoContentLength):
                await connection.post("/gex", b"{}")
        finally:
            connection.close()
            server.close()

    asyncio.run(run())
