"""The original's gexbot poller, against a local stand-in for the gexbot API on 127.0.0.1."""

import os
import signal
import socket

import pytest

from filesrv import FakeGexbot
from helpers import TS, database_pid, eventually


@pytest.fixture
def gexbot(tmp_path):
    with FakeGexbot(tmp_path, live=True) as fake:
        yield fake


def wait_for_polls(server, rounds, stored=10):
    """The poller's /health section once it ran `rounds` rounds (QQQ's two fetches fail in each) and stored enough."""
    def polled():
        poller = server.get("/health").json()["poller"]
        return poller if poller["errors"] >= 2 * rounds and poller["stored"] >= stored else None

    return eventually(polled, f"{rounds} poller rounds", step=0.1)


def test_poller_stores_each_tickers_snapshot_and_maxchange_once(start_server, gexbot):
    server = start_server(None, "--gexbot-api-url", gexbot.url["api"], "--poll-interval", "0.2",
                          env={"GEXBOT_API_KEY": "k123"})
    poller = wait_for_polls(server, rounds=2)
    server.stop()
    assert poller["enabled"] is True and poller["stored"] == 10  # 5 tickers x 2 payloads, the re-polls are duplicates
    assert ("/SPX/classic/zero", ["k123"]) in gexbot.seen
    assert ("/NQ_NDX/classic/zero/maxchange", ["k123"]) in gexbot.seen
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp FROM gex_snapshots ORDER BY ticker").fetchall()
        maxchange = db.execute("SELECT ticker, current_strike, current_value, one_value FROM gex_maxchange "
                               "WHERE ticker = 'ES_SPX'").fetchall()
        strikes = db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
    tickers = ["ES_SPX", "NDX", "NQ_NDX", "SPX", "SPY"]
    assert snaps == [(t, "gex_zero", TS * 1000) for t in tickers]
    assert maxchange == [("ES_SPX", 100.0, 5.5, 1.5)]
    assert strikes == 5 * 3


def test_poller_polls_once_at_start_then_every_interval(start_server, gexbot):
    server = start_server(None, "--gexbot-api-url", gexbot.url["api"], "--poll-interval", "3600",
                          env={"GEXBOT_API_KEY": "k123"})
    poller = wait_for_polls(server, rounds=1)
    assert poller["stored"] == 10 and poller["errors"] == 2
    assert len(gexbot.seen) == 12  # one round: 6 tickers x 2 paths, long before the first interval ends


def test_poller_is_off_without_a_key(shared_server):
    assert shared_server.get("/health").json()["poller"] == {"enabled": False}


def failing_poller(start_server, *flags):
    """A server whose poller fetches from a closed port every 0.1 s (a wrong API URL: every fetch fails)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    return start_server(None, "--gexbot-api-url", f"http://127.0.0.1:{port}", "--poll-interval", "0.1", *flags,
                        env={"GEXBOT_API_KEY": "k123"})


def degraded_health(server):
    return eventually(lambda: (h := server.get("/health").json())["failing_tasks"] and h, "a failing poller")


def test_a_poller_whose_every_fetch_fails_is_a_failing_task_and_makes_health_degraded(start_server):
    """A wrong API URL (or key, or no network) fails every fetch of every round: three rounds in a row and /health
    says so, as for the other background tasks, instead of only counting errors."""
    health = degraded_health(failing_poller(start_server))
    (task,) = health["failing_tasks"]
    assert (health["status"], task["task"], task["failures"] >= 3) == ("degraded", "poller", True), health
    assert task["error"].startswith("NDX/classic/zero/maxchange: ") and "Connection refused" in task["error"], task
    assert health["poller"]["errors"] >= 3 * 12


def test_health_reads_the_pollers_count_and_streak_at_one_moment(start_server):
    """/health waits for the engine's sections (here up to 2 s: the engine is stopped) while the poller goes on
    failing: its error count and its failing rounds are read together, after that wait, so that every failed round
    is in the count (12 fetches a round)."""
    server = failing_poller(start_server, "--processes", "2")
    degraded_health(server)
    engine = database_pid(server)
    os.kill(engine, signal.SIGSTOP)
    try:
        health = server.get("/health").json()
    finally:
        os.kill(engine, signal.SIGCONT)
    (task,) = health["failing_tasks"]
    assert health["poller"]["errors"] >= 12 * task["failures"], health
