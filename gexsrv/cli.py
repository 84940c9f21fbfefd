"""Command line: `gexsrv [serve] [flags]` (the default), `gexsrv import ...`, `gexsrv backfill ...`,
`gexsrv validate ...`."""

import argparse
import asyncio
import difflib
import logging
import sys

from gexsrv import __version__, deps
from gexsrv.procname import name_process

COMMANDS = ("serve", "validate", "import", "backfill")
COMMANDS_SAID = "serve (the default), import, backfill, validate"


class OneLineParser(argparse.ArgumentParser):
    """A mistake in a flag is said in one line with the nearest flag, not under 50 lines of usage."""

    def error(self, message):
        flags = [flag for action in self._actions for flag in action.option_strings]
        words = [word.split("=")[0] for word in message.split() if word.startswith("--")]
        near = [match for word in words for match in difflib.get_close_matches(word, flags, n=1)]
        hint = f" (did you mean {', '.join(near)}?)" if near else ""
        self.exit(2, f"{self.prog}: {message}{hint}; see {self.prog} --help\n")


def serve_parser(defaults):
    from gexsrv import settings

    parser = OneLineParser(
        prog="python -m gexsrv",
        description="Capture server for GEX data: POST /gex, /gex_history_url and /uw; GET /health, /integrity, "
                    "/api/..., /metrics, /openapi.json and a status page at /. DuckDB + Parquet in --data-dir.",
        epilog="Precedence: conf/gexsrv.toml < --config FILE < environment (and ./.env) < flags. "
               f"Commands: {COMMANDS_SAID}; `python -m gexsrv COMMAND --help` for each.",
    )
    parser.add_argument("--version", action="version", version=f"gexsrv {__version__}")
    settings.add_arguments(parser, defaults)
    return parser


def log_to_stderr(conf, proc=None):
    """Log lines on stderr; with two processes each line says which one speaks (front, engine)."""
    said = f"{proc} " if proc else ""
    logging.basicConfig(level=logging.DEBUG if conf.debug else logging.INFO, force=True,
                        format=f"%(asctime)s {said}%(levelname)s %(name)s: %(message)s")


def run_serve(argv):
    from gexsrv import settings, spawner

    defaults = settings.read_toml(settings.default_config_path())
    args = serve_parser(defaults).parse_args(argv)
    conf = settings.load(args)
    # The spawner first, while this process runs one thread: nothing that starts one (polars) is imported yet.
    engine_spawner = spawner.start() if conf.processes == 2 else None
    log_to_stderr(conf, "front" if engine_spawner else None)
    name_process("gexsrv-front" if engine_spawner else "gexsrv")
    from gexsrv import front, server

    try:
        asyncio.run(front.serve(conf, engine_spawner) if engine_spawner else server.serve(conf))
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
    if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
        near = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        print(f"python -m gexsrv: unknown command {argv[0]!r}{hint}; the commands are {COMMANDS_SAID}",
              file=sys.stderr)
        sys.exit(2)
    command = argv.pop(0) if argv and argv[0] in COMMANDS else "serve"
    commands = {"serve": run_serve, "validate": run_validate, "import": run_import, "backfill": run_backfill}
    from gexsrv.settings import ConfigError  # only now: settings needs the dependencies checked above

    try:
        commands[command](argv)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
