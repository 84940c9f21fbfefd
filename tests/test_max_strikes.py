"""The strike rows of a snapshot are bounded (max_strikes, 400 by default) on every way in: POST /gex, /uw topic gex,
history files (downloaded or inline). A snapshot over it is refused naming its path, the limit and the count, and
nothing of it is stored; one at the limit is stored whole. Records journaled before the limit was lowered are
still ingested: what was acknowledged is never refused afterwards."""

import json

from helpers import TS, database_held, snapshot, wait_job

LIMIT = 400


def assert_refused(reply, field, count=LIMIT + 1, limit=LIMIT):
    assert reply.status == 400, reply.body
    body = reply.json()
    assert body["field"] == field
    assert f"{count} strike rows" in body["error"] and f"the {limit} a snapshot may have (max_strikes)" in body["error"]


def stored(server):
    """(ticker, endpoint, timestamp, strike rows) of every snapshot, and the /uw rows; the server is stopped."""
    with server.db() as db:
        snapshots = db.execute("""SELECT s.ticker, s.endpoint, s.timestamp,
                                         (SELECT count(*) FROM gex_strikes k WHERE k.ticker = s.ticker
                                          AND k.endpoint = s.endpoint AND k.timestamp = s.timestamp)
                                  FROM gex_snapshots s ORDER BY s.timestamp""").fetchall()
        webhooks = db.execute("SELECT count(*) FROM universal_webhooks").fetchone()[0]
    return snapshots, webhooks


def test_gex_and_uw_refuse_401_strikes_and_store_400(server):
    assert_refused(server.post("/gex", snapshot(timestamp=TS, n_strikes=LIMIT + 1)), "$.strikes")
    wrapped = {"ticker": "SPX", "endpoint": "gex_one", "data": snapshot(timestamp=TS + 1, n_strikes=LIMIT + 1)}
    assert_refused(server.post("/gex", wrapped), "$.data.strikes")
    frame = {"topic": "gex", "ticker": "SPX", "endpoint": "gex_zero", "kind": "snapshot",
             "payload": snapshot(timestamp=TS + 2, n_strikes=LIMIT + 1)}
    assert_refused(server.post("/uw", frame), "$.payload.strikes")

    assert server.post("/gex?ack=ingested", snapshot(timestamp=TS + 3, n_strikes=LIMIT)).status == 202
    frame["payload"] = snapshot(timestamp=TS + 4, n_strikes=LIMIT)
    assert server.post("/uw?ack=ingested", frame).status == 200
    server.stop()
    assert stored(server) == ([("SPX", "gex_zero", (TS + 3) * 1000, LIMIT), ("SPX", "gex_zero", (TS + 4) * 1000, LIMIT)],
                              1)


def history_file(oversized_at, n=3):
    snaps = [snapshot(timestamp=TS + i, n_strikes=LIMIT + 1 if i == oversized_at else LIMIT) for i in range(n)]
    return json.dumps(snaps)


def test_a_history_file_with_a_snapshot_over_the_limit_fails_whole(hist, files):
    name = "2026-04-29_SPX_classic_gex_zero.json"
    (files.folder / name).write_text(history_file(oversized_at=2))
    server = hist()
    reply = server.post("/gex_history_url", {"url": f"{files.url}/files/{name}"})
    assert reply.status == 202, reply.body
    job = wait_job(server, reply.json()["id"])
    assert job["status"] == "failed"
    assert job["last_error"].startswith(f"snapshot 2: {LIMIT + 1} strike rows, more than the {LIMIT} a snapshot")
    assert job["last_error"].endswith("- at `$.strikes`")

    inline = server.post("/gex_history_url", {"url": "https://hist.gex.bot/2026-04-29_NDX_classic_gex_zero.json",
                                              "raw_body": json.loads(history_file(oversized_at=1))})
    assert inline.status == 400 and inline.json()["field"] == "$.raw_body", inline.body
    assert f"snapshot 1: {LIMIT + 1} strike rows" in inline.json()["error"]

    (files.folder / name.replace("SPX", "QQQ")).write_text(history_file(oversized_at=None))
    fits = server.post("/gex_history_url", {"url": f"{files.url}/files/{name.replace('SPX', 'QQQ')}"})
    assert wait_job(server, fits.json()["id"])["status"] == "completed"
    server.stop()
    assert stored(server) == ([("QQQ", "gex_zero", (TS + i) * 1000, LIMIT) for i in range(3)], 0)


def test_records_journaled_before_the_limit_was_lowered_are_ingested(start_server, tmp_path):
    data = tmp_path / "data"
    with database_held(data / "gex_data.db"):
        server = start_server(data)
        assert server.post("/gex", snapshot(timestamp=TS, n_strikes=5)).status == 202  # journaled only
        server.stop()
    lowered = start_server(data, "--max-strikes", "3")
    assert_refused(lowered.post("/gex", snapshot(timestamp=TS + 1, n_strikes=4)), "$.strikes", count=4, limit=3)
    lowered.stop()
    assert stored(lowered) == ([("SPX", "gex_zero", TS * 1000, 5)], 0)
