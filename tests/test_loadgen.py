"""Smoke test of the load generator against the baseline server, both as real processes over real HTTP."""
import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
# bench/ holds scripts, not a package: import them the way the scripts import each other.
sys.path.insert(0, str(BENCH))
from loadgen import run  # noqa: E402

SEED = 1


@contextlib.contextmanager
def baseline_server(db):
    """Run bench/baseline_server.py on a free port; yield its URL; stop it on exit so the db can be read."""
    cmd = [sys.executable, str(BENCH / "baseline_server.py"), "--port", "0", "--db", str(db)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) as proc:
        try:
            line = proc.stdout.readline()
            assert line.startswith("listening on "), f"baseline server did not start: {line!r}"
            yield line.split()[-1]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def assert_ordered(latency_ms):
    assert latency_ms["p50"] <= latency_ms["p95"] <= latency_ms["p99"] <= latency_ms["max"]


@pytest.mark.slow
def test_open_loop_run_is_counted_and_stored(tmp_path):
    print(f"seed {SEED}")
    db = tmp_path / "b.db"
    with baseline_server(db) as url:
        result = asyncio.run(run(url, rate=50, clients=4, duration=2, strikes=100, mix=0.0, saturate=False,
                                 warmup=0, seed=SEED))
    assert abs(result["sent"] - 100) <= 1
    assert result["ok"] == result["sent"]
    assert result["errors"] == {}
    assert_ordered(result["latency_ms"])
    with duckdb.connect(str(db), read_only=True) as con:
        snapshots = con.execute("SELECT count(*), count(DISTINCT (ticker, timestamp)) FROM gex_snapshots").fetchone()
        strike_rows = con.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
    assert snapshots == (result["ok"], result["ok"])
    assert strike_rows == result["ok"] * 100


@pytest.mark.slow
def test_cli_prints_one_json_line(tmp_path):
    with baseline_server(tmp_path / "b.db") as url:
        out = subprocess.run(
            [sys.executable, str(BENCH / "loadgen.py"), "--url", url, "--rate", "20", "--clients", "2",
             "--duration", "1", "--strikes", "100", "--mix", "0.5", "--seed", str(SEED), "--json"],
            capture_output=True, text=True, timeout=30, check=True)
    result = json.loads(out.stdout)
    assert result["mode"] == "open-loop"
    assert result["target_rate"] == 20
    assert abs(result["sent"] - 20) <= 1
    assert result["errors"] == {}
    assert_ordered(result["latency_ms"])
    # Half the requests went to /uw, so half carried strike rows.
    assert result["strike_rows_per_s"] == pytest.approx(result["req_per_s"] * 100 / 2, rel=0.01)


def test_start_sets_the_first_timestamp():
    from loadgen import Requests

    path, body = Requests(strikes=3, mix=0.0, seed=SEED, start=2_000_000_000)(5)
    snapshot = json.loads(body)
    # request 5 is the second snapshot of the second ticker
    assert path == "/gex"
    assert (snapshot["ticker"], snapshot["timestamp"], len(snapshot["strikes"])) == ("NDX", 2_000_000_001, 3)
