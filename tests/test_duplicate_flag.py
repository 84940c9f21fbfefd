"""The reply's `duplicate`: true only when stored or journaled, false only when certainly not, null when the server
cannot know. Real servers: a history job imports keys a live POST then repeats; a restart while another process
holds gex_data.db, so the stored keys cannot be loaded until it lets go."""

import json
import time

import pytest

from helpers import database_held, snapshot, wait_job, eventually
from make_history_file import snapshots


def duplicate(server, ts, ticker="SPX"):
    reply = server.post("/gex", snapshot(ticker=ticker, timestamp=ts, n_strikes=2))
    assert reply.status == 202, reply.body
    return reply.json()["duplicate"]


def test_keys_a_history_job_imported_are_not_said_to_be_new(hist, files):
    now = int(time.time())
    recent = [snapshot(timestamp=now - 300 + i, n_strikes=2) for i in range(5)]  # inside the 900 s horizon
    (files.folder / "2026-01-05_SPX_classic_gex_zero.json").write_text(json.dumps(recent))
    old = list(snapshots(5, 2, "SPX"))  # 2025-10-21: long before the horizon
    (files.folder / "2025-10-21_SPX_classic_gex_zero.json").write_text(json.dumps(old))
    server = hist()
    for name in ("2026-01-05_SPX_classic_gex_zero.json", "2025-10-21_SPX_classic_gex_zero.json"):
        job = server.post("/gex_history_url", {"url": f"{files.url}/files/{name}"}).json()
        assert wait_job(server, job["id"])["snapshots_imported"] == 5
    answers = {"old": duplicate(server, old[2]["timestamp"]), "recent": duplicate(server, recent[2]["timestamp"]),
               "newer than all": duplicate(server, now + 1), "other ticker": duplicate(server, now - 299, "NDX")}
    server.stop()
    assert answers == {"recent": True, "old": None, "newer than all": False, "other ticker": False}
    with server.db() as db:  # the live repeats stored nothing more
        assert db.execute("SELECT ticker, source, count(*) FROM gex_snapshots GROUP BY ALL ORDER BY ALL").fetchall() == [
            ("NDX", "live", 1), ("SPX", "history:1", 5), ("SPX", "history:2", 5), ("SPX", "live", 1)]


@pytest.mark.slow
def test_a_start_without_the_database_says_null_for_what_it_cannot_know(start_server, tmp_path):
    now = int(time.time())
    data = tmp_path / "data"
    first = start_server(data)
    assert first.post("/gex?ack=ingested", snapshot(timestamp=now - 60, n_strikes=2)).status == 202
    first.stop()
    with database_held(data / "gex_data.db"):
        server = start_server(data)
        assert server.get("/health").json()["storage"]["cause"] == "locked"
        while_locked = {"stored before": duplicate(server, now - 60), "new": duplicate(server, now - 30),
                        "journaled since start": duplicate(server, now - 30)}
    assert eventually(lambda: server.get("/health").json()["status"] == "ok", "health ok")
    loaded = {"stored before": duplicate(server, now - 60), "journaled while locked": duplicate(server, now - 30),
              "new": duplicate(server, now)}
    server.stop()
    assert while_locked == {"stored before": None, "new": None, "journaled since start": True}
    assert loaded == {"stored before": True, "journaled while locked": True, "new": False}
    with server.db() as db:
        assert db.execute("SELECT timestamp // 1000, source FROM gex_snapshots ORDER BY 1").fetchall() == [
            (now - 60, "live"), (now - 30, "live"), (now, "live")]
