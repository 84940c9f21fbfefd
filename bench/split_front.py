"""A prototype of issue 18's front, to measure the split's write path before the server is built on it: POST /gex
served by gexsrv's own handler, Intake and Journal (group fsync), the views fed by the engine's outcomes
(gexsrv.engine_link), and the engine (gexsrv.engine, forked by gexsrv.spawner) ingesting from the journal. Nothing
else of the server (no archive, lake, reads, history): a measurement stand-in, not a server to run.

    python bench/split_front.py --data-dir DIR [gexsrv serve flags]
prints `listening on http://HOST:PORT` and `engine pid PID`; SIGTERM or SIGINT stops both.
"""

import asyncio
import sys

import msgspec
from tornado.web import Application

from gexsrv import spawner


async def serve(handle, conf):
    # Only now: these import polars and pyarrow, which start threads (gexsrv.spawner).
    from gexsrv import auth, batches, handlers, journal_home, server
    from gexsrv.connections import Connections
    from gexsrv.decode import Rules
    from gexsrv.engine_link import EngineLink
    from gexsrv.intake import Intake
    from gexsrv.journal import Journal
    from gexsrv.keys import RecentKeys
    from gexsrv.latest import Latest
    from gexsrv.origins import Gate

    sockets = server.bind(conf)
    folder = journal_home.settle(conf.data_dir, conf.journal_dir)
    journal = Journal(folder, conf.journal_segment_mb << 20, conf.journal_segment_seconds)
    journal.open()
    latest = Latest(conf.future_tolerance_s, conf.max_feeds)
    link = EngineLink(handle, journal, {"settings": msgspec.to_builtins(conf), "journal": folder},
                      observers=[latest.observe, latest.feeds.observe])
    keys = RecentKeys(conf.duplicate_horizon_s)
    intake = Intake(journal, link, keys, conf.backlog_max_records, conf.backlog_max_mb << 20,
                    conf.ack_ingested_timeout_s)
    app = Application([(r"/gex/?", handlers.GexHandler, dict(intake=intake, rules=Rules.from_settings(conf)))],
                      gexsrv=conf, gate=Gate.from_settings(conf), signatures=auth.Signatures.from_settings(conf),
                      bodies_in_flight=[0], requests_in_flight=[0], log_function=lambda handler: None)
    http, (host, port) = server.listen(app, conf, sockets, Connections(conf.max_connections))
    batches.warm_up()
    server.tune_interpreter()
    journal.start()
    intake.start()
    await link.start()
    print(f"listening on http://{host}:{port}", flush=True)
    print(f"engine pid {link.pid}", flush=True)
    await server.until_signalled()
    http.stop()
    await link.close(asyncio.get_running_loop().time() + conf.shutdown_grace_s)
    await journal.close()


def main():
    handle = spawner.start()  # first: it must be forked while this process runs one thread
    from gexsrv import cli, settings

    conf = settings.load(cli.serve_parser(settings.read_toml(settings.default_config_path())).parse_args(sys.argv[1:]))
    asyncio.run(serve(handle, conf))


if __name__ == "__main__":
    main()
