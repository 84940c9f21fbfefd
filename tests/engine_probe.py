"""A front in miniature for tests/test_engine.py, run as its own process: the spawner, a real Journal in DATA_DIR,
and the front's link to the engine (gexsrv.engine_link), which forks the engine to ingest what is journaled;
optionally the engine is SIGKILLed at random moments (and forked again by the link). Prints one JSON line: each
seq's ?ack=ingested answer, which records the views were fed, reads through the engine, and what a read got
while the engine was down.

    python tests/engine_probe.py DATA_DIR RECORDS KILLS SEED [late | hang]

With `late`, the engine is started only once every record is journaled (a journal written while none ran). With
`hang`, once every record is durable it prints {"engine_pid", "durable_seq"} and waits to be killed.
PROBE_STRIKES in the environment sets the strikes per snapshot (20), to measure the engine's ingest with the
benchmarks' 300 (docs/performance.md).
"""

import asyncio
import json
import os
import random
import signal
import sys
import time

from gexsrv import spawner

STRIKES = int(os.environ.get("PROBE_STRIKES", "20"))
TS = 1777492800


def record(i):
    """A journal (header, body) of the i-th snapshot, as gexsrv.intake makes them."""
    from gexsrv.decode import Rules, decode_gex
    from gexsrv.journalline import gex_header
    from helpers import snapshot

    body = json.dumps(snapshot("SPX", TS + i, n_strikes=STRIKES)).encode()
    header = gex_header(decode_gex(body, Rules(), (TS + i) * 1000 + 500), "/gex")
    header.dup, header.arrived = False, round(time.time() * 1000)
    return header, body


def answer(future):
    """A waiter's outcome as JSON: true (stored), false (duplicate), null (ingested untold) or the refusal."""
    error = future.exception()
    return {"refused": str(error)} if error else future.result()


async def run(handle, data_dir, records, kills, seed, mode):
    late = mode == "late"
    import msgspec

    from gexsrv import cli, journal_home, settings
    from gexsrv.engine_link import EngineLink
    from gexsrv.journal import Journal

    conf = settings.load(cli.serve_parser({}).parse_args(["--data-dir", data_dir, "--ingest-interval-ms", "20"]))
    folder = journal_home.settle(conf.data_dir, conf.journal_dir)
    journal = Journal(folder, 64 << 10, 300)
    journal.open()
    journal.start()
    fed = []
    link = EngineLink(handle, journal, {"settings": msgspec.to_builtins(conf), "journal": folder},
                      observers=[fed.append])
    first_seq, answers = journal.next_seq, {}
    if not late:
        await link.start()
    rng = random.Random(seed)
    kill_after = set(rng.sample(range(records), kills))
    killed, down = None, []
    for i in range(records):
        header, body = record(i)
        seq, segment, end, durable = journal.append(header, body)
        link.add(seq, segment, end, header.arrived, len(body), header.ts)
        answers[seq] = link.wait(seq)
        if i % 7 == 0:
            await durable
        if i in kill_after:
            await asyncio.sleep(rng.random() * 0.05)
            while link.pid in (None, killed):  # the last one killed is not started again yet
                await asyncio.sleep(0.005)
            killed = link.pid
            os.kill(killed, signal.SIGKILL)
            while link.pid == killed:  # until the spawner says it ended
                await asyncio.sleep(0.001)
            down.append(await read_while_down(link))
    await durable
    if mode == "hang":
        print(json.dumps({"engine_pid": link.pid, "durable_seq": journal.durable_seq}), flush=True)
        await asyncio.Event().wait()
    began = time.monotonic()
    if late:
        await link.start()
    await asyncio.gather(*answers.values(), return_exceptions=True)
    last = (TS + records - 1) * 1000
    read = {"snapshot": await link.call("snapshot", "SPX", "gex_zero", last),
            "snapshots": await link.call("snapshots", "SPX", "gex_zero", TS * 1000, last + 1, 5),
            "quarantined": await link.call("quarantined")}
    while link.status is None or link.status.sections["ingest"]["position"]["seq"] < journal.next_seq - 1:
        await asyncio.sleep(0.01)  # a Status sent since the last ingest
    report = link.report()
    report["ingest_s"] = time.monotonic() - began
    await link.close(asyncio.get_running_loop().time() + 30)
    await journal.close()
    return {"seqs": [first_seq, journal.next_seq - 1], "answers": {seq: answer(f) for seq, f in answers.items()},
            "fed": fed, "link": report, "exit": link.last_exit, "read": read, "down": down}


async def read_while_down(link):
    from gexsrv.engine_link import EngineDown

    try:
        await link.call("quarantined")
    except EngineDown as exc:
        return str(exc)
    return "answered"


def main():
    data_dir, records, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    handle = spawner.start()
    mode = sys.argv[5] if len(sys.argv) > 5 else None
    print(json.dumps(asyncio.run(run(handle, data_dir, records, kills, seed, mode))))


if __name__ == "__main__":
    main()
