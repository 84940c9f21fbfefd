"""The front <-> engine protocol (gexsrv.channel) over a real socketpair: every message comes out as it went in,
in order, a closed peer reads as None, and a stream out of step is refused rather than misread."""

import asyncio
import socket

import msgspec
import pytest

from gexsrv.channel import (LENGTH, MAX_FRAME, Channel, ChannelError, Durable, Fatal, Ingested, KeysCommitted,
                            KeysCommitting, KeysLoaded, Noted, Outcome, Spawn, Status, Stop, frame, receive_blocking,
                            send_blocking)
from gexsrv.position import Position

MESSAGES = [
    Durable(Position(17, 4096, 41)),
    Ingested(Position(17, 4096, 41), [Outcome(40, True), Outcome(41, False, "strike 7 has no price")]),
    Status(1234, 1777492800.5, 1.25),
    KeysLoaded([[["snapshot", "SPX", "gex_zero", 1777492800000], 1777492800000]],
               [[["snapshot", "SPX", "gex_zero"], 1777492800000]]),
    KeysCommitting(3, [[["snapshot", "SPX", "gex_zero", 1777492801000], 1777492801000]]),
    Noted(3),
    KeysCommitted([[["snapshot", "SPX", "gex_zero", 1777492801000], 1777492801000]]),
    Fatal("/nowhere/gex_data.db is not a readable DuckDB database"),
    Spawn("gexsrv.engine:main", msgspec.Raw(msgspec.msgpack.encode({"journal": "/j"}))),
    Stop(),
]


def test_messages_cross_an_asyncio_channel_as_sent():
    async def run():
        left, right = socket.socketpair()
        sender, receiver = await Channel.over(left), await Channel.over(right)
        for message in MESSAGES:
            sender.send(message)
        await sender.close()
        got = [await receiver.receive() for _ in MESSAGES]
        end = await receiver.receive()
        await receiver.close()
        return got, end

    got, end = asyncio.run(run())
    assert [type(m) for m in got] == [type(m) for m in MESSAGES]
    for sent, came in zip(MESSAGES, got):
        if isinstance(sent, Spawn):
            assert (came.target, bytes(came.args)) == (sent.target, bytes(sent.args))
        else:
            assert came == sent
    assert end is None


def test_blocking_ends_pass_a_descriptor_with_a_message(tmp_path):
    left, right = socket.socketpair()
    path = tmp_path / "passed"
    path.write_text("through SCM_RIGHTS")
    with open(path) as f:
        send_blocking(left, Noted(1), fds=[f.fileno()])
    message, fds = receive_blocking(right, fds_wanted=1)
    assert message == Noted(1)
    with open(fds[0]) as passed:
        assert passed.read() == "through SCM_RIGHTS"
    left.close()
    assert receive_blocking(right) == (None, [])
    right.close()


def test_a_stream_cut_inside_a_frame_is_an_error_not_an_end():
    async def run(data):
        left, right = socket.socketpair()
        left.sendall(data)
        left.close()
        receiver = await Channel.over(right)
        try:
            return await receiver.receive()
        finally:
            await receiver.close()

    whole = frame(Durable(Position(1, 2, 3)))
    with pytest.raises(ChannelError, match="inside a frame"):
        asyncio.run(run(whole[:-1]))
    with pytest.raises(ChannelError, match="inside a frame"):
        asyncio.run(run(whole[:2]))
    with pytest.raises(ChannelError, match="past the limit"):
        asyncio.run(run(LENGTH.pack(MAX_FRAME + 1)))


def test_a_peer_gone_before_a_send_reads_as_none():
    """An engine that exits at once (a damaged database) while the front sends it its first message: the send
    breaks the pipe, and the front's next receive is the end, not a BrokenPipeError for a task to drop."""
    async def run():
        ours, theirs = socket.socketpair()
        theirs.close()
        channel = await Channel.over(ours)
        channel.send(Durable(Position(1, 0, 0)))
        end = await channel.receive()
        await channel.close()
        return end

    assert asyncio.run(run()) is None
