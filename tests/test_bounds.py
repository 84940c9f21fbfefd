"""Bounds with real processes: a body a route does not take is refused before it is sent, connections past the
cap get 503, idle ones are closed, the open-file limit is raised and must hold the cap, and the journal still
writes when the process is out of descriptors."""

import json
import os
import resource
import socket

import pytest

from helpers import TS, Server, eventually, snapshot

WAIT_S = 20  # how long a reply or a close may take before the test gives up (never a timed assertion)


def connect(server):
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(WAIT_S)
    return sock


def read_reply(sock):
    """(status, headers, JSON body) of one reply, read by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed before a reply: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, json.loads(body)


def ask(sock, head):
    """Send a request head (and no body), return its reply."""
    sock.sendall(head.encode() + b"\r\n\r\n")
    return read_reply(sock)


def closed_by_server(sock):
    """True once the server has closed the connection (what is left to read is dropped)."""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return True


@pytest.mark.parametrize("head, status", [
    ("GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("GET /api/status HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked", 413),
    ("GET / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("GET /web/status.js HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("GET /metrics HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("OPTIONS /gex HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("GET /gex_history_url HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 413),
    ("POST /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 405),
    ("POST /no/such/path HTTP/1.1\r\nHost: localhost\r\nContent-Length: 31457280", 404),
])
def test_a_body_the_route_does_not_take_is_refused_before_it_is_sent(shared_server, head, status):
    """Only the head is sent: the old server waited for the 30 MiB (buffering it, outside the in-flight budget)."""
    sock = connect(shared_server)
    try:
        got, headers, body = ask(sock, head)
        assert got == status and headers["content-type"] == "application/json"
        assert body["status"] == "error" and body["error"]
        if status == 413:
            assert "takes no request body" in body["error"]
        assert closed_by_server(sock)  # the body is never read: the connection cannot be used again
    finally:
        sock.close()


def served_again(server):
    """(/health, the 503s before it) once the server has seen a connection close: until then a new one gets 503."""
    refused = []

    def served():
        reply = server.get("/health")
        refused.append(reply.status == 503)
        return None if refused[-1] else reply

    return eventually(served, "/health served once a connection closed", WAIT_S).json(), sum(refused)


def test_connections_past_the_cap_get_503_and_room_comes_back_when_one_closes(start_server):
    server = start_server(None, "--max-connections", "4")
    held = [connect(server) for _ in range(4)]
    try:
        assert [ask(sock, "GET /health HTTP/1.1\r\nHost: localhost")[0] for sock in held] == [200] * 4  # kept alive
        extra = connect(server)
        status, headers, body = ask(extra, "POST /gex HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0")
        assert closed_by_server(extra)
        extra.close()
        held.pop().close()
        health, retried = served_again(server)
    finally:
        for sock in held:
            sock.close()
    assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
    assert body == {"status": "error", "error": "server busy: 4 connections are open; try again shortly",
                    "outcome": "not stored"}
    assert health["connections"] == {"open": 4, "max": 4, "refused": 1 + retried, "bodies_in_flight_bytes": 0}


def test_an_idle_connection_is_closed_after_the_idle_timeout(start_server):
    server = start_server(None, "--idle-connection-timeout-s", "0.5")
    sock = connect(server)
    try:
        assert ask(sock, "GET /health HTTP/1.1\r\nHost: localhost")[0] == 200
        assert closed_by_server(sock)  # the old server kept it 300 s: recv timed out after WAIT_S
    finally:
        sock.close()


def test_the_open_file_limit_is_raised_and_the_cap_must_fit_in_it(tmp_path):
    hard = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 2048)
    if hard < 640:
        pytest.skip(f"the hard open-file limit here ({hard}) is below what the default cap needs (640)")
    raised = Server(tmp_path / "raised", rlimits={"RLIMIT_NOFILE": (256, hard)}).start()
    try:
        limits = resource.prlimit(raised.proc.pid, resource.RLIMIT_NOFILE)
    finally:
        raised.stop()
    assert limits == (hard, hard)
    too_low = Server(tmp_path / "low", rlimits={"RLIMIT_NOFILE": (600, 600)})
    with pytest.raises(RuntimeError) as stopped:
        too_low.start()
    too_low.log.close()
    assert too_low.proc.returncode == 2
    assert ("cannot start: --max-connections 512 needs 640 file descriptors (64 for refusing connections past it, "
            "64 for the server's own files), but this process may open 600 (ulimit -n)") in str(stopped.value)


def first_free_descriptor(pid):
    used = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    return next(fd for fd in range(len(used) + 1) if fd not in used)


@pytest.mark.slow
def test_the_journal_still_writes_when_the_process_is_out_of_descriptors(start_server):
    """A flood of connections took every descriptor but the one the next request arrives on: the journal opens
    its first segment with its reserve. The old server answered 503 (cannot create the segment: EMFILE)."""
    server = start_server(None, "--lake-export-interval", "3600")  # nothing else opens a file meanwhile
    pid = server.proc.pid
    flood = [connect(server) for _ in range(20)]
    try:
        assert [ask(sock, "GET /health HTTP/1.1\r\nHost: localhost")[0] for sock in flood] == [200] * 20
        _, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (first_free_descriptor(pid) + 1, hard))
        try:
            reply = server.post("/gex", snapshot(timestamp=TS, n_strikes=3))
        finally:
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (hard, hard))
    finally:
        for sock in flood:
            sock.close()
    stored = server.post("/gex?ack=ingested", snapshot(timestamp=TS + 1, n_strikes=3))
    server.stop()
    assert reply.status == 202, reply.body
    assert stored.status == 202, stored.body
    assert "the journal uses its reserve" in server.log_path.read_text()
    with server.db() as db:
        assert db.execute("SELECT timestamp // 1000 FROM gex_snapshots ORDER BY 1").fetchall() == [(TS,), (TS + 1,)]
