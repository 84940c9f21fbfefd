"""The Parquet lake: live snapshots reach it, re-exports are idempotent, compaction never loses or doubles rows."""

import hashlib
import json
import os
import random
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from gexsrv import durable, lake, pathnames, schema
from gexsrv.history import staging
from gexsrv.validate import files, options
from forkserver import run_gexsrv
from helpers import HISTORY_NAME as NAME, HISTORY_SNAPS as SNAPS, HISTORY_STRIKES as STRIKES
from helpers import REPO, database_pid, eventually, lake_health, snapshot, write_history
from validate_helpers import check, run

NOW = int(time.time())


def lake_count(root):
    with duckdb.connect() as db:
        return db.execute(f"SELECT count(*), count(DISTINCT (ticker, timestamp, strike)) "
                          f"FROM read_parquet('{root}/**/*.strikes.parquet')").fetchone()


def thread_niceness(pid):
    """[(name, nice value)] of every thread of a process, from /proc (nice is the 19th field of stat); a thread
    that ends while they are read (an idle tokio worker of Polars') is left out."""
    found = []
    for task in (Path("/proc") / str(pid) / "task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            found.append((name, int((task / "stat").read_text().rsplit(")", 1)[1].split()[16])))
        except FileNotFoundError:
            pass
    return found


def test_live_snapshots_reach_the_lake_once_from_threads_that_give_way(start_server):
    server = start_server(None, "--lake-export-interval", "0.2")
    for i in range(5):
        assert server.post("/gex", snapshot(timestamp=NOW + i, n_strikes=4)).status == 202
    root = server.data_dir / "parquet" / "gexbot"
    eventually(lambda: server.get("/health").json()["lake"]["exported_rows"] >= 20, "20 rows exported to the lake")
    assert server.get("/health").json()["lake"]["exported_rows"] == 20, "no export within 10 s"
    assert server.get("/health").json()["lake"]["last_export_at"]
    assert list(root.glob("SPX/gex_zero/*.parquet"))
    # The export's thread runs at a lower priority, and so do the Polars threads it started (imported there).
    threads = thread_niceness(database_pid(server))
    polars_threads = [nice for name, nice in threads if name.startswith("polars")]
    assert polars_threads and set(polars_threads) == {lake.EXPORT_NICENESS}, threads
    assert lake.EXPORT_NICENESS in {nice for name, nice in threads if name.startswith("gexsrv")}, threads
    assert server.post("/gex", snapshot(timestamp=NOW + 10, n_strikes=4)).status == 202
    server.stop()  # the shutdown export takes the last one
    assert lake_count(root) == (24, 24)
    assert not list(root.rglob(".*"))


def strikes(n):
    """export_range's row counts when only strike rows were stored."""
    return {"strikes": n, "snapshots": 0, "majors": 0, "maxchange": 0}


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
    assert lake.export_range(con.cursor(), str(root), 0, high) == (3, strikes(100))
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
    assert lake.compact(str(root), "20251022") == [(str(folder), "20251021", "strikes")]
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
    run = run_gexsrv(["import", str(source), "--data-dir", str(data)], cwd=REPO, timeout=60)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert (summary["status"], summary["snapshots"], summary["strike_rows"]) == ("completed", SNAPS, SNAPS * STRIKES)
    assert "download" in run.stderr  # the progress bar
    assert lake_count(data / "parquet" / "gexbot")[0] == SNAPS * STRIKES
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM gex_snapshots WHERE endpoint = 'gex_zero'").fetchone()[0] == SNAPS
    server = start_server(data)
    locked = run_gexsrv(["import", str(source), "--data-dir", str(data)], cwd=REPO, timeout=60)
    server.stop()
    assert locked.returncode == 2
    assert "Is a gexsrv server running on this data dir?" in locked.stderr


COLUMNS = "timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors"
# pairs whose old file-safe names (any character but A-Z a-z 0-9 _ ^ - . as `_`, a leading `.` behind `_`)
# coincided two by two, and the folders they get now
OLD_TWINS = [("A/B", "gex_zero"), ("A_B", "gex_zero"), (".X", "gex_zero"), ("_.X", "gex_zero"),
             ("SPX", "zero/0dte"), ("SPX", "zero_0dte")]
FOLDERS = ["A%2FB/gex_zero", "A_B/gex_zero", "%2EX/gex_zero", "_.X/gex_zero", "SPX/zero%2F0dte", "SPX/zero_0dte"]
DAY_20251021 = 1761053400  # 2025-10-21 13:30 UTC


def db_rows(con, ticker, endpoint):
    return con.execute(f"SELECT {COLUMNS} FROM gex_strikes WHERE ticker = ? AND endpoint = ? "
                       "ORDER BY timestamp, strike", [ticker, endpoint]).fetchall()


def lake_rows(folder):
    with duckdb.connect() as db:
        return db.execute(f"SELECT {COLUMNS} FROM read_parquet('{folder}/*.strikes.parquet') "
                          "ORDER BY timestamp, strike").fetchall()


def test_names_that_once_shared_a_folder_each_get_their_own_with_all_their_rows(tmp_path):
    con = duckdb.connect(str(tmp_path / "gex_data.db"))
    schema.apply(con)
    for i, (ticker, endpoint) in enumerate(OLD_TWINS):  # the /gex decoders refuse some of these names: not the lake
        con.execute("INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors) "
                    "SELECT 1761053400000 + k * 1000, $t, $e, 100 + k, $i * 10 + k, "
                    "CASE WHEN k % 2 = 0 THEN -k END, [k, $i, 3, 4, 5] FROM range(5) r(k)",
                    {"t": ticker, "e": endpoint, "i": i})
    root = tmp_path / "parquet" / "gexbot"
    lo, hi = lake.plan_range(con, lake.sequence_high(con))
    assert lake.export_range(con.cursor(), str(root), lo, hi) == (6, strikes(30))
    lake.finish_range(con, lo, 6, 30)
    assert sorted(p.parent.relative_to(root).as_posix() for p in root.rglob("*.parquet")) == sorted(FOLDERS)
    for (ticker, endpoint), folder in zip(OLD_TWINS, FOLDERS):
        expected = db_rows(con, ticker, endpoint)
        assert len(expected) == 5
        assert lake_rows(root / folder) == expected, folder
    con.close()
    # the validator reads each folder back as its ticker: a filter on one twin finds that twin's files only
    for ticker, folder in (("A/B", "A%2FB/gex_zero"), (".X", "%2EX/gex_zero")):
        with duckdb.connect() as db:
            picked = files.lake_files(str(tmp_path), options.parse({"ticker": ticker}), db, [])
        assert [os.path.relpath(p, root) for p in picked] == [f"{folder}/20251021.1-30.strikes.parquet"]
        found = check(run(tmp_path, ticker=ticker), "crosscheck.parquet_counts")
        assert (found.status, found.count) == ("passed", 0), found


def test_a_file_of_several_mib_is_published_whole(tmp_path):
    """publish writes the file from memory a MiB at a time (each synced): a day file of several MiB reads back as
    the frame it was made of."""
    rnd = random.Random(1)
    frame = pl.DataFrame({"timestamp": range(400_000), "gamma": [rnd.random() for _ in range(400_000)]})
    assert lake.publish(frame, str(tmp_path), "20251021.strikes.parquet")
    path = tmp_path / "20251021.strikes.parquet"
    assert path.stat().st_size > 2 * durable.SYNC_EVERY
    assert lake.holds(str(path), frame) and pl.read_parquet(path).equals(frame)
    assert os.listdir(tmp_path) == ["20251021.strikes.parquet"]


def test_a_taken_part_name_counts_only_when_it_holds_the_same_rows(tmp_path):
    con = fresh_db(tmp_path, 10)
    root = tmp_path / "parquet"
    part = root / "SPX" / "gex_zero" / "20251021.1-10.strikes.parquet"
    part.parent.mkdir(parents=True)
    rows = pl.from_arrow(con.sql(lake.rows_sql("strikes", lake.NUMBERED), params=[0, 10]).to_arrow_table()).drop("day")
    assert rows.height == 10
    rows.write_parquet(part, compression="uncompressed")  # the same rows, written otherwise: a repeated export
    same = part.read_bytes()
    assert lake.export_range(con.cursor(), str(root), 0, 10) == (1, strikes(10))
    assert part.read_bytes() == same
    others = {
        "one value differs": rows.with_columns(gamma=pl.when(pl.col("strike") == 3).then(2.0).otherwise("gamma")),
        "a row is missing": rows.head(9),
        "a type differs": rows.with_columns(pl.col("strike").cast(pl.Float32)),
    }
    for why, other in others.items():
        other.write_parquet(part)
        kept = part.read_bytes()
        with pytest.raises(lake.PartConflict, match="exists with other rows"):
            lake.export_range(con.cursor(), str(root), 0, 10)
        assert part.read_bytes() == kept, why
    part.write_bytes(b"not Parquet")
    with pytest.raises(lake.PartConflict, match=str(part)):
        lake.export_range(con.cursor(), str(root), 0, 10)
    assert sorted(p.name for p in part.parent.iterdir()) == [part.name]


@pytest.mark.slow
def test_an_export_stopped_by_a_taken_part_name_is_reported_and_retried_until_it_is_moved(start_server, tmp_path):
    data = tmp_path / "data"
    # the snapshot's row draws number 1, its 4 strike rows 2..5: one range, (0, 5]
    part = data / "parquet" / "gexbot" / "SPX" / "gex_zero" / "20251021.1-5.strikes.parquet"
    part.parent.mkdir(parents=True)
    pl.DataFrame({"timestamp": [1761053400000], "ticker": ["SPX"], "strike": [1.0]}).write_parquet(part)
    server = start_server(data, "--lake-export-interval", "1")
    # ingested before the first export, which would otherwise compact the planted part away as a finished day
    assert server.post("/gex?ack=ingested", snapshot(timestamp=DAY_20251021, n_strikes=4)).status == 202
    health = lake_health(server, lambda h: h["error"])
    assert "PartConflict" in health["error"] and str(part) in health["error"], health
    assert health["exported_rows"] == 0
    assert server.stop() == 0
    assert "Parquet export failed at shutdown" in server.log_path.read_text()
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT lo, hi, state, files, rows FROM gex_lake_exports").fetchall() == [
            (0, 5, "writing", None, None)]
    part.unlink()
    server = start_server(data, "--lake-export-interval", "0.2")
    health = lake_health(server, lambda h: h["exported_rows"] == 4)
    assert (health["exported_rows"], health["error"]) == (4, None)
    server.stop()
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT lo, hi, state, files, rows FROM gex_lake_exports").fetchall() == [
            (0, 5, "done", 2, 5)]
        expected = db_rows(db, "SPX", "gex_zero")
    assert len(expected) == 4
    assert lake_rows(part.parent) == expected


def test_names_in_use_keep_their_file_names_and_every_name_reads_back(tmp_path):
    for name in ("SPX", "NQ_NDX", "ES_SPX", "^VIX", "BRK.B", "gex_zero", "gex_one", "gex_full"):
        assert pathnames.encode(name) == name
    assert pathnames.staged_stem("SPX", "gex_zero") == "SPX_gex_zero_history"
    assert pathnames.staged_stem("NQ_NDX", "gex_zero") == "NQ_NDX_gex_zero_history"
    odd = ["A/B", "A_B", "A%2FB", ".X", "_.X", ".", "..", "/", "../X", "~", "a b", "\u00c9", "x\x00y", "%", "..."]
    encoded = [pathnames.encode(name) for name in odd]
    assert len(set(encoded)) == len(odd)
    for name, file_name in zip(odd, encoded):
        assert pathnames.decode(file_name) == name
        assert "/" not in file_name and "\x00" not in file_name and not file_name.startswith("."), file_name
    # staged history files: pairs whose names joined by `_` read the same get names of their own
    folder = tmp_path / "data" / "source" / "gexbot"
    folder.mkdir(parents=True)
    pairs = [("SPX_1", "gex_zero"), ("SPX", "1_gex_zero"), ("NQ_NDX", "gex_zero"), ("A/B", "gex_zero"),
             ("A_B", "gex_zero")]
    for ticker, endpoint in pairs:
        temp = folder / ".t.part"
        temp.write_bytes(b"[]")
        staging.publish(str(temp), str(folder), ticker, endpoint, hashlib.sha256(b"[]").hexdigest())
    assert sorted(os.listdir(folder)) == sorted([
        "SPX_1_gex_zero_history.json", "SPX~1_gex_zero_history.json", "NQ_NDX_gex_zero_history.json",
        "A%2FB_gex_zero_history.json", "A_B_gex_zero_history.json"])
    staged = files.staged_files(str(tmp_path / "data"), options.parse({}))
    assert sorted((t, e) for t, e, _ in staged) == sorted(pairs)
