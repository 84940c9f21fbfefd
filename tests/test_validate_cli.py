"""`python -m gexsrv validate` and GET /integrity: exit codes, output, and a database locked by a running server."""

import json
import re
import shutil

import pytest

import make_legacy_db
from forkserver import run_gexsrv
from helpers import REPO, Server, snapshot
from validate_helpers import plant


def validate(*args):
    return run_gexsrv(["validate", *map(str, args)], cwd=REPO, timeout=120)


@pytest.fixture(scope="module")
def legacy_db(tmp_path_factory):
    """The legacy generator's database, built once for the module (half a second of CPU)."""
    path = tmp_path_factory.mktemp("legacy") / "gex_data.db"
    make_legacy_db.build(path, days=2, every=60, n_strikes=20)
    return path


@pytest.fixture
def legacy(tmp_path, legacy_db):
    """A data dir holding only what the legacy generator writes (never opened by gexsrv): a copy of its own."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(legacy_db, data / "gex_data.db")
    return data


def test_clean_legacy_data_passes_with_its_duplicates_as_a_warning(legacy):
    done = validate("--data-dir", legacy)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"^timeline\.exact_duplicates +warning +3 keys", done.stdout, re.M)
    assert done.stdout.strip().splitlines()[-1].startswith("clean: 0 failed, 1 warnings")
    report = json.loads(validate("--data-dir", legacy, "--json", "--ticker", "NDX").stdout)
    assert report["status"] == "clean" and report["exit_code"] == 0 and report["options"]["ticker"] == ["NDX"]
    schema = next(c for c in report["checks"] if c["name"] == "structure.duckdb_schema")
    assert schema["status"] == "passed" and "not adopted" in schema["checked"]


def test_a_failed_check_exits_1_and_shows_its_examples(legacy):
    plant(legacy, "UPDATE gex_snapshots SET min_dte = 9 WHERE ticker = 'SPX' AND timestamp = 1761053400000")
    done = validate("--data-dir", legacy)
    assert done.returncode == 1
    assert re.search(r"^rules\.dte +failed +1 snapshots", done.stdout, re.M)
    assert "ticker=SPX  endpoint=legacy  timestamp=1761053400000  min_dte=9  sec_min_dte=1" in done.stdout


def test_unreadable_data_exits_2(tmp_path):
    missing = validate("--data-dir", tmp_path / "nowhere")
    assert missing.returncode == 2 and "no data dir" in missing.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "gex_data.db").write_bytes(b"not a database" * 1000)
    assert validate("--data-dir", tmp_path / "bad").returncode == 2
    assert validate("--data-dir", tmp_path, "--sample", "-1").returncode != 0


def test_against_a_running_server(legacy):
    server = Server(legacy).start()
    try:
        locked = validate("--data-dir", legacy)
        assert locked.returncode == 2
        assert "locked" in locked.stderr and "--url" in locked.stderr

        reply = server.get("/integrity?ticker=SPX&sample=3")
        assert reply.status == 200
        report = reply.json()
        assert report["status"] == "clean" and report["options"]["ticker"] == ["SPX"]
        assert server.get("/integrity?sample=-1").status == 400

        bad = snapshot(ticker="SPX", timestamp=1777471200, min_dte=3, sec_min_dte=1)
        assert server.post("/gex?ack=ingested", bad).status == 202  # in DuckDB before the validation reads it
        asked = validate("--url", server.url, "--json", "--ticker", "SPX")
        assert asked.returncode == 1
        dte = next(c for c in json.loads(asked.stdout)["checks"] if c["name"] == "rules.dte")
        assert dte["count"] == 1 and dte["examples"][0]["timestamp"] == 1777471200000
    finally:
        server.stop()
