"""Live ingest beside a history import writing the same keys: DuckDB refuses the later of two overlapping writes of
one key (a unique conflict, at the COMMIT or at the careful INSERT). A real gexsrv imports a file from a local file
server while clients post the same snapshots to /gex: each conflict is written again and counted, and is no storage
incident. (tests/test_store.py makes each kind of conflict happen every time, two transactions on one database.)"""

import datetime as dt
import json
import threading

import pytest
from helpers import wait_job
from make_history_file import snapshots

from gexsrv.history import importer

DAY = dt.date(2025, 10, 21)
NAME = f"{DAY}_SPX_classic_gex_zero.json"
SNAPS, STRIKES, POSTERS = importer.CHUNK + 1000, 10, 3


def post_until(server, bodies, stop, errors):
    """POST /gex?ack=ingested each body in turn until stop is set: one record per ingest, the commits that used to
    open incidents."""
    for body in bodies:
        if stop.is_set():
            return
        reply = server.post("/gex?ack=ingested", body)
        if reply.status != 202:
            errors.append((reply.status, reply.body))


@pytest.mark.slow
def test_live_posts_of_the_keys_an_import_writes_are_no_incident(hist, files):
    made = list(snapshots(SNAPS, STRIKES, "SPX", DAY))
    (files.folder / NAME).write_text(json.dumps(made))
    server = hist()
    order = [made[i * 7919 % SNAPS] for i in range(SNAPS)]  # reaches into both of the import's chunks at once
    stop, errors = threading.Event(), []
    posters = [threading.Thread(target=post_until, args=(server, order[k::POSTERS], stop, errors))
               for k in range(POSTERS)]
    reply = server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"})
    assert reply.status == 202, reply.body
    for poster in posters:
        poster.start()
    job = wait_job(server, reply.json()["id"], timeout=120)
    stop.set()
    for poster in posters:
        poster.join()
    health = server.get("/health").json()
    logged = server.get("/api/status").json()["errors"]
    metrics = server.get("/metrics").body.decode()
    server.stop()
    assert errors == []
    assert (job["status"], job["last_error"]) == ("completed", None), job
    storage = health["storage"]
    assert (health["status"], storage["state"], storage["incidents"], storage["incident_since"]) == (
        "ok", "writable", 0, None), storage
    conflicts = storage["commit_conflicts"]
    assert sum(conflicts.values()) > 0, conflicts
    for writer, n in conflicts.items():
        assert f'gexsrv_commit_conflicts_total{{writer="{writer}"}} {n}.0' in metrics
    assert files.hooks == []  # no alert
    # no warning of gexsrv's either (an interrupted import, a batch written one by one); slow requests aside
    assert [e for e in logged if e["logger"].startswith("gexsrv")] == []
    with server.db() as db:
        stored = db.execute("SELECT timestamp // 1000, source FROM gex_snapshots ORDER BY timestamp").fetchall()
        strikes = db.execute("SELECT timestamp // 1000, strike, gamma, oi_gamma FROM gex_strikes "
                             "ORDER BY timestamp, strike").fetchall()
    assert [ts for ts, _ in stored] == [s["timestamp"] for s in made]  # every key once
    assert {source for _, source in stored} <= {"live", "history:1"}
    assert job["snapshots_imported"] == sum(source == "history:1" for _, source in stored)
    assert strikes == sorted((s["timestamp"], *row[:3]) for s in made for row in s["strikes"])
