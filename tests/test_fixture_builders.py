"""The fixture builders other tests stand on (bench/make_history_file.py, bench/make_legacy_db.py), as commands."""
import gzip
import json
import subprocess
import sys

import duckdb
import pytest

import make_legacy_db
from helpers import BENCH


def command(script, *args):
    return subprocess.run([sys.executable, str(BENCH / script), *map(str, args)], capture_output=True, text=True,
                          timeout=60)


def test_history_file_as_an_array_and_as_gzipped_json_lines_holds_the_same_snapshots(tmp_path):
    made = command("make_history_file.py", tmp_path / "a.json", "--snapshots", 3, "--strikes", 4)
    assert json.loads(made.stdout) == {"snapshots": 3, "strike_rows": 12, "path": str(tmp_path / "a.json")}
    command("make_history_file.py", tmp_path / "b.jsonl.gz", "--snapshots", 3, "--strikes", 4, "--gzip", "--jsonl")
    array = json.loads((tmp_path / "a.json").read_text())
    lines = gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()).decode().splitlines()
    assert [json.loads(line) for line in lines] == array
    assert [s["timestamp"] for s in array] == [1761053400, 1761053401, 1761053402]  # 09:30 New York, EDT
    for snap in array:
        strikes = [row[0] for row in snap["strikes"]]
        assert len(strikes) == 4 and strikes == sorted(strikes)
        assert snap["sum_gex_vol"] == round(sum(row[1] for row in snap["strikes"]), 3)
        assert {snap["major_pos_vol"], snap["major_neg_oi"]} <= set(strikes)


def test_history_file_opens_at_the_bell_in_winter_time_too(tmp_path):
    command("make_history_file.py", tmp_path / "w.json", "--snapshots", 2, "--strikes", 1, "--every", 60,
            "--date", "2025-12-01", "--ticker", "NQ_NDX")
    snaps = json.loads((tmp_path / "w.json").read_text())
    assert [(s["ticker"], s["timestamp"]) for s in snaps] == [("NQ_NDX", 1764599400), ("NQ_NDX", 1764599460)]


def test_legacy_database_layout_copies_and_fingerprint(tmp_path):
    path = tmp_path / "gex_data.db"
    made = command("make_legacy_db.py", path, "--days", 1, "--tickers", "SPX", "--every", 600, "--strikes", 3)
    printed = json.loads(made.stdout)
    assert printed == make_legacy_db.fingerprint(path)
    assert printed["gex_snapshots"]["rows"] == 39 + 3 and printed["gex_strikes"]["rows"] == 39 * 3
    with duckdb.connect(str(path)) as db:
        assert db.execute("SELECT count(*) FROM (SELECT DISTINCT * FROM gex_snapshots)").fetchone() == (39,)
        assert db.execute("SELECT min(timestamp), max(timestamp) FROM gex_strikes").fetchone() == (
            make_legacy_db.FIRST_MS, make_legacy_db.FIRST_MS + 38 * 600_000)
        db.execute("ALTER TABLE gex_snapshots ADD COLUMN endpoint VARCHAR")  # as adoption does
    assert make_legacy_db.fingerprint(path) == printed
    with duckdb.connect(str(path)) as db:
        db.execute("UPDATE gex_strikes SET gamma = gamma + 1e-9 WHERE rowid = 7")
    changed = make_legacy_db.fingerprint(path)
    assert changed["gex_snapshots"] == printed["gex_snapshots"] and changed["gex_strikes"] != printed["gex_strikes"]

    again = command("make_legacy_db.py", path)
    assert again.returncode == 1 and f"refusing to touch existing {path}" in again.stderr


def test_legacy_database_refuses_a_ticker_without_a_starting_spot(tmp_path):
    with pytest.raises(ValueError, match="no starting spot for XYZ"):
        make_legacy_db.build(tmp_path / "gex_data.db", tickers=["SPX", "XYZ"])
    assert not (tmp_path / "gex_data.db").exists()
