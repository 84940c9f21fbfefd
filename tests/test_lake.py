"""The Parquet lake: live snapshots reach it, re-exports are idempotent, compaction never loses or doubles rows."""

import json
import subprocess
import sys
import time

import duckdb
import polars as pl

from gexsrv import lake, schema
from helpers import REPO, snapshot
from test_history import NAME, SNAPS, STRIKES, write_history

NOW = int(time.time())


def lake_count(root):
    with duckdb.connect() as db:
        return db.execute(f"SELECT count(*), count(DISTINCT (ticker, timestamp, strike)) "
                          f"FROM read_parquet('{root}/**/*.parquet')").fetchone()


def test_live_snapshots_reach_the_lake_once(start_server):
    server = start_server(None, "--lake-export-interval", "0.2")
    for i in range(5):
        assert server.post("/gex", snapshot(timestamp=NOW + i, n_strikes=4)).status == 202
    root = server.data_dir / "parquet" / "gexbot"
    deadline = time.monotonic() + 10
    while server.get("/health").json()["lake"]["exported_rows"] < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.get("/health").json()["lake"]["exported_rows"] == 20, "no export within 10 s"
    assert server.get("/health").json()["lake"]["last_export_at"]
    assert list(root.glob("SPX/gex_zero/*.parquet"))
    assert server.post("/gex", snapshot(timestamp=NOW + 10, n_strikes=4)).status == 202
    server.stop()  # the shutdown export takes the last one
    assert lake_count(root) == (24, 24)
    assert not list(root.rglob(".*"))


def fresh_db(tmp_path, n_strikes):
    con = duckdb.connect(str(tmp_path / "gex_data.db"))
    schema.apply(con)
    con.execute("INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma) "
                "SELECT 1761053400000 + i * 1000, 'SPX', 'gex_zero', i, 1.0 FROM range(?) t(i)", [n_strikes])
    return con


def test_a_repeated_export_of_a_range_writes_the_same_files_and_no_duplicates(tmp_path, monkeypatch):
    monkeypatch.setattr(lake, "WINDOW", 40)
    con = fresh_db(tmp_path, 100)
    root = tmp_path / "parquet"
    high = lake.sequence_high(con)
    assert high == 100
    assert lake.export_range(con.cursor(), str(root), 0, high) == (3, 100)
    first = sorted(p.name for p in root.rglob("*.parquet"))
    assert first == ["20251021.1-40.strikes.parquet", "20251021.41-80.strikes.parquet",
                     "20251021.81-100.strikes.parquet"]
    # a crash after publishing but before recording 'done' repeats the same range
    lake.export_range(con.cursor(), str(root), 0, high)
    assert sorted(p.name for p in root.rglob("*.parquet")) == first
    assert lake_count(root) == (100, 100)


def test_compaction_merges_finished_days_and_keeps_existing_day_files(tmp_path):
    con = fresh_db(tmp_path, 50)
    root = tmp_path / "parquet"
    lake.export_range(con.cursor(), str(root), 0, 30)
    lake.export_range(con.cursor(), str(root), 30, 50)
    folder = root / "SPX" / "gex_zero"
    assert lake.compact(str(root), "20251021") == []  # the day is not over
    assert lake.compact(str(root), "20251022") == [(str(folder), "20251021")]
    day = folder / "20251021.strikes.parquet"
    assert sorted(p.name for p in folder.iterdir()) == [day.name]
    assert pl.read_parquet(day).height == 50
    # a crash between publishing the day file and deleting its parts: tidy finishes the job
    con.execute("INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma) "
                "VALUES (1761053400000, 'SPX', 'gex_zero', -1, 1.0)")
    lake.export_range(con.cursor(), str(root), 50, 51)
    listed = json.loads(lake.pq.read_metadata(day).metadata[b"gexsrv_parts"])
    (folder / listed[0]).write_bytes((folder / "20251021.51-51.strikes.parquet").read_bytes())
    (folder / ".x.tmp").write_bytes(b"half")
    before = day.read_bytes()
    lake.tidy(str(root))
    assert sorted(p.name for p in folder.iterdir()) == ["20251021.51-51.strikes.parquet", day.name]
    # the day file exists, so a late part stays beside it and the day file is never rewritten
    assert lake.compact(str(root), "20251022") == []
    assert day.read_bytes() == before
    assert lake_count(root) == (51, 51)


def test_cli_import_and_the_locked_database_error(tmp_path, start_server):
    source = write_history(tmp_path / NAME, compress=True)
    data = tmp_path / "data"
    run = subprocess.run([sys.executable, "-m", "gexsrv", "import", str(source), "--data-dir", str(data)],
                         capture_output=True, text=True, cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["snapshots"], summary["strike_rows"]) == ("completed", SNAPS, SNAPS * STRIKES)
    assert "download" in run.stderr  # the progress bar
    assert lake_count(data / "parquet" / "gexbot")[0] == SNAPS * STRIKES
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM gex_snapshots WHERE endpoint = 'gex_zero'").fetchone()[0] == SNAPS
    server = start_server(data)
    locked = subprocess.run([sys.executable, "-m", "gexsrv", "import", str(source), "--data-dir", str(data)],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    server.stop()
    assert locked.returncode == 2
    assert "Is a gexsrv server running on this data dir?" in locked.stderr
