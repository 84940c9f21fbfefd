"""`python -m gexsrv import URL|FILE`: the same download, staging, import and Parquet export as the server's
queue, run against a data dir directly (the server must not be running on it: DuckDB locks the file)."""

import argparse
import asyncio
import json
import os
import sys
import time

from tqdm import tqdm

from gexsrv import kinds, settings
from gexsrv.history import names, queue
from gexsrv.history.runner import Runner
from gexsrv.lake import Lake
from gexsrv.notify import Notifier
from gexsrv.decode import check_ticker, normalize_endpoint
from gexsrv.payloads import PayloadError
from gexsrv.store import Store


def parser():
    p = argparse.ArgumentParser(prog="python -m gexsrv import",
                                description="Import a gexbot history file (URL or local path) into a data dir.")
    p.add_argument("source", help="http(s) URL or local file (.json or gzip, detected by content)")
    p.add_argument("--ticker", help="default: from the file name, e.g. 2025-10-21_NQ_NDX_classic_gex_zero.json")
    p.add_argument("--endpoint", help="gex_zero, state/zero, ... as POST /gex takes it; in the file name's package "
                                      "when it names none (default: from the file name)")
    p.add_argument("--data-dir", dest="data_dir", help="default: the data_dir setting")
    p.add_argument("--config", metavar="FILE", help="a TOML file whose keys override conf/gexsrv.toml")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv):
    args = parser().parse_args(argv)
    conf = settings.load(args)
    ticker, endpoint = names.infer(args.source)
    ticker = args.ticker or ticker
    endpoint = args.endpoint or endpoint
    if not ticker or not endpoint:
        print("gexsrv import: give --ticker and --endpoint (the file name does not name them)", file=sys.stderr)
        return 2
    try:
        ticker = check_ticker(ticker, "--ticker")
    except PayloadError as exc:
        print(f"gexsrv import: {exc.field}: {exc.reason}", file=sys.stderr)
        return 2
    url = args.source
    if os.path.isfile(url):
        url = "file://" + os.path.abspath(url)
    endpoint = normalize_endpoint(endpoint, None, package=names.package(url))
    return asyncio.run(run(conf, url, ticker, endpoint, not args.no_progress))


# What a running server takes instead, by command: it downloads URLs and backfills ranges, never a local file.
ON_THE_SERVER = {
    "url": 'or POST {"url": "%s"} to its /gex_history_url (the host must be among its history_allowed_hosts)',
    "file": "a running server imports URLs only, not a local file",
    "backfill": "or POST the range to its /gex_history_url "
                '({"ticker": ..., "package": ..., "category": ..., "from": ..., "to": ...})',
}


def open_store(conf, command, source=None):
    """The data dir's database open for writing, or None (the reason printed) when it cannot be. source: the
    import's URL or file, for the advice."""
    store = Store(conf.data_dir, kinds.WRITERS, os.cpu_count() or 1)
    store.open()
    if store.state == "writable":
        return store
    print(f"gexsrv {command}: cannot write {store.path}: {store.error}", file=sys.stderr)
    if store.cause == "locked":
        print(f"Is a gexsrv server running on this data dir? Stop it first (DuckDB lets one process write a "
              f"database), {advice(command, source)}.", file=sys.stderr)
    store.close()
    return None


def advice(command, source):
    if command == "backfill":
        return ON_THE_SERVER["backfill"]
    if source.startswith("file://"):
        return ON_THE_SERVER["file"]
    return ON_THE_SERVER["url"] % source


async def run(conf, url, ticker, endpoint, progress):
    store = open_store(conf, "import", url)
    if store is None:
        return 2
    lake = Lake(conf.data_dir, store, conf.lake_export_interval)
    notifier = Notifier.from_settings(conf)
    runner = Runner(conf, store, notifier, lake, allow_local=True)
    try:
        job, created = await runner.submit(url, ticker, endpoint)
        if not created and job["status"] in (*queue.DONE, "importing", "downloading"):
            print(json.dumps({"job": job["id"], "status": job["status"], "note": "this URL was queued before"}))
            return 0
        started = time.perf_counter()
        bar = asyncio.create_task(_progress(runner, job["id"])) if progress else None
        job = await runner.run_job(job)
        if bar:
            bar.cancel()
        seconds = time.perf_counter() - started
        await lake.export()
    finally:
        await notifier.close()
        store.close()
    print(json.dumps(_summary(job, seconds)))
    return 0 if job["status"] in queue.DONE else 1


def _summary(job, seconds):
    snapshots, rows = job["snapshots_imported"] or 0, job["rows_imported"] or 0
    return {"job": job["id"], "status": job["status"], "error": job["last_error"], "file": job["file_path"],
            "bytes": job["bytes"], "snapshots": snapshots, "strike_rows": rows, "seconds": round(seconds, 3),
            "snapshots_per_s": round(snapshots / seconds), "strike_rows_per_s": round(rows / seconds)}


async def _progress(runner, job_id):
    """Bytes while the file arrives, then the snapshots inserted into DuckDB (committed together at the end) until
    the import ends and this is cancelled: that bar goes, the summary line says what was stored."""
    with tqdm(unit="B", unit_scale=True, desc="download", file=sys.stderr) as bar:
        while job_id not in runner.progress:
            await asyncio.sleep(0.1)
        while job_id in runner.progress:
            bar.update(runner.progress[job_id].size - bar.n)
            await asyncio.sleep(0.2)
    with tqdm(unit=" snapshots", desc="importing", file=sys.stderr, leave=False) as bar:
        while True:
            bar.update(runner.inserted.get(job_id, bar.n) - bar.n)
            await asyncio.sleep(0.2)
