"""`python -m gexsrv backfill`: the gexbot history files of a range of trading days, found through the gexbot API
and imported through the history queue, against a data dir directly (the server must not be running on it; with
the server running, POST the range to its /gex_history_url). One progress bar for the range, a table at the end.
"""

import argparse
import asyncio
import datetime as dt
import json
import sys
import time

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gexsrv import gexwrite, settings  # noqa: F401  (gexwrite registers the GEX kinds with the store)
from gexsrv.history import backfill, days, queue
from gexsrv.history.cli import open_store
from gexsrv.history.runner import Runner
from gexsrv.lake import Lake
from gexsrv.notify import Notifier

FLAGS = {"ticker": "--tickers", "package": "--package", "category": "--categories", "from": "--from", "to": "--to"}
SETTLED = (*queue.DONE, "no data", "failed")
REFRESH_S = 0.25
COLUMNS = ["ticker", "category", "days", "imported", "already", "no data", "failed", "snapshots", "strike rows"]


def date(text):
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def parser(defaults):
    p = argparse.ArgumentParser(
        prog="python -m gexsrv backfill",
        usage="%(prog)s --tickers SPX,NDX [--package classic] [--categories gex_zero,gex_one] --from YYYY-MM-DD "
              "[--to YYYY-MM-DD] [--json] [--no-progress] [setting flags]",
        description="Import the gexbot history files of every trading day in a range: the gexbot API gives each "
                    "day's URL, the history queue downloads and imports it. Days already imported are skipped, so "
                    "running it again resumes. The key comes from GEXBOT_API_KEY.",
        epilog="Precedence, as for the server: conf/gexsrv.toml < --config FILE < environment (and ./.env) < flags.")
    p.add_argument("--tickers", required=True, help="comma-separated, e.g. SPX,NDX")
    p.add_argument("--package", default="classic", help="classic or state (default: classic)")
    p.add_argument("--categories", default="gex_zero", help="comma-separated of gex_zero, gex_one, gex_full "
                                                            "(default: gex_zero)")
    p.add_argument("--from", dest="first", required=True, type=date, metavar="YYYY-MM-DD", help="first day")
    p.add_argument("--to", dest="last", type=date, metavar="YYYY-MM-DD", help="last day (default: today, New York)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    settings.add_arguments(p.add_argument_group("settings, as for the server"), defaults)
    return p


def split(text):
    return [item.strip() for item in text.split(",") if item.strip()]


def main(argv):
    args = parser(settings.read_toml(settings.default_config_path())).parse_args(argv)
    conf = settings.load(args)
    today = backfill.new_york_today()
    try:
        keys = backfill.plan_days(split(args.tickers), args.package, split(args.categories), args.first,
                                  args.last or today, today)
    except backfill.BadRange as exc:
        print(f"gexsrv backfill: {FLAGS[exc.field]}: {exc.reason}", file=sys.stderr)
        return 2
    if not conf.gexbot_api_key:
        print("gexsrv backfill: no gexbot API key: set GEXBOT_API_KEY (environment or .env)", file=sys.stderr)
        return 2
    return asyncio.run(run(conf, keys, args))


async def run(conf, keys, args):
    store = open_store(conf, "backfill")
    if store is None:
        return 2
    lake = Lake(conf.data_dir, store, conf.lake_export_interval)
    notifier = Notifier.from_settings(conf)
    runner = Runner(conf, store, notifier, lake)
    started = time.perf_counter()
    try:
        await runner.start()
        done = await runner.backfill.plan(keys)
        rows = await watch(runner, keys, done, not args.no_progress)
        halted = runner.backfill.halted
        await lake.export()
    finally:
        await runner.close()
        await notifier.close()
        store.close()
    summary = summarize(rows, done, halted, time.perf_counter() - started)
    print(json.dumps(summary) if args.json else table(summary))
    return 2 if halted else 1 if summary["failed"] else 0


async def watch(runner, keys, done, show):
    """The days of keys once each is settled, or the worker stopped asking; a progress bar meanwhile (log lines
    are printed above it, not through it)."""
    wanted = set(keys)
    filters = {"tickers": sorted({k.ticker for k in keys}), "package": keys[0].package,
               "categories": sorted({k.category for k in keys}), "first": keys[0].day, "last": keys[-1].day}
    with tqdm(total=len(keys), initial=len(done), unit="day", desc="backfill", file=sys.stderr,
              disable=not show) as bar, logging_redirect_tqdm():
        while True:
            halted = runner.backfill.halted  # before the listing, so that the listing holds what halted it
            rows = [r for r in await asyncio.to_thread(runner.backfill.listing, **filters)  # off the loop
                    if (r["ticker"], r["package"], r["category"], r["date"]) in wanted]
            counts = progress(rows, done, runner.imported)
            bar.n = counts["settled"]
            bar.set_postfix_str(f"resolved {counts['resolved']}, downloaded {counts['downloaded']}, "
                                f"snapshots {counts['snapshots']:,}")
            if counts["settled"] == len(keys) or halted:
                return rows
            await asyncio.sleep(REFRESH_S)


def progress(rows, done, importing):
    """Days settled (done before included), and of this run's days: resolved, downloaded, snapshots imported
    (the running import's too)."""
    mine = [r for r in rows if _key(r) not in done]
    return {"settled": len(done) + sum(r["status"] in SETTLED for r in mine),
            "resolved": sum(r["status"] != "planned" for r in mine),
            "downloaded": sum(r["downloaded"] for r in mine),
            "snapshots": sum(r["snapshots_imported"] or importing.get(r["job_id"], (0, 0))[0] for r in mine)}


def _key(row):
    return days.Day(row["ticker"], row["package"], row["category"], row["date"])


def summarize(rows, done, halted, seconds):
    """Counts per (ticker, category) and in all; the failed days with their errors."""
    feeds = {}
    for row in rows:
        feed = feeds.setdefault((row["ticker"], row["category"]), dict.fromkeys(COLUMNS[2:], 0))
        already = _key(row) in done or row["status"] == "skipped"  # its data was there before its job
        feed["days"] += 1
        feed["already"] += already
        feed["imported"] += row["status"] == "completed" and not already
        feed["no data"] += row["status"] == "no data"
        feed["failed"] += row["status"] == "failed"
        if not already:
            feed["snapshots"] += row["snapshots_imported"] or 0
            feed["strike rows"] += row["rows_imported"] or 0
    total = {name: sum(feed[name] for feed in feeds.values()) for name in COLUMNS[2:]}
    return {"feeds": [{"ticker": t, "category": c, **feed} for (t, c), feed in sorted(feeds.items())], **total,
            "failures": [{"ticker": r["ticker"], "category": r["category"], "date": r["date"].isoformat(),
                          "error": r["error"]} for r in rows if r["status"] == "failed"],
            "not_asked": sum(r["status"] == "planned" for r in rows), "halted": halted, "seconds": round(seconds, 1)}


def table(summary):
    """The summary as a text table, a total line, and the failures under it."""
    lines = [[str(feed[name]) if isinstance(feed[name], str) else f"{feed[name]:,}" for name in COLUMNS]
             for feed in summary["feeds"]]
    lines.append(["all", ""] + [f"{summary[name]:,}" for name in COLUMNS[2:]])
    widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *lines)]
    text = [" ".join(cell.rjust(width) if i > 1 else cell.ljust(width) for i, (cell, width) in
                     enumerate(zip(row, widths))).rstrip() for row in [COLUMNS, *lines]]
    text += [f"failed: {f['ticker']} {f['category']} {f['date']}: {f['error']}" for f in summary["failures"]]
    if summary["halted"]:
        text.append(f"stopped: {summary['halted']} ({summary['not_asked']} days not asked for)")
    text.append(f"{summary['seconds']} s")
    return "\n".join(text)
