"""A 202 means committed: the row survives SIGKILL, and an established database is adopted untouched."""

import signal

import make_legacy_db
from helpers import legacy_fingerprint, snapshot

LEGACY_FIRST_MS = make_legacy_db.FIRST_MS  # the generator's first snapshot time


def test_row_acknowledged_with_202_survives_sigkill(start_server, tmp_path):
    server = start_server()
    replies = [server.post("/gex", snapshot(timestamp=1777492800 + i, n_strikes=3)) for i in range(5)]
    assert [r.status for r in replies] == [202] * 5
    server.stop(signal.SIGKILL)
    assert server.proc.returncode == -signal.SIGKILL

    restarted = start_server(tmp_path / "data")
    assert restarted.get("/health").json()["storage"]["state"] == "writable"
    restarted.stop()
    with restarted.db() as db:
        assert db.execute("SELECT count(*), min(timestamp), max(timestamp) FROM gex_snapshots").fetchone() == (
            5, 1777492800000, 1777492804000)
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone() == (15,)


def test_legacy_database_is_adopted_and_its_rows_keep_their_fingerprint(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    before = make_legacy_db.build(data / "gex_data.db", days=1, every=300, n_strikes=20)

    server = start_server(data)
    # the same ticker and timestamp as a legacy row: legacy rows have no endpoint, so this one is new
    assert server.post("/gex", snapshot(timestamp=LEGACY_FIRST_MS // 1000, n_strikes=4)).json()["duplicate"] is False
    assert server.post("/gex", snapshot(ticker="NDX", timestamp=LEGACY_FIRST_MS // 1000 + 1)).status == 202
    server.stop()
    again = start_server(data)  # a second adoption changes nothing either
    replay = again.post("/gex?ack=ingested", snapshot(timestamp=LEGACY_FIRST_MS // 1000, n_strikes=4))
    assert replay.json()["duplicate"] is True
    again.stop()

    assert legacy_fingerprint(data / "gex_data.db", tmp_path) == before
    with again.db() as db:
        new = db.execute("SELECT ticker, endpoint, timestamp FROM gex_snapshots WHERE endpoint IS NOT NULL "
                         "ORDER BY ticker").fetchall()
        legacy_endpoints = db.execute("SELECT count(*) FROM gex_snapshots WHERE endpoint IS NULL").fetchone()[0]
        strikes = db.execute("SELECT count(*) FROM gex_strikes WHERE endpoint = 'gex_zero'").fetchone()[0]
    assert new == [("NDX", "gex_zero", LEGACY_FIRST_MS + 1000), ("SPX", "gex_zero", LEGACY_FIRST_MS)]
    assert legacy_endpoints == before["gex_snapshots"]["rows"]
    assert strikes == 4 + 5
