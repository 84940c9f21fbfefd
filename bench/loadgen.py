"""Open-loop load generator for gexsrv: POST /gex snapshots (and /uw frames) at a fixed rate.

Request i is due at start + i/rate, and client connection i % clients sends it. Its latency runs from that
due time to the end of the response, so a server stall is charged to every request queued behind it instead
of quietly lowering the send rate (no coordinated omission). Requests still unsent DRAIN seconds after the
run are given up and counted as "unsent" errors, so a run always ends. --saturate switches to a closed loop:
each client sends its next request as soon as its last one ends, which finds the highest sustained rate.

Latency percentiles cover every response, whatever its status; errors are listed by status or exception.
--path adds a query string to the snapshots' URL (`--path "/gex?ack=ingested"`). With --server-pid, the server's
CPU time (utime + stime in /proc/PID/stat, all its threads) is read when the window opens and when it closes,
and divided by the responses that arrived in between: server CPU per request.
Prints a summary, or one JSON line with --json.
"""
import argparse
import asyncio
import itertools
import json
import math
import resource
from collections import Counter
from urllib.parse import urlsplit

import procstat
from httpclient import Connection, NoContentLength
from snapshots import START, GexBodies, UwBodies

TIMEOUT = 10.0  # seconds for one request: a hung server shows up as timeouts, not as a hung run
DRAIN = 10.0  # seconds past the run's end during which queued-up requests still go out


class Requests:
    """Request i: its path and pre-encoded body. A fraction `mix` of them, spread evenly, go to /uw; the rest to
    `path`, which may carry a query string."""

    def __init__(self, strikes, mix, seed, start=START, path="/gex"):
        self.gex_path = path
        self.uw_path = "/uw"
        self.gex = GexBodies(strikes, seed, start)
        self.uw = UwBodies(seed, start)
        self.mix = mix

    def is_uw(self, i):
        return math.floor((i + 1) * self.mix) > math.floor(i * self.mix)

    def __call__(self, i):
        if self.is_uw(i):
            return self.uw_path, self.uw(i)
        return self.gex_path, self.gex(i)


class Tally:
    """Outcomes of the requests inside the measured window, and two counts over the whole run."""

    def __init__(self):
        self.latencies = []  # seconds
        self.errors = Counter()
        self.sent = 0
        self.ok = 0
        self.ok_gex = 0
        self.last_end = None
        self.answered = 0  # responses so far, whatever their status or due time: the divisor of server CPU
        self.ok_total = 0  # 2xx responses of the whole run, warm-up and drain included: what the server acknowledged

    def response(self, outcome):
        if isinstance(outcome, int):
            self.answered += 1
            self.ok_total += 200 <= outcome < 300

    def record(self, outcome, latency, end, is_gex):
        self.sent += 1
        self.last_end = end
        if isinstance(outcome, str):  # no response: the exception's name
            self.errors[outcome] += 1
            return
        self.latencies.append(latency)
        if 200 <= outcome < 300:
            self.ok += 1
            self.ok_gex += is_gex
        else:
            self.errors[str(outcome)] += 1


async def post(connection, path, body):
    """The response status, or the exception's name when there is no response."""
    try:
        return await connection.post(path, body)
    except (OSError, asyncio.TimeoutError, NoContentLength) as exc:
        return type(exc).__name__


async def paced_client(connection, requests, tally, first, n, clients, t0, rate, window_start, give_up):
    loop = asyncio.get_running_loop()
    for i in range(first, n, clients):
        due = t0 + i / rate
        now = loop.time()
        if now > give_up:
            unsent = sum(1 for j in range(i, n, clients) if t0 + j / rate >= window_start)
            if unsent:
                tally.errors["unsent"] += unsent
            return
        if due > now:
            await asyncio.sleep(due - now)
        path, body = requests(i)
        outcome = await post(connection, path, body)
        end = loop.time()
        tally.response(outcome)
        if due >= window_start:
            tally.record(outcome, end - due, end, path == requests.gex_path)


async def saturating_client(connection, requests, tally, counter, window_start, window_end):
    loop = asyncio.get_running_loop()
    while loop.time() < window_end:
        i = next(counter)
        path, body = requests(i)
        start = loop.time()
        outcome = await post(connection, path, body)
        end = loop.time()
        tally.response(outcome)
        if start >= window_start:
            tally.record(outcome, end - start, end, path == requests.gex_path)


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    if not sorted_values:
        return None
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def summary(tally, window_start, config, cpu_s, server):
    # The window lasts at least the requested duration, longer when responses trail in after it.
    elapsed = max(config["duration"], (tally.last_end or window_start) - window_start)
    lat = sorted(tally.latencies)
    ms = {name: percentile(lat, p) for name, p in (("p50", 50), ("p95", 95), ("p99", 99), ("max", 100))}
    return {
        **config,
        "sent": tally.sent, "ok": tally.ok, "ok_total": tally.ok_total, "errors": dict(tally.errors),
        "latency_ms": {name: None if v is None else round(v * 1000, 3) for name, v in ms.items()},
        "req_per_s": round(tally.ok / elapsed, 1),
        "strike_rows_per_s": round(tally.ok_gex * config["strikes"] / elapsed, 1),
        "client_cpu_pct": round(100 * cpu_s / elapsed, 1),
        **server,
    }


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def server_cpu(pid, tally, window_start, window_end):
    """The server's CPU per response over the window, all its processes and its event loop's thread alone: CPU time
    and responses counted at its start and its end."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(window_start - loop.time())
    cpu0, loop0, answered0 = procstat.cpu_seconds(pid), procstat.loop_cpu_seconds(pid), tally.answered
    await asyncio.sleep(window_end - loop.time())
    cpu1, loop1, answered = procstat.cpu_seconds(pid), procstat.loop_cpu_seconds(pid), tally.answered - answered0
    if None in (cpu0, cpu1, loop0, loop1):  # the server died during the run: its crash says so
        return {"server_cpu_s": None, "server_answered": answered, "server_cpu_ms_per_req": None,
                "server_loop_ms_per_req": None}

    def per_response(seconds):
        return round(1000 * seconds / answered, 3) if answered else None
    return {"server_cpu_s": round(cpu1 - cpu0, 3), "server_answered": answered,
            "server_cpu_ms_per_req": per_response(cpu1 - cpu0), "server_loop_ms_per_req": per_response(loop1 - loop0)}


async def run(url, rate, clients, duration, strikes, mix=0.0, saturate=False, warmup=0.0, seed=1, start=START,
              drain=DRAIN, path="/gex", server_pid=None):
    """Load `url` for warmup + duration seconds; return the results of the last `duration` seconds.

    Snapshot timestamps begin at epoch second `start`: a second run against the same server needs a later one,
    or every snapshot is a duplicate. Open-loop requests still unsent `drain` seconds after the end give up.
    Snapshots go to `path`. With `server_pid`, the result has that process's CPU time per response in the window.
    """
    requests = Requests(strikes, mix, seed, start, path)  # all JSON encoding happens here, before the clock starts
    tally = Tally()
    config = {
        "mode": "saturate" if saturate else "open-loop", "target_rate": None if saturate else rate,
        "expected": None if saturate else round(rate * duration),
        "clients": clients, "duration": duration, "warmup": warmup, "strikes": strikes, "mix": mix, "seed": seed,
        "path": path,
    }
    loop = asyncio.get_running_loop()
    target = urlsplit(url)
    connections = [Connection(target.hostname, target.port or 80, TIMEOUT) for _ in range(clients)]
    cpu0 = cpu_seconds()
    t0 = loop.time()
    window_start = t0 + warmup
    window_end = window_start + duration
    if saturate:
        counter = itertools.count()
        tasks = [saturating_client(connection, requests, tally, counter, window_start, window_end)
                 for connection in connections]
    else:
        n = round(rate * (warmup + duration))
        give_up = window_end + drain
        tasks = [paced_client(connection, requests, tally, c, n, clients, t0, rate, window_start, give_up)
                 for c, connection in enumerate(connections)]
    sampler = asyncio.create_task(server_cpu(server_pid, tally, window_start, window_end)) if server_pid else None
    try:
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            connection.close()
    cpu_s = cpu_seconds() - cpu0
    server = await sampler if sampler else {}
    return summary(tally, window_start, config, cpu_s, server)


def print_summary(r):
    target = "saturate" if r["target_rate"] is None else f"{r['target_rate']} req/s"
    print(f"target {target}, {r['clients']} clients, {r['duration']} s (+{r['warmup']} s warmup), "
          f"{r['strikes']} strikes, mix {r['mix']}")
    print(f"sent {r['sent']} (expected {r['expected']}), ok {r['ok']}, errors {r['errors'] or 'none'}")
    print("latency ms: " + ", ".join(f"{k} {v}" for k, v in r["latency_ms"].items()))
    print(f"achieved {r['req_per_s']} req/s, {r['strike_rows_per_s']} strike rows/s, "
          f"client CPU {r['client_cpu_pct']}%")
    if "server_cpu_s" in r:
        print(f"server CPU {r['server_cpu_s']} s for {r['server_answered']} responses: "
              f"{r['server_cpu_ms_per_req']} ms per response, {r['server_loop_ms_per_req']} of them on its event loop")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8877", help="server base URL (default %(default)s)")
    ap.add_argument("--rate", type=float, default=100.0, help="requests per second (default %(default)s)")
    ap.add_argument("--clients", type=int, default=10, help="concurrent keep-alive connections (default %(default)s)")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds (default %(default)s)")
    ap.add_argument("--warmup", type=float, default=0.0, help="seconds run before measuring (default %(default)s)")
    ap.add_argument("--strikes", type=int, default=300, help="strike rows per snapshot (default %(default)s)")
    ap.add_argument("--mix", type=float, default=0.0, help="fraction of requests sent to /uw (default %(default)s)")
    ap.add_argument("--path", default="/gex",
                    help='where snapshots go, with any query string, e.g. "/gex?ack=ingested" (default %(default)s)')
    ap.add_argument("--server-pid", type=int, help="measure this process's CPU time per response over the window")
    ap.add_argument("--saturate", action="store_true", help="closed loop, as fast as the clients can go")
    ap.add_argument("--seed", type=int, default=1, help="payload random seed (default %(default)s)")
    ap.add_argument("--start", type=int, default=START,
                    help="first snapshot timestamp, epoch s; each run on the same server needs a later one "
                         "(default %(default)s)")
    ap.add_argument("--json", action="store_true", help="print one JSON line instead of the summary")
    args = ap.parse_args(argv)
    if args.rate <= 0 or args.clients < 1 or args.duration <= 0 or args.strikes < 1 or not 0 <= args.mix <= 1:
        ap.error("need --rate > 0, --clients >= 1, --duration > 0, --strikes >= 1 and 0 <= --mix <= 1")
    if not args.path.startswith("/"):
        ap.error(f"--path must start with /, got {args.path!r}")
    return args


def main(argv=None):
    a = parse_args(argv)
    result = asyncio.run(run(a.url, a.rate, a.clients, a.duration, a.strikes, a.mix, a.saturate, a.warmup, a.seed,
                             a.start, path=a.path, server_pid=a.server_pid))
    if a.json:
        print(json.dumps(result))
    else:
        print_summary(result)


if __name__ == "__main__":
    main()
