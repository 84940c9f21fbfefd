"""Smoke test of the performance report: bench/report.py --quick with tiny durations, real servers, real HTTP."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# bench/ holds scripts, not a package: import them the way the scripts import each other.
sys.path.insert(0, str(REPO / "bench"))
from report import HISTORY_STRIKES, SCENARIOS  # noqa: E402

HISTORY_SNAPSHOTS = 50


def test_quick_report_has_every_scenario_and_gexsrv_no_errors(tmp_path):
    out = tmp_path / "perf.json"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "report.py"), "--quick", "--duration", "0.5", "--baseline-duration",
         "0.5", "--warmup", "0", "--history-snapshots", str(HISTORY_SNAPSHOTS), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    report = json.loads(out.read_text())

    names = [name for name, _, _ in SCENARIOS]
    runs = {(r["scenario"], r["server"]): r for r in report["scenarios"]}
    assert sorted(runs) == sorted((name, server) for name in names for server in ("gexsrv", "baseline"))
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
