"""Command line: `gexsrv [serve] [flags]` (the default), `gexsrv import ...`, `gexsrv backfill ...`,
`gexsrv validate ...`."""

import argparse
import asyncio
import logging
import sys

from gexsrv import __version__, deps

COMMANDS = ("serve", "validate", "import", "backfill")


def serve_parser(defaults):
    from gexsrv import settings

    parser = argparse.ArgumentParser(
        prog="python -m gexsrv",
        description="Capture server for GEX data: POST /gex, /gex_history_url and /uw; GET /health, /integrity, "
                    "/api/..., /metrics, /openapi.json and a status page at /. DuckDB + Parquet in --data-dir.",
        epilog="Precedence: conf/gexsrv.toml < --config FILE < environment (and ./.env) < flags. "
               "Other commands: `python -m gexsrv import --help`, `python -m gexsrv backfill --help`, "
               "`python -m gexsrv validate --help`.",
    )
    parser.add_argument("--version", action="version", version=f"gexsrv {__version__}")
    settings.add_arguments(parser, defaults)
    return parser


def run_serve(argv):
    from gexsrv import server, settings

    defaults = settings.read_toml(settings.default_config_path())
    args = serve_parser(defaults).parse_args(argv)
    conf = settings.load(args)
    logging.basicConfig(
        level=logging.DEBUG if conf.debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(server.serve(conf))
    except server.StartupError as exc:
        if conf.debug:
            raise
        print(f"gexsrv: cannot start: {exc}", file=sys.stderr)
        sys.exit(2)


def run_import(argv):
    from gexsrv.history import cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(cli.main(argv))


def run_backfill(argv):
    from gexsrv.history import backfill_cli

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(backfill_cli.main(argv))


def run_validate(argv):
    from gexsrv.validate import cli

    sys.exit(cli.main(argv))


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    missing = deps.problems()
    if missing:
        print(deps.message(missing), file=sys.stderr)
        sys.exit(3)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "serve"
    commands = {"serve": run_serve, "validate": run_validate, "import": run_import, "backfill": run_backfill}
    from gexsrv.settings import ConfigError  # only now: settings needs the dependencies checked above

    try:
        commands[command](argv)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
