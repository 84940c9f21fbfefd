"""POST /gex latency while the server imports a full-day history file (issue 18's "imports that never stall /gex"):
a fresh gexsrv over a fresh dir, the file served from a local HTTP server, one POST /gex_history_url, and the
open-loop generator at --rate for as long as the import runs (at least --min-seconds). Prints one JSON line: the
import's wall time and rate, and the latency of the snapshots sent meanwhile.

    python bench/import_beside.py [--processes 1|2] [--snapshots 23400] [--strikes 120] [--rate 100]
"""

import argparse
import asyncio
import functools
import http.server
import json
import os
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import loadgen
import make_history_file
import servers

FILE_NAME = "2025-10-21_SPX_classic_gex_zero.json"  # as gexbot names a day's file (CONTRACT section 2)


class QuietFiles(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve_folder(folder):
    """A threaded HTTP server of folder's files on 127.0.0.1; its base URL."""
    handler = functools.partial(QuietFiles, directory=str(folder))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{httpd.server_port}"


def call(method, url, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"}, method=method)
    with urllib.request.urlopen(request, timeout=60) as reply:
        return json.loads(reply.read())


async def load_until_done(url, job_url, args):
    """The generator in slices of --slice seconds until the job has ended; every slice's latencies together."""
    started, results = time.monotonic(), []
    start = loadgen.START
    while True:
        results.append(await loadgen.run(url, args.rate, 10, args.slice, 300, start=start))
        start += int(args.slice * args.rate) + 1
        job = await asyncio.to_thread(call, "GET", job_url)
        if job["status"] not in ("pending", "downloading", "importing") and time.monotonic() - started >= args.min_seconds:
            return job, results


def merged(results):
    """The slices' counts and each slice's percentiles (the generator summarises a run, not its raw latencies)."""
    worst = max(r["latency_ms"]["max"] for r in results if r["latency_ms"]["max"] is not None)
    return {"sent": sum(r["sent"] for r in results), "errors": [r["errors"] for r in results if r["errors"]],
            "slices_p50_p95_p99": [(r["latency_ms"]["p50"], r["latency_ms"]["p95"], r["latency_ms"]["p99"])
                                   for r in results], "max_ms": worst}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--processes", default="2")
    ap.add_argument("--snapshots", type=int, default=23_400)
    ap.add_argument("--strikes", type=int, default=120)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--slice", type=float, default=5.0, help="seconds per generator run between job checks")
    ap.add_argument("--min-seconds", type=float, default=10.0)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="gexsrv-import-") as tmp:
        files = Path(tmp) / "files"
        files.mkdir()
        make_history_file.write(files / FILE_NAME, make_history_file.snapshots(args.snapshots, args.strikes))
        # The file stands for one on gexbot's servers: its 196 MB are written back now, not by the kernel during the
        # run (30 s after they were written), which stalled the server's disk and charged that to /gex.
        os.sync()
        base = serve_folder(files)
        with servers.Fresh(servers.gexsrv, "--processes", args.processes,
                           "--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32") as server:
            job = call("POST", f"{server.url}/gex_history_url", {"url": f"{base}/{FILE_NAME}"})
            posted = time.monotonic()
            done, results = asyncio.run(load_until_done(server.url, f"{server.url}/gex_history_url/{job['id']}",
                                                        args))
            took = (datetime.fromisoformat(done["finished_at"]) - datetime.fromisoformat(done["created_at"])).total_seconds()
            job = {"status": done["status"], "snapshots": done["snapshots_imported"], "import_s": round(took, 1),
                   "snapshots_per_s": round(done["snapshots_imported"] / took) if took else None}
            print(json.dumps({"processes": args.processes, "job": job,
                              "until_checked_s": round(time.monotonic() - posted, 1), **merged(results)}))


if __name__ == "__main__":
    sys.exit(main())
