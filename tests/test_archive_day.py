"""The raw archive's day folder is the server's receive day, never a client's clock: a request whose `received_at`
says 2001 is archived under today (UTC) and survives --archive-retention-days; the record keeps the client's
received_at. A journal segment left by an older gexsrv (lines without `arrived`) is filed by the server's clock too.
Real servers with 1-second journal segments."""

import datetime as dt
import json
import time

import duckdb
import pytest

from helpers import TS, post_fillers_until, snapshot
from gexsrv.journal import segment_name
from gexsrv.journalline import encode_line

Y2001 = "2001-01-01T00:00:00Z"
Y2001_MS = 978_307_200_000
SEGMENT_FLAGS = ("--journal-segment-seconds", "1", "--archive-retention-days", "1")


def utc_day(epoch_s):
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc).strftime("%Y%m%d")


def archived(data):
    """(day folder, seq, kind, ticker, ts, arrived) of every archived line, in seq order."""
    found = duckdb.sql(f"SELECT * EXCLUDE (body) FROM read_ndjson('{data}/source/live/*/*.zst', filename = true, "
                       "union_by_name = true) ORDER BY seq")
    lines = [dict(zip(found.columns, row)) for row in found.fetchall()]
    return [(line["filename"].split("/")[-2], line["seq"], line["kind"], line.get("ticker"), line.get("ts"),
             line.get("arrived")) for line in lines]


def archive_through(server, seq):
    """Post filler snapshots until line `seq` is archived."""
    post_fillers_until(server, lambda: any(row[1] == seq for row in archived(server.data_dir)), TS, n_strikes=1)


@pytest.mark.slow
def test_a_client_clock_in_2001_files_nothing_under_2001(start_server):
    started = time.time()
    server = start_server(None, *SEGMENT_FLAGS)
    gex = server.post("/gex", {"ticker": "SPX", "received_at": Y2001, "data": snapshot(timestamp=TS, n_strikes=2)})
    uw = server.post("/uw", {"topic": "gex", "received_at": Y2001, "payload": snapshot(timestamp=TS + 1, n_strikes=2)})
    assert (gex.status, uw.status) == (202, 200), (gex.body, uw.body)
    archive_through(server, 3)
    server.stop()
    finished = time.time()
    today = {utc_day(started), utc_day(finished)}
    rows = archived(server.data_dir)
    assert [row[1:5] for row in rows[:3]] == [(1, "snapshot", "SPX", TS * 1000), (2, "uw", None, None),
                                              (3, "snapshot", "SPX", (TS + 1) * 1000)]
    assert {row[0] for row in rows} <= today  # nothing under 20010101, so retention deleted none of it
    assert all(started * 1000 <= row[5] <= finished * 1000 for row in rows)
    assert [p.name for p in (server.data_dir / "source/live").iterdir()] == sorted(today & {row[0] for row in rows})
    with server.db() as db:  # the record keeps the client's received_at
        assert db.execute("SELECT timestamp // 1000, received_at FROM gex_snapshots WHERE ticker = 'SPX' "
                          "ORDER BY 1").fetchall() == [(TS, Y2001_MS), (TS + 1, Y2001_MS)]


@pytest.mark.slow
def test_a_segment_without_arrived_is_filed_by_the_server_clock(start_server, tmp_path):
    """What an older gexsrv journaled: `received` was the client's received_at."""
    journal = tmp_path / "data" / "journal"
    journal.mkdir(parents=True)
    body = json.dumps({"ticker": "SPX", "received_at": Y2001, "data": snapshot(timestamp=TS, n_strikes=2)}).encode()
    header = {"seq": 1, "kind": "snapshot", "path": "/gex", "source": "live", "ticker": "SPX", "endpoint": "gex_zero",
              "ts": TS * 1000, "received": Y2001_MS, "dup": False}
    (journal / segment_name(1)).write_bytes(b"".join(encode_line(header, body)))
    started = time.time()
    server = start_server(None, *SEGMENT_FLAGS)
    archive_through(server, 1)
    server.stop()
    rows = archived(server.data_dir)
    assert rows[0][1:6] == (1, "snapshot", "SPX", TS * 1000, None)
    assert rows[0][0] in {utc_day(started), utc_day(time.time())}
    with server.db() as db:
        assert db.execute("SELECT timestamp // 1000, received_at FROM gex_snapshots WHERE ticker = 'SPX'"
                          ).fetchall() == [(TS, Y2001_MS)]
