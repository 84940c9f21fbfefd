"""The whole snapshot in the lake: snapshot, majors and maxchange rows beside the strike rows, row for row what
DuckDB stores, from live posts and history imports, resumed after a crash, and backfilled into a lake of strikes."""

import hashlib
import re
import signal
import time

import duckdb
import polars as pl
import pytest

from gexsrv import lake, lakekinds, schema
from helpers import HISTORY_NAME, HISTORY_SNAPS, HISTORY_STRIKES, TS, lake_health, majors, snapshot, wait_job
from helpers import write_history
from validate_helpers import check, run

KEY = ["ticker", "endpoint", "timestamp"]
# Nothing is ingested but for a request that waits for it: an hour between ingests, and no batch ever large enough.
INGEST_HELD_BACK = ("--ingest-interval-ms", "3600000", "--ingest-batch-records", "100000000")
# a day after today: its parts stay parts, as today's do, whatever the hour the test runs at (stored all the same,
# a timestamp ahead of the clock is only listed in the reply's problems)
LATER = int(time.time()) + 3 * 86_400


def maxchange(ticker, timestamp, value):
    return {"timestamp": timestamp, "ticker": ticker, "current": [7140.0, value], "one": [7135.0, value + 1],
            "five": [7130.0, 0.5], "thirty": [7125.0, -value]}


def db_rows(con, kind):
    """Every row of kind's table that gexsrv wrote, as the lake holds it: its columns, in its order."""
    k = lakekinds.KINDS[kind]
    return con.execute(f"SELECT timestamp, ticker, endpoint, {k.columns} FROM {k.table} "
                       f"WHERE endpoint IS NOT NULL ORDER BY ticker, endpoint, {k.order}").fetchall()


def lake_rows(root, kind):
    frame = pl.read_parquet(f"{root}/**/*.{kind}.parquet")
    return frame.sort(KEY + (["strike"] if kind == "strikes" else [])).rows()


def assert_lake_is_the_database(server, expected_counts):
    """Every kind's Parquet rows equal DuckDB's, whole, with every column the table stores but `seq`."""
    root = server.data_dir / "parquet" / "gexbot"
    with server.db() as con:
        for kind, count in expected_counts.items():
            expected = db_rows(con, kind)
            assert len(expected) == count, kind
            assert lake_rows(root, kind) == expected, kind
            stored = [c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                                                "ORDER BY column_index", [lakekinds.KINDS[kind].table]).fetchall()]
            assert sorted(pl.read_parquet_schema(next(root.rglob(f"*.{kind}.parquet")))) == sorted(
                set(stored) - {"seq"}), kind


def post_feed(server, timestamps, ack="", first=0):
    """A snapshot of 4 strikes, its majors and its maxchange at each timestamp (epoch s), for SPX and NDX; the
    spot is 7100 plus the timestamp's index in the feed, the first one's `first`."""
    for i, ts in enumerate(timestamps, first):
        for ticker in ("SPX", "NDX"):
            for body in (snapshot(ticker=ticker, timestamp=ts, n_strikes=4, spot=7100.0 + i),
                         majors(ticker, ts, 7100.0 + i), maxchange(ticker, ts, 10.0 * i)):
                assert server.post(f"/gex{ack}", body).status == 202


def test_live_snapshots_majors_and_maxchange_reach_the_lake_row_for_row(start_server):
    # A finished day (compacted) and a day not over (parts). Held back until the last day's first post waits for
    # ingest, the finished day's rows are ingested in one transaction: an export between two of its ingests would
    # compact it, and the later rows would stay parts beside its day file.
    server = start_server(None, "--lake-export-interval", "0.2", *INGEST_HELD_BACK)
    post_feed(server, [TS, TS + 1, LATER])
    post_feed(server, [LATER + 1], ack="?ack=ingested", first=3)
    health = lake_health(server, lambda h: h["exported"]["maxchange"] == 8)
    assert health["exported"] == {"strikes": 32, "snapshots": 8, "majors": 8, "maxchange": 8}
    assert health["exported_rows"] == 32
    server.stop()
    assert_lake_is_the_database(server, {"strikes": 32, "snapshots": 8, "majors": 8, "maxchange": 8})
    folder = server.data_dir / "parquet" / "gexbot" / "SPX" / "gex_zero"
    day = time.strftime("%Y%m%d", time.gmtime(TS))
    assert sorted(p.name for p in folder.glob(f"{day}*")) == [
        f"{day}.{kind}.parquet" for kind in ("majors", "maxchange", "snapshots", "strikes")]
    # the kinds join on the key: each strike row with its snapshot's spot and its majors' zero gamma
    joined = (pl.scan_parquet(f"{folder}/*.strikes.parquet")
              .join(pl.scan_parquet(f"{folder}/*.snapshots.parquet"), on=KEY)
              .join(pl.scan_parquet(f"{folder}/*.majors.parquet"), on=KEY, suffix="_majors")
              .select("timestamp", "strike", "spot_price", "zero_gamma_majors").sort("timestamp", "strike")
              .collect())
    assert joined.rows() == [(ts * 1000, spot - 10 + 5 * k, spot, spot - 30)
                             for ts, spot in ((TS, 7100.0), (TS + 1, 7101.0), (LATER, 7102.0), (LATER + 1, 7103.0))
                             for k in range(4)]


def test_a_history_imports_day_is_in_the_lake_whole(hist, files):
    write_history(files.folder / HISTORY_NAME)
    server = hist()
    job = server.post("/gex_history_url", {"url": f"{files.url}/files/{HISTORY_NAME}"}).json()
    assert wait_job(server, job["id"])["status"] == "completed"
    lake_health(server, lambda h: h["exported"]["snapshots"] == HISTORY_SNAPS)
    server.stop()
    assert_lake_is_the_database(server, {"strikes": HISTORY_SNAPS * HISTORY_STRIKES, "snapshots": HISTORY_SNAPS})
    day_file = server.data_dir / "parquet" / "gexbot" / "SPX" / "gex_zero" / "20251021.snapshots.parquet"
    assert pl.read_parquet(day_file)["source"].unique().to_list() == [f"history:{job['id']}"]


@pytest.mark.slow
def test_an_export_cut_off_by_a_crash_is_finished_at_the_next_start_without_doubling_a_row(start_server):
    server = start_server(None, "--lake-export-interval", "3600")  # no export before the kill
    post_feed(server, [TS, TS + 1, TS + 2], ack="?ack=ingested")
    server.stop(signal.SIGKILL)
    # the moment of a crash mid-export: the range recorded 'writing', the strike and snapshot parts published,
    # the majors and maxchange parts not yet
    root = server.data_dir / "parquet" / "gexbot"
    with duckdb.connect(str(server.data_dir / "gex_data.db")) as con:
        lo, hi = lake.plan_range(con, lake.sequence_high(con))
        assert (lo, hi) == (0, 42)  # 6 snapshots of 4 strikes, 6 majors, 6 maxchange
        assert lake.export_range(con.cursor(), str(root), lo, hi)[0] == 8
    for path in [*root.rglob("*.majors.parquet"), *root.rglob("*.maxchange.parquet")]:
        path.unlink()
    published = sorted(p.name for p in (root / "SPX" / "gex_zero").iterdir())
    assert published == ["20260429.1-42.snapshots.parquet", "20260429.1-42.strikes.parquet"]
    server = start_server(server.data_dir, "--lake-export-interval", "0.2")
    health = lake_health(server, lambda h: h["exported"]["maxchange"] == 6)
    assert health["exported"] == {"strikes": 24, "snapshots": 6, "majors": 6, "maxchange": 6}
    server.stop()
    assert_lake_is_the_database(server, {"strikes": 24, "snapshots": 6, "majors": 6, "maxchange": 6})
    with server.db() as con:
        assert con.execute("SELECT lo, hi, state, files, rows FROM gex_lake_exports").fetchall() == [
            (0, 42, "done", 8, 42)]
    # the names the cut-off export published were the ones the resumed one wrote: the day files list them
    for kind in ("snapshots", "strikes", "majors"):
        assert lake.listed_parts(root / "SPX" / "gex_zero" / f"20260429.{kind}.parquet") == [
            f"20260429.1-42.{kind}.parquet"]


SNAPSHOT_ROW = ("INSERT INTO gex_snapshots (timestamp, ticker, endpoint, spot_price, zero_gamma, net_gex, min_dte, "
                "sec_min_dte, major_pos_vol, major_pos_oi, major_neg_vol, major_neg_oi, sum_gex_vol, sum_gex_oi, "
                "delta_risk_reversal, max_priors, received_at, source) "
                "SELECT $ms + i * 1000, 'SPX', 'gex_zero', 7100 + i, 7080, NULL, 0, 1, 7110, 7110, 7090, 7090, "
                "-10.5, 4.25, 0.1, '[[7110.0,1.0]]', $ms + i * 1000 + 7, 'history:1' FROM range(3) t(i)")
STRIKE_ROWS = ("INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors) "
               "SELECT $ms + i * 1000, 'SPX', 'gex_zero', 7090 + k * 10, k - 1.5, k, [k, 2, 3, 4, 5] "
               "FROM range(3) t(i), range(3) s(k)")
MAJORS_ROW = ("INSERT INTO gex_majors (timestamp, ticker, endpoint, spot, zero_gamma, mpos_vol, mneg_vol, source) "
              "VALUES ($ms, 'SPX', 'gex_zero', 7100, 7080, 7110, 7090, 'live')")
PAST, LATER_DAY = (time.strftime("%Y%m%d", time.gmtime(t)) for t in (TS, LATER))


def a_lake_of_strikes_only(data, monkeypatch):
    """A database and lake as gexsrv left them before the lake held the other kinds (its schema then: no `seq`
    but the strike rows', no gex_lake_backfills): a past day's strike rows compacted, a later day's in a part.
    Returns {strike file: sha256}."""
    monkeypatch.setattr(schema, "ADDED_COLUMNS",
                        [c for c in schema.ADDED_COLUMNS if c[1] != "seq" or c[0] == "gex_strikes"])
    monkeypatch.setattr(schema, "NUMBERED_TABLES", ("gex_strikes",))
    monkeypatch.setattr(schema, "GEX_TABLES", [d for d in schema.GEX_TABLES if "gex_lake_backfills" not in d])
    root = data / "parquet" / "gexbot"
    with duckdb.connect(str(data / "gex_data.db")) as con:
        schema.apply(con)
        for ms in (TS * 1000, LATER * 1000):
            for sql in (SNAPSHOT_ROW, STRIKE_ROWS, MAJORS_ROW):
                con.execute(sql, {"ms": ms})
        lo, hi = lake.plan_range(con, lake.sequence_high(con))
        strikes = pl.from_arrow(con.sql(lake.rows_sql("strikes", lake.NUMBERED), params=[lo, hi]).to_arrow_table())
        assert lake.publish_parts(strikes, str(root), "strikes", f"{lo + 1}-{hi}", "") == 2  # the export then
        lake.finish_range(con, lo, 2, strikes.height)
    monkeypatch.undo()
    lake.compact(str(root), lake.utc_today())
    strike_files = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*.parquet")}
    assert sorted(p.name for p in strike_files) == [f"{PAST}.strikes.parquet", f"{LATER_DAY}.1-18.strikes.parquet"]
    return strike_files


@pytest.mark.parametrize("crash", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["at the first start", "after a crash mid-backfill"])
def test_a_lake_of_strike_rows_only_is_brought_up_to_date_and_its_files_stay_as_they_are(start_server, tmp_path,
                                                                                          monkeypatch, crash):
    data = tmp_path / "data"
    data.mkdir()
    root = data / "parquet" / "gexbot"
    strike_files = a_lake_of_strikes_only(data, monkeypatch)
    if crash:  # the upgraded server's first export cut off: the majors of the past day written, the rest not
        with duckdb.connect(str(data / "gex_data.db")) as con:
            schema.apply(con)
            assert lake.plan_backfills(con) == ["majors", "maxchange", "snapshots"]
            assert lake.export_backfill(con.cursor(), str(root), "majors") == (2, 2)
        (root / "SPX" / "gex_zero" / f"{LATER_DAY}.0-0.majors.parquet").unlink()
        # the validator reads such a lake as it will be: the part of a backfill still writing is left out
        assert check(run(data), "crosscheck.parquet_rows").status == "passed"

    server = start_server(data, "--lake-export-interval", "0.2")
    health = lake_health(server, lambda h: h["last_export_at"])
    assert health["exported"] == {"strikes": 0, "snapshots": 6, "majors": 2, "maxchange": 0}
    assert server.post("/gex?ack=ingested", snapshot(timestamp=LATER + 5, n_strikes=3)).status == 202
    lake_health(server, lambda h: h["exported"]["snapshots"] == 7)
    server.stop()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in strike_files} == strike_files
    # the kinds it wrote, and not the maxchange it had none of (a new database's first export logged three such)
    said = re.findall(r"backfilled the lake with the (\w+) stored before", server.log_path.read_text())
    assert said == ["majors", "snapshots"]
    assert_lake_is_the_database(server, {"strikes": 21, "snapshots": 7, "majors": 2})
    with server.db() as con:
        assert con.execute("SELECT kind, state, files, rows FROM gex_lake_backfills ORDER BY kind").fetchall() == [
            ("majors", "done", 2, 2), ("maxchange", "done", 0, 0), ("snapshots", "done", 2, 6)]
        assert con.execute("SELECT count(*) FROM gex_snapshots WHERE seq IS NULL").fetchone() == (6,)  # as stored
        assert con.execute("SELECT name FROM gexsrv_migrations WHERE name LIKE '%.seq' ORDER BY 1").fetchall() == [
            ("add gex_majors.seq",), ("add gex_maxchange.seq",), ("add gex_snapshots.seq",), ("add gex_strikes.seq",)]
    folder = root / "SPX" / "gex_zero"
    assert lake.listed_parts(folder / f"{PAST}.snapshots.parquet") == [f"{PAST}.0-0.snapshots.parquet"]
    assert sorted(p.name for p in folder.glob(f"{LATER_DAY}*")) == [
        f"{LATER_DAY}.0-0.majors.parquet", f"{LATER_DAY}.0-0.snapshots.parquet", f"{LATER_DAY}.1-18.strikes.parquet",
        f"{LATER_DAY}.19-22.snapshots.parquet", f"{LATER_DAY}.19-22.strikes.parquet"]
    report = run(data)
    for name in ("structure.parquet_schema", "crosscheck.parquet_counts", "crosscheck.parquet_rows"):
        assert check(report, name).status == "passed", check(report, name)
