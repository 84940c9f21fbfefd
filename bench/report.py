"""The performance report (`make perf`): gexsrv against the original server's stand-in and the executemany
baseline under the same load, plus the history import rate, printed as markdown and written as JSON.

Every scenario runs five peers in turn, each a fresh server over a fresh temporary dir (PEERS):
  gexsrv               POST /gex, replies once the request's journal line is fsynced (ack=journal, the default)
  gexsrv ack=ingested  POST /gex?ack=ingested, replies once the row is committed in DuckDB
  gexsrv processes=1   gexsrv --processes 1 (one process does everything), ack=journal
  baseline             bench/baseline_server.py: one DuckDB executemany transaction per request
  original             bench/original_server.py: the original's SQLite upsert per request, as its users run it
The scenarios (bench/loadgen.py, 300-strike snapshots):
  latency    open loop at 100, 500 and 1,000 req/s from 10 or 50 clients
  saturation closed loop, 10 clients: the highest sustained rate
The baseline manages about 20 req/s and the original about 100, so their runs are capped at --baseline-duration
seconds (and they get as long again to catch up); where they fall behind, their latency is mostly time spent
queued, which is the point. gexsrv gets --drain seconds to catch up; requests still unsent then are errors.
Each server's resident memory is read from /proc/<pid>/status before and after its run, and its CPU time per
response over the measured window from /proc/<pid>/stat. The ratios compare gexsrv with the original and the
baseline; the targets table checks gexsrv's runs against the issue's targets (TARGETS, CPU_TARGET_MS).
`--soak MINUTES` instead runs gexsrv alone at --soak-rate (500) req/s for that long, sampling its memory throughout.
A server that dies during its run, or exits uncleanly when stopped, is recorded in its run's "crash" (exit code and
last log lines) and listed under the tables; the report then exits with status 1.
Progress goes to stderr, the markdown to stdout.
"""
import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, NamedTuple

import duckdb
import msgspec
import polars
import pyarrow
import tornado

import gexsrv
import loadgen
import make_history_file
import servers

HISTORY_NAME = f"{make_history_file.DAY}_SPX_classic_gex_zero.json"
HISTORY_STRIKES = 120  # make_history_file.py's default chain
# name, target rate (None: saturate), clients. 100 req/s is a rate the original keeps up with, so its latency
# there is service time, not queueing; the others are the issue's.
SCENARIOS = [
    ("latency 100 req/s, 10 clients", 100, 10),
    ("latency 500 req/s, 10 clients", 500, 10),
    ("latency 1000 req/s, 50 clients", 1000, 50),
    ("saturation, 10 clients", None, 10),
]
# The targets for gexsrv: latency percentiles in ms per scenario, and server CPU per snapshot in every one.
TARGETS = {
    "latency 500 req/s, 10 clients": {"p95": 5.0, "p99": 15.0},
    "latency 1000 req/s, 50 clients": {"p95": 10.0},
}
CPU_TARGET_MS = 1.0


class Peer(NamedTuple):
    name: str
    make: Callable  # servers.gexsrv, .baseline, .original
    path: str = "/gex"  # where the snapshots go, query string included
    slow: bool = False  # runs capped at --baseline-duration, with as long again to catch up
    flags: tuple = ()  # the server's command-line flags


PEERS = [
    Peer("gexsrv", servers.gexsrv),
    Peer("gexsrv ack=ingested", servers.gexsrv, "/gex?ack=ingested"),
    Peer("gexsrv processes=1", servers.gexsrv, flags=("--processes", "1")),
    Peer("baseline", servers.baseline, slow=True),
    Peer("original", servers.original, slow=True),
]
GEXSRV_PEERS = ("gexsrv", "gexsrv ack=ingested", "gexsrv processes=1")
# (of, to): the ratios printed, of one peer's numbers to another's in the same scenario
COMPARED = [("gexsrv", "original"), ("gexsrv", "baseline"), ("gexsrv ack=ingested", "original"),
            ("gexsrv processes=1", "original"), ("gexsrv", "gexsrv processes=1")]
RATIOS = ("req_per_s", "p50", "p95", "p99", "cpu_ms_per_req")  # the keys of each ratio, in the table's order
FULL = {"duration": 15.0, "baseline_duration": 5.0, "warmup": 2.0, "history_snapshots": 5000}
QUICK = {"duration": 2.0, "baseline_duration": 2.0, "warmup": 0.5, "history_snapshots": 200}


def note(text):
    print(text, file=sys.stderr, flush=True)


# ---- the machine ----

def _proc_field(path, key):
    for line in Path(path).read_text().splitlines():
        if line.startswith(key):
            return line.split(":", 1)[1].strip()
    return None


def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=servers.REPO, capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return ""


def machine():
    commit = _git("rev-parse", "--short", "HEAD").strip() or "unknown"
    if _git("status", "--porcelain", "--untracked-files=no").strip():
        commit += " + uncommitted changes"
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": _proc_field("/proc/cpuinfo", "model name") or platform.processor() or "unknown",
        "memory_gb": round(int(_proc_field("/proc/meminfo", "MemTotal").split()[0]) / 1024**2, 1),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(), "python": platform.python_version(), "duckdb": duckdb.__version__,
        "polars": polars.__version__, "pyarrow": pyarrow.__version__, "msgspec": msgspec.__version__,
        "tornado": tornado.version, "gexsrv": gexsrv.__version__, "commit": commit,
    }


# ---- the load scenarios ----

def _server_view(health):
    """What gexsrv's /health says after the run: what it stored, and its journal and ingest reports (write times,
    batch sizes, what still waits, what it refused). A section the server does not report is left out."""
    if not health:
        return None
    return {"stored": health.get("stored_since_start"), **{k: health[k] for k in ("journal", "ingest") if k in health}}


def _settled(server, who):
    """(RSS MB, the server's view) once it is idle and has ingested what it acknowledged, so that the view counts
    every row of the run."""
    if not (server.wait_idle() and server.wait_ingested()):
        note(f"{who} was still busy {servers.IDLE_TIMEOUT:g} s after the run")
    return server.memory_mb(), _server_view(server.health())


def measure(peer, name, rate, clients, duration, drain, args):
    """One scenario against one fresh server."""
    with servers.Fresh(peer.make, *peer.flags, keep=args.keep) as server:
        note(f"{name}: {peer.name} at {server.url}{peer.path}, {duration} s")
        before = server.memory_mb()
        result = asyncio.run(loadgen.run(server.url, rate, clients, duration, args.strikes, saturate=rate is None,
                                         warmup=args.warmup, drain=drain, path=peer.path, server_pid=server.proc.pid))
        after, view = _settled(server, f"{name}: {peer.name}")
    kept = {"workdir": str(server.workdir)} if args.keep else {}
    return {"scenario": name, "server": peer.name, **result, "memory_before": before, "memory_after": after,
            "server_view": view, "crash": server.crash, **kept}


def _ratio(a, b):
    return None if a is None or not b else float(f"{a / b:.3g}")


def ratio(of, to):
    """of's numbers over to's (RATIOS): req/s above 1, latency and CPU below 1 are of's advantage."""
    return {"req_per_s": _ratio(of["req_per_s"], to["req_per_s"]),
            **{p: _ratio(of["latency_ms"][p], to["latency_ms"][p]) for p in ("p50", "p95", "p99")},
            "cpu_ms_per_req": _ratio(of["server_cpu_ms_per_req"], to["server_cpu_ms_per_req"])}


def ratios(name, runs):
    """The COMPARED ratios of one scenario's runs; gexsrv/baseline also at the top level, where it used to be."""
    by_peer = {r["server"]: r for r in runs}
    pairs = {f"{of}/{to}": ratio(by_peer[of], by_peer[to]) for of, to in COMPARED}
    base = pairs["gexsrv/baseline"]
    return {"scenario": name, "req_per_s": base["req_per_s"], "p50": base["p50"], "p99": base["p99"], "pairs": pairs}


def scenario_key(rate):
    """The scenario's name on the command line (--scenario)."""
    return "saturation" if rate is None else str(rate)


def scenarios(args):
    runs, compared = [], []
    for name, rate, clients in SCENARIOS:
        if args.scenarios and scenario_key(rate) not in args.scenarios:
            continue
        scenario_runs = []
        for peer in PEERS:
            # A slow peer falls far behind; the time it gets to catch up is as long as its run.
            duration = min(args.duration, args.baseline_duration) if peer.slow else args.duration
            drain = duration if peer.slow else args.drain
            scenario_runs.append(measure(peer, name, rate, clients, duration, drain, args))
        runs += scenario_runs
        compared.append(ratios(name, scenario_runs))
    return runs, compared


def _target(run, target, value, met):
    return {"scenario": run["scenario"], "server": run["server"], "target": target, "measured": value, "met": met}


def targets(runs):
    """gexsrv's runs against the issue's targets: one row per target and run; a value not measured is not met."""
    rows = []
    for r in (r for r in runs if r["server"] in GEXSRV_PEERS):
        for p, limit in TARGETS.get(r["scenario"], {}).items():
            value = r["latency_ms"][p]
            rows.append(_target(r, f"{p} < {limit:g} ms", value, value is not None and value < limit))
        cpu = r["server_cpu_ms_per_req"]
        met = cpu is not None and cpu <= CPU_TARGET_MS
        rows.append(_target(r, f"server CPU <= {CPU_TARGET_MS:g} ms/req", cpu, met))
    return rows


# ---- the history import ----

def history_import(snapshots):
    """Generate a gexbot file (bench/make_history_file.py) and time `python -m gexsrv import` on a fresh data dir."""
    with tempfile.TemporaryDirectory(prefix="gexsrv-perf-") as tmp:
        path = Path(tmp) / HISTORY_NAME
        make_history_file.write(path, make_history_file.snapshots(snapshots, HISTORY_STRIKES))
        file_mb = round(path.stat().st_size / 1e6, 1)
        note(f"history import: {snapshots} snapshots, {file_mb} MB")
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "gexsrv", "import", str(path), "--data-dir", f"{tmp}/data",
                               "--no-progress"], cwd=servers.REPO, capture_output=True, text=True)
        wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"failed": done.returncode, "stderr": done.stderr[-2000:]}
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"file_mb": file_mb, **summary,
            "command_seconds": round(wall, 3), "command_strike_rows_per_s": round(summary["strike_rows"] / wall)}


# ---- the soak ----

async def _sample_memory(server, every, samples):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while True:
        if memory := server.memory_mb():  # None once the server has died: its crash says so
            samples.append({"t_s": round(loop.time() - t0), **memory})
        await asyncio.sleep(every)


async def _soak_run(server, seconds, args):
    samples = []
    sampler = asyncio.create_task(_sample_memory(server, max(1.0, seconds / 60), samples))
    try:
        result = await loadgen.run(server.url, args.soak_rate, args.soak_clients, seconds, args.strikes,
                                   drain=args.drain, server_pid=server.proc.pid)
    finally:
        sampler.cancel()
    return result, samples


def soak(minutes, args):
    with servers.Fresh(servers.gexsrv, "--processes", str(args.soak_processes)) as server:
        note(f"soak: gexsrv --processes {args.soak_processes} at {server.url}, {args.soak_rate} req/s from "
             f"{args.soak_clients} clients for {minutes} min")
        before = server.memory_mb()
        result, samples = asyncio.run(_soak_run(server, minutes * 60, args))
        after, view = _settled(server, "soak: the server")
    return {"scenario": f"soak {args.soak_rate} req/s, {args.soak_clients} clients, {minutes} min",
            "server": f"gexsrv --processes {args.soak_processes}",
            **result, "memory_before": before, "memory_after": after, "memory_samples": samples,
            "server_view": view, "crash": server.crash}


# ---- output ----

def _ms(value):
    return "-" if value is None else f"{value:,.1f}"


def _num(value):
    return "-" if value is None else f"{value:,.2f}"


def _or_dash(value):
    return "-" if value is None else value


def _errors(errors):
    return ", ".join(f"{k}: {v}" for k, v in sorted(errors.items())) or "0"


def _memory(before, after):
    if before is None or after is None:  # the server was gone when its memory was read
        return "-"
    return f"{before['rss_mb']} → {after['rss_mb']} ({after['peak_mb']})"


def runs_of(report):
    return report.get("scenarios", []) + ([report["soak"]] if "soak" in report else [])


def crashed(report):
    return [r for r in runs_of(report) if r["crash"]]


def _crash_lines(report):
    lines = []
    for r in crashed(report):
        c = r["crash"]
        lines += ["", f"**{r['server']} crashed** in \"{r['scenario']}\": exit code {c['exit_code']} {c['when']}; "
                      "its numbers above are not a measurement. The end of its log:", "```", c["log_tail"], "```"]
    return lines


def markdown(report):
    m = report["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory_gb']} GB; Python {m['python']}, DuckDB {m['duckdb']}, "
        f"Polars {m['polars']}, pyarrow {m['pyarrow']}, msgspec {m['msgspec']}, Tornado {m['tornado']}; "
        f"gexsrv {m['gexsrv']} at {m['commit']}.",
        f"Load average (1, 5, 15 min) at start {m['load_avg_start']}, at end {m['load_avg_end']}. "
        f"Settings: {json.dumps(report['settings'])}.", "",
    ]
    lines += ["| scenario | server | s | sent | ok req/s | strike rows/s | p50 ms | p95 ms | p99 ms | max ms "
              "| errors | server CPU ms/req | loop CPU ms/req | RSS before → after (peak) MB | client CPU % |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs_of(report):
        lat = r["latency_ms"]
        mem = _memory(r["memory_before"], r["memory_after"])
        lines.append(f"| {r['scenario']} | {r['server']} | {r['duration']:g} | {r['sent']} | {r['req_per_s']:,} "
                     f"| {r['strike_rows_per_s']:,.0f} | {_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} "
                     f"| {_ms(lat['max'])} | {_errors(r['errors'])} | {_num(r.get('server_cpu_ms_per_req'))} "
                     f"| {_num(r.get('server_loop_ms_per_req'))} | {mem} "
                     f"| {r['client_cpu_pct']} |")
    if report.get("ratios"):
        lines += ["", "| scenario | ratio | req/s | p50 | p95 | p99 | server CPU/req |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {c['scenario']} | {pair} | {' | '.join(str(_or_dash(values[k])) for k in RATIOS)} |"
                  for c in report["ratios"] for pair, values in c["pairs"].items()]
    if report.get("targets"):
        lines += ["", "| target | scenario | server | measured | met |", "|---|---|---|---|---|"]
        lines += [f"| {t['target']} | {t['scenario']} | {t['server']} | {_num(t['measured'])} "
                  f"| {'yes' if t['met'] else 'NO'} |" for t in report["targets"]]
    lines += _crash_lines(report)
    if "soak" in report:
        samples = report["soak"]["memory_samples"]
        lines += ["", "Soak RSS MB over time: " + ", ".join(f"{s['t_s']} s: {s['rss_mb']}" for s in samples)]
    h = report.get("history")
    if h and "strike_rows" in h:
        lines += ["", "| history import | snapshots | strike rows | file MB | import s | strike rows/s "
                  "| whole command s | strike rows/s (whole command) |", "|---|---|---|---|---|---|---|---|",
                  f"| `python -m gexsrv import` | {h['snapshots']:,} | {h['strike_rows']:,} | {h['file_mb']} "
                  f"| {h['seconds']} | {h['strike_rows_per_s']:,} | {h['command_seconds']} "
                  f"| {h['command_strike_rows_per_s']:,} |"]
    elif h:
        lines += ["", f"History import: {json.dumps(h)}"]
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="Durations not given come from the full profile, or the --quick one: "
                                        f"{FULL} / {QUICK}.")
    ap.add_argument("--duration", type=float, help="measured seconds per gexsrv scenario")
    ap.add_argument("--baseline-duration", type=float,
                    help="cap on measured seconds per baseline and original scenario")
    ap.add_argument("--warmup", type=float, help="seconds of load before measuring")
    ap.add_argument("--drain", type=float, default=loadgen.DRAIN,
                    help="seconds gexsrv gets after a run to send what it fell behind on (default %(default)s)")
    ap.add_argument("--history-snapshots", type=int, help="snapshots in the generated history file (0: skip)")
    ap.add_argument("--strikes", type=int, default=300, help="strike rows per snapshot (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="short runs, for a smoke test")
    ap.add_argument("--scenario", action="append", dest="scenarios",
                    choices=[scenario_key(rate) for _, rate, _ in SCENARIOS],
                    help="run only this scenario, by its rate or 'saturation'; again for more (default: all)")
    ap.add_argument("--soak", type=float, metavar="MINUTES",
                    help="instead: gexsrv alone under --soak-rate for MINUTES, memory sampled throughout")
    ap.add_argument("--soak-rate", type=float, default=500, help="requests per second of the soak (default %(default)s)")
    ap.add_argument("--soak-clients", type=int, default=10, help="clients of the soak (default %(default)s)")
    ap.add_argument("--soak-processes", type=int, choices=(1, 2), default=2,
                    help="the soaked server's --processes (default %(default)s; memory is the process tree's)")
    ap.add_argument("--json", default=str(servers.REPO / ".benchmarks" / "perf-report.json"),
                    help="write the full results here (default %(default)s)")
    ap.add_argument("--keep", metavar="DIR",
                    help="leave each server's dir (its database, its log) in DIR instead of removing it")
    args = ap.parse_args(argv)
    if args.keep:
        Path(args.keep).mkdir(parents=True, exist_ok=True)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


def main(argv=None):
    args = parse_args(argv)
    settings = {k: getattr(args, k) for k in ("duration", "baseline_duration", "warmup", "drain", "strikes")}
    report = {"machine": machine(), "settings": settings}
    if args.soak:
        report["soak"] = soak(args.soak, args)
    else:
        report["scenarios"], report["ratios"] = scenarios(args)
        report["targets"] = targets(report["scenarios"])
        if args.history_snapshots:
            report["history"] = history_import(args.history_snapshots)
    report["machine"]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(markdown(report))
    note(f"JSON: {args.json}")
    if crashed(report):
        note(f"{len(crashed(report))} server run(s) crashed: see the end of the report")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
