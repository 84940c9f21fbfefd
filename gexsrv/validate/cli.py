"""`python -m gexsrv validate`: the report as a table (or JSON with --json); exit 0 clean, 1 failed, 2 unreadable.

DuckDB lets only one process open a database file while a server writes it, so against a running server pass
--url: the server runs the same validation on its own read connection (GET /integrity) and sends the report.
"""

import argparse
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

from gexsrv import settings, validate
from gexsrv.validate import options, report


def parser():
    p = argparse.ArgumentParser(
        prog="python -m gexsrv validate",
        description="Check the integrity of a gexsrv data dir (read-only): schema, business rules, timestamps, "
                    "spot checks and consistency between DuckDB, Parquet and the staged history JSON.",
        epilog="Exit codes: 0 clean, 1 a check failed, 2 the data could not be read.",
    )
    p.add_argument("--data-dir", help="the data dir (default: data_dir of conf/gexsrv.toml, or GEXSRV_DATA_DIR)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--url", help="ask the gexsrv running at this URL (GET /integrity) instead of opening the files")
    options.add_arguments(p)
    return p


def default_data_dir():
    return os.environ.get("GEXSRV_DATA_DIR") or settings.read_toml(settings.default_config_path())["data_dir"]


def main(argv):
    args = parser().parse_args(argv)
    try:
        opts = options.from_args(args)
    except options.OptionsError as exc:
        raise SystemExit(f"gexsrv validate: {exc}")
    data_dir = args.data_dir or default_data_dir()
    try:
        result = ask_server(args) if args.url else local(data_dir, opts)
    except validate.Unreadable as exc:
        print(f"gexsrv validate: {exc}", file=sys.stderr)
        if exc.locked:
            print("  run it against the server instead, e.g. --url http://127.0.0.1:8877, "
                  "or against a copy of the data dir", file=sys.stderr)
        return 2
    print(report.encode(result).decode() if args.json else report.table(result))
    return result.exit_code


def local(data_dir, opts):
    con = validate.open_read_only(data_dir)
    try:
        return validate.run(con, os.path.abspath(data_dir), opts)
    finally:
        con.close()


def ask_server(args):
    """The server's report for the same filters: every option flag becomes a query argument."""
    query = {f.name: getattr(args, f.name) for f in options.FIELDS if getattr(args, f.name) is not None}
    target = args.url.rstrip("/") + "/integrity" + ("?" + urllib.parse.urlencode(query) if query else "")
    try:
        with urllib.request.urlopen(target, timeout=3600) as resp:
            return report.decode(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        try:
            return report.decode(body)
        except ValueError:
            raise validate.Unreadable(f"{target}: HTTP {exc.code} {body[:200]!r}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise validate.Unreadable(f"cannot reach {target}: {exc}") from None
