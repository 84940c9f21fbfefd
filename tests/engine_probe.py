"""A front in miniature for tests/test_engine.py, run as its own process: the spawner, a real Journal in DATA_DIR,
and the engine (gexsrv.engine) forked to ingest what it journals; optionally the engine is SIGKILLed at random
moments and forked again. Prints one JSON line of every seq's outcome as the engine reported it.

    python tests/engine_probe.py DATA_DIR RECORDS KILLS SEED [late]

With `late`, the engine is forked only once every record is journaled (a journal written while none ran).
"""

import asyncio
import json
import os
import random
import signal
import sys
import time

from gexsrv import spawner

STRIKES = 20
TS = 1777492800


class Front:
    def __init__(self, handle, settings, journal, first_seq):
        self.handle = handle
        self.settings = settings
        self.journal = journal
        self.first_seq = first_seq  # the first seq this front journals: earlier ones are another run's
        self.channel = None
        self.pid = None
        self.outcomes = {}  # seq -> [stored, error] as reported
        self.reported_twice = []
        self.covered = set()  # seqs an engine's first message said were ingested before it, without an outcome
        self.exits = asyncio.Queue()
        self.hello = None

    async def start_engine(self):
        from gexsrv.channel import Channel, Durable

        self.pid, sock = await self.handle.spawn("gexsrv.engine:main", {
            "settings": __import__("msgspec").to_builtins(self.settings), "journal": self.journal.folder})
        self.channel = await Channel.over(sock)
        self.hello = asyncio.get_running_loop().create_future()
        self.channel.send(Durable(self.journal.durable_position))
        asyncio.ensure_future(self.listen(self.channel, self.hello))

    def durable(self, seq):
        from gexsrv.channel import Durable

        if self.channel is not None:
            self.channel.send(Durable(self.journal.durable_position))

    async def listen(self, channel, hello):
        while (message := await channel.receive()) is not None:
            if not hello.done():  # the engine's first message: where the database stands
                self.covered |= {seq for seq in range(self.first_seq, message.position.seq + 1)
                                 if seq not in self.outcomes}
                hello.set_result(message.position)
                continue
            for outcome in message.outcomes:
                if outcome.seq in self.outcomes:
                    self.reported_twice.append(outcome.seq)
                self.outcomes[outcome.seq] = [outcome.stored, outcome.error]

    def settled(self, upto):
        return all(seq in self.outcomes or seq in self.covered for seq in range(self.first_seq, upto + 1))


def record(i):
    """A journal (header, body) of the i-th snapshot, as gexsrv.intake makes them."""
    from gexsrv.decode import Rules, decode_gex
    from gexsrv.journalline import gex_header
    from helpers import snapshot

    body = json.dumps(snapshot("SPX", TS + i, n_strikes=STRIKES)).encode()
    header = gex_header(decode_gex(body, Rules(), (TS + i) * 1000 + 500), "/gex")
    header.dup, header.arrived = False, round(time.time() * 1000)
    return header, body


async def run(handle, data_dir, records, kills, seed, late):
    from gexsrv import cli, journal_home, settings
    from gexsrv.journal import Journal

    conf = settings.load(cli.serve_parser({}).parse_args(["--data-dir", data_dir, "--ingest-interval-ms", "20"]))
    folder = journal_home.settle(conf.data_dir, conf.journal_dir)
    journal = Journal(folder, 64 << 10, 300)
    journal.open()
    journal.start()
    front = Front(handle, conf, journal, journal.next_seq)
    await handle.connect(lambda pid, status: front.exits.put_nowait((pid, status)))
    journal.listeners.append(front.durable)
    if not late:
        await front.start_engine()
    rng = random.Random(seed)
    kill_after = set(rng.sample(range(records), kills))
    killed = 0
    for i in range(records):
        _, _, _, durable = journal.append(*record(i))
        await durable if i % 7 == 0 else None
        if i in kill_after:
            await asyncio.sleep(rng.random() * 0.05)
            os.kill(front.pid, signal.SIGKILL)
            await front.exits.get()
            killed += 1
            await front.start_engine()
    if late:
        await asyncio.gather(*journal_futures(journal))
        await front.start_engine()
    while not front.settled(journal.next_seq - 1):
        await asyncio.sleep(0.01)
    from gexsrv.channel import Stop

    front.channel.send(Stop())
    pid, status = await front.exits.get()
    await journal.close()
    await handle.close()
    return {"seqs": [front.first_seq, journal.next_seq - 1], "kills": killed, "outcomes": front.outcomes,
            "covered": sorted(front.covered), "reported_twice": front.reported_twice, "last_pid": pid,
            "exit_code": os.waitstatus_to_exitcode(status)}


def journal_futures(journal):
    """The futures of the appends not yet durable."""
    return [future for _, future in journal.waiters]


def main():
    data_dir, records, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    handle = spawner.start()
    print(json.dumps(asyncio.run(run(handle, data_dir, records, kills, seed, sys.argv[5:] == ["late"]))))


if __name__ == "__main__":
    main()
