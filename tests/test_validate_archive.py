"""The validator's journal checks: the raw archive (data/source/live) against DuckDB, and the quarantine.

One real server with small journal segments takes snapshots (one sent twice with other values), majors,
maxchange and /uw frames, and archives them; each test plants its defect in a copy of that data dir.
"""

import json
import shutil

import duckdb
import pytest
from forkserver import run_gexsrv
from helpers import REPO, Server, post_fillers_until, snapshot
from validate_helpers import MINUTE, MS, T0, plant

SPOTS = [7100.0, 7100.5, 7101.0, 7101.5, 7102.0]
FIRST_SPOT, DUPLICATE_SPOT = SPOTS[0], SPOTS[0] + 50
UW_ID_SQL = "SELECT id FROM universal_webhooks WHERE topic = 'lit_trades:SPY'"
ARCHIVE_GLOB = "source/live/*/*.ndjson.zst"


def spx(i, spot):
    return {**snapshot(ticker="SPX", timestamp=T0 + 60 * i, spot=spot), "endpoint": "gex_zero"}


def with_a_bad_strike_row(body):
    """The decoder skips a strike row whose strike is not a number (and keeps the snapshot)."""
    return {**body, "strikes": body["strikes"] + [["bad", 1.0, 1.0, [1.0, 2.0, 3.0, 4.0, 5.0]]]}


POSTS = [
    *[("/gex", spx(i, spot) if i != 1 else with_a_bad_strike_row(spx(i, spot))) for i, spot in enumerate(SPOTS)],
    ("/gex", spx(0, DUPLICATE_SPOT)),  # the same key again, other values: ingest keeps the first
    ("/gex", {"timestamp": T0, "ticker": "SPX", "endpoint": "gex_zero", "spot": 7100.0, "zero_gamma": 7080.0,
              "mpos_vol": 7105.0, "mpos_oi": 7105.0, "mneg_vol": 7090.0, "mneg_oi": 7090.0,
              "net_gex_vol": 10.0, "net_gex_oi": 4.0}),
    ("/gex", {"timestamp": T0, "ticker": "SPX", "endpoint": "gex_maxchange",
              **{k: [7105.0, 100.0] for k in ("current", "one", "five", "ten", "fifteen", "thirty")}}),
    ("/uw", [None, None, "lit_trades:SPY", "new_msg", {"data": {"price": 1.5}}]),  # stored raw only
    ("/uw", {"topic": "gex", "eventType": "snapshot",  # a raw row and a snapshot, from one frame
             "payload": {"ticker": "ndx", "endpoint": "one",
                         "data": snapshot(ticker=None, timestamp=T0, n_strikes=3)}}),
]


def archived(data):
    """The archive's lines as dicts (without bodies but the spot), in seq order."""
    found = duckdb.sql(f"SELECT seq, kind, ticker, endpoint, ts, id, dup, (body->>'spot')::DOUBLE AS spot "
                       f"FROM read_ndjson('{data}/{ARCHIVE_GLOB}') ORDER BY seq")
    return [dict(zip(found.columns, row)) for row in found.fetchall()]


def wait_for_archive(server):
    """Post filler snapshots until one, and so every line before it, is in the archive."""
    post_fillers_until(server, lambda: any(line["ticker"] == "QQQ" for line in archived(server.data_dir)), T0,
                       spot=600.0)


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(data dir with an archive and a stopped server's database, GET /integrity's report while it ran)."""
    data = tmp_path_factory.mktemp("archive") / "data"
    server = Server(data, "--journal-segment-mb", "1", "--journal-segment-seconds", "1").start()
    try:
        replies = [server.post(path, body) for path, body in POSTS]
        assert [r.status for r in replies] == [202] * 8 + [200] * 2
        assert replies[5].json()["duplicate"] is True
        wait_for_archive(server)
        integrity = server.get("/integrity?sample=100")
        assert integrity.status == 200
    finally:
        server.stop()
    return data, integrity.json()


def copy(archive, tmp_path, lake=True):
    """A copy of the data dir, optionally without its Parquet lake (which would disagree with a DuckDB defect)."""
    return shutil.copytree(archive[0], tmp_path / "data", ignore=None if lake else shutil.ignore_patterns("parquet"))


def validate(data, *args):
    done = run_gexsrv(["validate", "--data-dir", str(data), "--json", *args], cwd=REPO, timeout=120)
    return done.returncode, json.loads(done.stdout)


def check(report, name):
    return next(c for c in report["checks"] if c["name"] == name)


def failed(report):
    return sorted(c["name"] for c in report["checks"] if c["status"] == "failed")


def keys_archived(data):
    return len({(x["kind"], x["ticker"], x["endpoint"], x["ts"], x["id"]) for x in archived(data)})


def test_the_archive_holds_the_duplicate_and_duckdb_the_first_values(archive):
    data, _ = archive
    lines = [x for x in archived(data) if (x["kind"], x["ticker"], x["ts"]) == ("snapshot", "SPX", MS)]
    assert [(x["dup"], x["spot"]) for x in lines] == [(False, FIRST_SPOT), (True, DUPLICATE_SPOT)]
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT spot_price FROM gex_snapshots WHERE ticker = 'SPX' AND timestamp = ?",
                          [MS]).fetchall() == [(FIRST_SPOT,)]
        assert db.execute("SELECT count(*) FROM gex_strikes WHERE ticker = 'SPX' AND timestamp = ?",
                          [MS + MINUTE]).fetchall() == [(5,)]  # six in the body, one skipped


def test_clean_archive_passes_with_its_sample_reported(archive, tmp_path):
    data = copy(archive, tmp_path)
    keys = keys_archived(data)
    code, report = validate(data, "--sample", "100")
    assert code == 0 and failed(report) == []
    sample = check(report, "journaled.archive_sample")
    assert sample["status"] == "passed" and sample["count"] == 0
    assert sample["checked"].startswith(f"{keys} of {keys} archived keys (seed 0;")
    assert check(report, "journaled.quarantine")["status"] == "passed"
    code, report = validate(data, "--sample", "3", "--seed", "7")
    assert code == 0 and check(report, "journaled.archive_sample")["checked"].startswith(f"3 of {keys} archived keys")
    code, report = validate(data, "--ticker", "NDX")  # the snapshot of the /uw frame; frames have no ticker
    assert code == 0 and check(report, "journaled.archive_sample")["checked"].startswith("1 of 1 archived keys")


def test_the_running_server_checks_its_archive_too(archive):
    _, report = archive
    assert report["exit_code"] == 0, [c for c in report["checks"] if c["status"] == "failed"]
    sample = check(report, "journaled.archive_sample")
    assert sample["status"] == "passed" and " archived keys " in sample["checked"]
    assert not sample["checked"].startswith("0 of")


def planted(archive, tmp_path, name, count, *statements):
    """The report and the examples of check `name` on a copy with statements planted: it fails, `count` times."""
    data = copy(archive, tmp_path, lake=False)  # a DuckDB defect only: the lake, as the archive, holds the values
    plant(data, *statements)
    code, report = validate(data, "--sample", "100")
    found = check(report, name)
    assert code == 1 and found["status"] == "failed" and found["count"] == count, found
    return report, found["examples"]


def test_a_stored_value_unlike_the_first_line_fails_naming_its_key(archive, tmp_path):
    # the duplicate's values where the first line's belong: what keeping the last record would store
    report, examples = planted(
        archive, tmp_path, "journaled.archive_sample", 2,
        f"UPDATE gex_snapshots SET spot_price = {DUPLICATE_SPOT} WHERE ticker = 'SPX' AND timestamp = {MS}",
        f"UPDATE gex_majors SET mneg_oi = 7000 WHERE ticker = 'SPX' AND timestamp = {MS}")
    assert failed(report) == ["journaled.archive_sample"]
    assert [{k: e[k] for k in ("table", "ticker", "endpoint", "timestamp", "field", "duckdb", "archive")}
            for e in examples] == [
        {"table": "gex_majors", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS, "field": "mneg_oi",
         "duckdb": "7000.0", "archive": "7090.0"},
        {"table": "gex_snapshots", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS, "field": "spot_price",
         "duckdb": str(DUPLICATE_SPOT), "archive": str(FIRST_SPOT)},
    ]


def test_missing_rows_fail_naming_their_keys(archive, tmp_path):
    with duckdb.connect(str(archive[0] / "gex_data.db"), read_only=True) as db:
        (uw_id,) = db.execute(UW_ID_SQL).fetchone()
    report, examples = planted(
        archive, tmp_path, "journaled.archive_sample", 3,
        f"DELETE FROM gex_strikes WHERE ticker = 'SPX' AND timestamp = {MS + 2 * MINUTE}",
        f"DELETE FROM gex_snapshots WHERE ticker = 'SPX' AND timestamp = {MS + 2 * MINUTE}",
        f"DELETE FROM gex_strikes WHERE ticker = 'SPX' AND timestamp = {MS + 3 * MINUTE} AND strike = "
        f"(SELECT max(strike) FROM gex_strikes WHERE ticker = 'SPX' AND timestamp = {MS + 3 * MINUTE})",
        f"DELETE FROM universal_webhooks WHERE id = '{uw_id}'")
    assert [(e["table"], e["ticker"], e["timestamp"], e["field"], e["duckdb"], e["archive"]) for e in examples] == [
        ("gex_snapshots", "SPX", MS + 2 * MINUTE, "row", "missing", "present"),
        ("gex_snapshots", "SPX", MS + 3 * MINUTE, "strikes", "4", "5"),
        ("universal_webhooks", None, examples[2]["timestamp"], "row", "missing", str(uw_id)),
    ]


def test_a_quarantined_record_fails_its_check_and_only_that(archive, tmp_path):
    majors = next(x for x in archived(archive[0]) if x["kind"] == "majors")
    line = {k: majors[k] for k in ("seq", "kind", "ticker", "endpoint", "ts")}
    # refused by the database on its own: in the quarantine, not in its table (and so not missing from it)
    report, examples = planted(
        archive, tmp_path, "journaled.quarantine", 1,
        f"DELETE FROM gex_majors WHERE ticker = 'SPX' AND timestamp = {MS}",
        f"INSERT INTO gexsrv_quarantine (seq, line, error) VALUES ({line['seq']}, '{json.dumps(line)}', 'refused')")
    assert failed(report) == ["journaled.quarantine"]
    assert {k: examples[0][k] for k in ("seq", "kind", "ticker", "endpoint", "timestamp", "error")} == {
        "seq": line["seq"], "kind": "majors", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS,
        "error": "refused"}


def test_without_an_archive_the_check_is_skipped_with_a_note(archive, tmp_path):
    data = copy(archive, tmp_path)
    shutil.rmtree(data / "source" / "live")
    code, report = validate(data)
    sample = check(report, "journaled.archive_sample")
    assert code == 0 and sample["status"] == "skipped" and "no journal archive" in sample["detail"]
