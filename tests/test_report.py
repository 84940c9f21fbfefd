"""Smoke test of the performance report: bench/report.py --quick with tiny durations, real servers, real HTTP."""
import json
import subprocess
import sys

from helpers import BENCH, REPO
# report and servers are bench/ scripts: helpers, which conftest.py imports first, puts bench/ on the path.
from report import HISTORY_STRIKES, SCENARIOS, crashed, machine, markdown, measure, parse_args
from servers import ServerProcess

HISTORY_SNAPSHOTS = 50
# A server that starts, takes connections without answering, then dies with a last word in its log.
DYING_SERVER = """import socket, sys, time
listener = socket.create_server(("127.0.0.1", 0))
print(f"listening on http://127.0.0.1:{listener.getsockname()[1]}", flush=True)
time.sleep(0.3)
print("dying on purpose", flush=True)
sys.exit(3)
"""


def test_quick_report_has_every_scenario_no_crash_and_gexsrv_no_errors(tmp_path):
    out = tmp_path / "perf.json"
    done = subprocess.run(
        [sys.executable, str(BENCH / "report.py"), "--quick", "--duration", "0.5", "--baseline-duration",
         "0.5", "--warmup", "0", "--history-snapshots", str(HISTORY_SNAPSHOTS), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr  # 1 when a server crashed: its exit code and log are in stderr
    report = json.loads(out.read_text())

    names = [name for name, _, _ in SCENARIOS]
    runs = {(r["scenario"], r["server"]): r for r in report["scenarios"]}
    assert sorted(runs) == sorted((name, server) for name in names for server in ("gexsrv", "baseline"))
    assert {key: r["crash"] for key, r in runs.items() if r["crash"]} == {}  # neither gexsrv nor the baseline
    for name in names:
        gex = runs[name, "gexsrv"]
        assert gex["errors"] == {}, (name, gex["errors"])
        assert gex["sent"] == gex["ok"] > 0
        assert 0 < gex["latency_ms"]["p50"] <= gex["latency_ms"]["max"]
        assert gex["memory_before"]["rss_mb"] > 10 and gex["memory_after"]["peak_mb"] >= gex["memory_after"]["rss_mb"]
        # gexsrv stored every snapshot it acknowledged, none of them as a duplicate
        assert gex["server_view"]["stored"]["snapshot"] >= gex["ok"]
        assert "duplicates" not in gex["server_view"]["stored"]
        assert runs[name, "baseline"]["sent"] + runs[name, "baseline"]["errors"].get("unsent", 0) > 0
    assert [c["scenario"] for c in report["ratios"]] == names

    history = report["history"]
    assert (history["status"], history["snapshots"], history["strike_rows"]) == \
        ("completed", HISTORY_SNAPSHOTS, HISTORY_SNAPSHOTS * HISTORY_STRIKES)
    assert report["machine"]["nproc"] >= 1 and report["machine"]["duckdb"]

    table = done.stdout
    for name in names:
        assert f"| {name} | gexsrv |" in table and f"| {name} | baseline |" in table
    assert "| `python -m gexsrv import` | 50 | 6,000 |" in table
    assert "crashed" not in table


def test_a_server_that_dies_during_its_run_is_reported_as_crashed():
    def dying(workdir):
        return ServerProcess("dying", [sys.executable, "-c", DYING_SERVER], workdir)

    run = measure(dying, "latency 100 req/s, 10 clients", 100, 10, 0.5, 0.5, parse_args(["--quick", "--warmup", "0"]))
    assert run["crash"]["exit_code"] == 3 and run["crash"]["when"] == "before it was stopped"
    assert run["crash"]["log_tail"].splitlines()[-1] == "dying on purpose"
    assert run["ok"] == 0 and run["memory_after"] is None and run["server_view"] is None

    report = {"machine": {**machine(), "load_avg_end": [0.0, 0.0, 0.0]}, "settings": {}, "scenarios": [run]}
    assert crashed(report) == [run]
    text = markdown(report)
    assert '**dying crashed** in "latency 100 req/s, 10 clients": exit code 3 before it was stopped' in text
    assert text.rstrip().endswith("dying on purpose\n```")
