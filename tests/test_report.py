"""Smoke test of the performance report: bench/report.py --quick with tiny durations, real servers, real HTTP; and
the original server's stand-in (bench/original_server.py) doing what its docstring says."""
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import BENCH, REPO, request, snapshot
# report and servers are bench/ scripts: helpers, which conftest.py imports first, puts bench/ on the path.
from report import (COMPARED, GEXSRV_PEERS, HISTORY_STRIKES, PEERS, SCENARIOS, Peer, crashed, machine, markdown,
                    measure, parse_args, soak)
from servers import ORIGINAL_DB, Fresh, ServerProcess, original

HISTORY_SNAPSHOTS = 50
STRIKES = 300  # the report's default
# A server that starts, takes connections without answering, then dies with a last word in its log.
DYING_SERVER = """import socket, sys, time
listener = socket.create_server(("127.0.0.1", 0))
print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
time.sleep(0.3)
print("dying on purpose", flush=True)
sys.exit(3)
"""


def stored_by_original(workdir):
    """(snapshot rows, strike rows) in the original stand-in's SQLite file."""
    with sqlite3.connect(Path(workdir) / ORIGINAL_DB) as con:
        return tuple(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                     for table in ("gex_snapshots", "gex_strikes"))


def assert_gexsrv_run(run):
    # a busy machine may not send an open-loop run's every request within the drain: those are unsent, not errors
    assert set(run["errors"]) <= {"unsent"}, (run["scenario"], run["server"], run["errors"])
    assert run["sent"] == run["ok"] == run["ok_total"] > 0  # no warm-up: every request is in the window
    assert 0 < run["latency_ms"]["p50"] <= run["latency_ms"]["max"]
    assert run["memory_before"]["rss_mb"] > 10 and run["memory_after"]["peak_mb"] >= run["memory_after"]["rss_mb"]
    assert run["server_cpu_ms_per_req"] > 0 and run["server_answered"] > 0
    assert 0 < run["server_loop_ms_per_req"] <= run["server_cpu_ms_per_req"]  # the loop is one of its threads
    # gexsrv stored every snapshot it acknowledged (the report waits for it to go idle first), none as a duplicate
    assert run["server_view"]["stored"] == {"snapshot": run["ok_total"], "strike_rows": run["ok_total"] * STRIKES}


def assert_original_run(run):
    assert set(run["errors"]) <= {"unsent"}, run["errors"]  # it may fall behind, but answers all it is sent
    assert run["ok_total"] == run["sent"] > 0
    assert run["server_cpu_ms_per_req"] > 0
    assert stored_by_original(run["workdir"]) == (run["ok_total"], run["ok_total"] * STRIKES)


@pytest.mark.slow
def test_quick_report_runs_every_peer_in_the_chosen_scenarios_without_a_crash(tmp_path):
    """An open-loop scenario with latency targets and the closed loop: the other two differ only in their rate
    and client count."""
    out = tmp_path / "perf.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--quick", "--duration", "0.5", "--baseline-duration", "0.5",
         "--warmup", "0", "--drain", "2", "--scenario", "500", "--scenario", "saturation", "--history-snapshots",
         str(HISTORY_SNAPSHOTS), "--json", str(out), "--keep", str(tmp_path / "servers")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr  # 1 when a server crashed: its exit code and log are in stderr
    report = json.loads(out.read_text())

    names = [name for name, rate, _ in SCENARIOS if rate in (500, None)]
    runs = {(r["scenario"], r["server"]): r for r in report["scenarios"]}
    assert sorted(runs) == sorted((name, peer.name) for name in names for peer in PEERS)
    assert {key: r["crash"] for key, r in runs.items() if r["crash"]} == {}
    for name in names:
        for peer in PEERS:
            assert runs[name, peer.name]["path"] == peer.path
        for peer in GEXSRV_PEERS:
            assert_gexsrv_run(runs[name, peer])
        assert_original_run(runs[name, "original"])
        assert runs[name, "baseline"]["sent"] + runs[name, "baseline"]["errors"].get("unsent", 0) > 0

    assert [c["scenario"] for c in report["ratios"]] == names
    assert all(sorted(c["pairs"]) == sorted(f"{of}/{to}" for of, to in COMPARED) for c in report["ratios"])
    # gexsrv and the original both answered in every window, so every ratio between them has a value
    assert all(value is not None for c in report["ratios"] for value in c["pairs"]["gexsrv/original"].values())
    cpu_targets = [(t["scenario"], t["server"]) for t in report["targets"] if t["target"].startswith("server CPU")]
    assert sorted(cpu_targets) == sorted((name, peer) for name in names for peer in GEXSRV_PEERS)
    assert {t["target"] for t in report["targets"] if t["scenario"] == "latency 500 req/s, 10 clients"} == \
        {"p95 < 5 ms", "p99 < 15 ms", "server CPU <= 1 ms/req"}

    history = report["history"]
    assert (history["status"], history["snapshots"], history["strike_rows"]) == \
        ("completed", HISTORY_SNAPSHOTS, HISTORY_SNAPSHOTS * HISTORY_STRIKES)
    assert report["machine"]["nproc"] >= 1 and report["machine"]["duckdb"]

    table = done.stdout
    for name in names:
        for peer in PEERS:
            assert f"| {name} | {peer.name} |" in table
        for of, to in COMPARED:
            assert f"| {name} | {of}/{to} |" in table
    assert "| server CPU <= 1 ms/req | saturation, 10 clients | gexsrv |" in table
    assert "| `python -m gexsrv import` | 50 | 6,000 |" in table
    assert "crashed" not in table


def test_the_original_stand_in_upserts_a_repeated_snapshot_and_replaces_its_strikes(tmp_path):
    first = snapshot(n_strikes=5, spot=7100.0)
    later = snapshot(n_strikes=3, spot=7200.0, net_gex=42.0)  # same ticker and timestamp; net_gex wins as an alias
    with Fresh(original, keep=tmp_path) as server:
        replies = [request("POST", server.url + "/gex/", json.dumps(body).encode()) for body in (first, later)]
        refused = request("POST", server.url + "/gex", b"[1, 2]")
    assert [(r.status, r.json()) for r in replies] == [(202, {"status": "ok", "ticker": "SPX"})] * 2
    assert refused.status == 400 and "not a JSON object" in refused.json()["error"]
    assert server.crash is None
    with sqlite3.connect(server.workdir / ORIGINAL_DB) as con:
        assert con.execute("SELECT ticker, timestamp, endpoint, spot, net_gex_vol FROM gex_snapshots").fetchall() == \
            [("SPX", first["timestamp"], "gex_zero", 7200.0, 42.0)]
        strikes = con.execute("SELECT strike, gex_vol, gex_oi, priors FROM gex_strikes ORDER BY strike").fetchall()
    assert strikes == [(row[0], row[1], row[2], json.dumps(row[3])) for row in later["strikes"]]


@pytest.mark.slow
def test_a_server_that_dies_during_its_run_is_reported_as_crashed():
    def dying(workdir):
        return ServerProcess("dying", [sys.executable, "-c", DYING_SERVER], workdir)

    run = measure(Peer("dying", dying), "latency 100 req/s, 10 clients", 100, 10, 0.5, 0.5,
                  parse_args(["--quick", "--warmup", "0"]))
    assert run["crash"]["exit_code"] == 3 and run["crash"]["when"] == "before it was stopped"
    assert run["crash"]["log_tail"].splitlines()[-1] == "dying on purpose"
    assert run["ok"] == 0 and run["memory_after"] is None and run["server_view"] is None
    assert run["server_cpu_ms_per_req"] is None  # it answered nothing

    report = {"machine": {**machine(), "load_avg_end": [0.0, 0.0, 0.0]}, "settings": {}, "scenarios": [run]}
    assert crashed(report) == [run]
    text = markdown(report)
    assert '**dying crashed** in "latency 100 req/s, 10 clients": exit code 3 before it was stopped' in text
    assert text.rstrip().endswith("dying on purpose\n```")


@pytest.mark.slow
def test_a_short_soak_reads_the_server_once_it_has_stored_what_it_acknowledged():
    """The soak's view of the server (1.5 s of it) is read once ingest has caught up, as a scenario's is: the rows
    stored are the rows acknowledged, not those of the last ingest before the view was read."""
    run = soak(0.025, parse_args(["--soak", "0.025", "--soak-rate", "100", "--soak-clients", "2"]))
    assert run["crash"] is None
    assert run["errors"] == {} and run["ok_total"] > 100
    assert run["server_view"]["stored"] == {"snapshot": run["ok_total"], "strike_rows": run["ok_total"] * STRIKES}
