"""The front's side of the engine: it has the spawner fork the engine (gexsrv.engine) and forks it again with backoff
whenever it ends, tells it after each group fsync how far the journal is durable, and settles each journaled seq
once the engine reports it: ?ack=ingested waiters answered and the outcomes counted. The in-memory views are the
engine's, fed by its own ingest; the front keeps no record, only its seq (the engine reads the journal itself, and
a body held here would put every one waiting in the front's memory, past ingest_memory_mb).

It offers Intake what the Ingester does (add, wait, waiting, why_waiting, position), so writes are journaled and
acknowledged whether or not an engine runs: durability never waits for it, and the backlog bound still applies.

A seq the engine ingested but did not report (it died between its commit and its message) is known from the next
engine's first message (where the database stands): its waiter is answered with None (stored or a duplicate, not
known which); `untold` counts them.

What a history import in the engine commits is told to the front's duplicate index (keys: KeysCommitting,
answered with Noted, then KeysCommitted), and so is what the database holds once the engine has it (KeysLoaded).
An engine that cannot run at all (Fatal: the database is not DuckDB's) is not started again: `fatal` says why,
and the front stops.
"""

import asyncio
import logging
import os
import signal
import time

from gexsrv.channel import (Channel, Durable, Fatal, Ingested, KeysCommitted, KeysCommitting, KeysLoaded, Noted,
                            Status, Stop)
from gexsrv.position import START
from gexsrv.spawner import SpawnerError, started_fresh
from gexsrv.store import RecordRefused

log = logging.getLogger("gexsrv.front.engine")

TARGET = "gexsrv.engine:main"
BACKOFF_S = (0.05, 5.0)  # the first restart's wait, doubling up to the last


class EngineLink:
    def __init__(self, spawner, journal, engine_args, keys, backoff_s=BACKOFF_S):
        self.spawner = spawner
        self.journal = journal
        self.engine_args = engine_args
        self.keys = keys  # the duplicate index (gexsrv.keys.RecentKeys)
        self.backoff_s = backoff_s
        self.wait_s = backoff_s[0]
        self.pending = set()  # the seqs journaled that the engine has not reported
        self.waiters = {}  # seq -> future of an ?ack=ingested request
        self.position = START  # ingested through, as the engine last said (start: until it says)
        self.channel = None  # while an engine is up
        self.pid = None
        self.restarts = 0
        self.untold = 0
        self.stored = {"stored": 0, "duplicates": 0, "quarantined": 0}
        self.last_exit = None
        self.stopping = False
        self.ended = asyncio.Event()  # set while no engine runs
        self.status = None  # the running engine's last Status: set once it serves (its first comes then)
        self.serving = asyncio.Event()  # set while an engine serves its HTTP routes
        self.fatal = None  # why the engine cannot run, once it said so (Fatal)
        self.gave_up = asyncio.Event()  # set with fatal: the front stops
        self.unclaimed = {}  # pid -> wait status of an engine that ended before its spawn() returned

    # ---- start, stop ----

    async def start(self):
        """Start the engine; the journal is open. Until the engine says where ingest stands, what the journal last
        recorded of it (its bytes counted from the oldest segment: an overestimate for a moment, never less)."""
        self.position = self.journal.ingested_position()
        await self.spawner.connect(self._exited)
        self.journal.listeners.append(self.on_durable)
        await self._spawn()

    async def _spawn(self):
        if self.stopping:  # a restart that came due after close()
            return
        try:
            if self.spawner.gone:
                await self._replace_spawner()
            self.pid, sock = await self.spawner.spawn(TARGET, self.engine_args)
        except (SpawnerError, OSError) as exc:
            log.error("cannot start the engine: %s", exc)
            self._restart_later()
            return
        self.ended = asyncio.Event()
        channel = await Channel.over(sock)
        channel.send(Durable(self.journal.durable_position))
        self.channel = channel
        asyncio.ensure_future(self._listen(channel))
        log.info("engine started (pid %d)", self.pid)
        if self.pid in self.unclaimed:
            self._exited(self.pid, self.unclaimed.pop(self.pid))

    def _exited(self, pid, status):
        if pid != self.pid:  # its Exited overtook its Spawned: claimed once spawn() has returned
            self.unclaimed[pid] = status
            return
        self.pid, self.channel, self.last_exit = None, None, describe(status)
        self.ended.set()
        if self.stopping or self.fatal:
            return
        log.error("the engine %s; writes are journaled meanwhile, and it starts again in %.2f s",
                  self.last_exit, self.wait_s)
        self._restart_later()

    async def _replace_spawner(self):
        gone, self.spawner = self.spawner, await started_fresh(self._exited)
        await gone.close()  # reaps it
        log.warning("the engine's spawner had exited: a new one runs (pid %d)", self.spawner.pid)

    def _restart_later(self):
        self.restarts += 1
        wait, self.wait_s = self.wait_s, min(self.wait_s * 2, self.backoff_s[1])
        asyncio.get_running_loop().call_later(wait, lambda: asyncio.ensure_future(self._spawn()))

    async def close(self, deadline):
        """Tell the engine to ingest what is durable and exit; wait for it until deadline (loop time)."""
        self.stopping = True
        if self.channel is not None:
            self.channel.send(Stop())
            try:
                await asyncio.wait_for(self.ended.wait(), max(deadline - asyncio.get_running_loop().time(), 0))
            except asyncio.TimeoutError:
                log.error("the engine (pid %d) did not finish in time; what it left is ingested at the next start",
                          self.pid)
        await self.spawner.close()

    # ---- what Intake calls, on the loop ----

    def add(self, seq, segment, end, received_ms, size, record):
        self.pending.add(seq)

    def wait(self, seq):
        """A future resolving to True (stored), False (a duplicate), None (ingested untold, see the module doc) or
        raising RecordRefused, once the engine reports seq."""
        future = asyncio.get_running_loop().create_future()
        self.waiters[seq] = future
        return future

    def waiting(self):
        return self.journal.next_seq - 1 - self.position.seq

    def why_waiting(self):
        if self.channel is None:
            return f"the engine is not running ({self.last_exit or 'starting'})"
        if self.status is None:
            return "the engine is starting"
        if self.status.waiting_because:
            return self.status.waiting_because
        return f"{self.waiting()} records wait for ingest"

    def on_durable(self, seq):
        if self.channel is not None:
            self.channel.send(Durable(self.journal.durable_position, min(self.waiters, default=0)))

    # ---- what the engine says ----

    async def _listen(self, channel):
        first = True
        while (message := await channel.receive()) is not None:
            if isinstance(message, Ingested):
                self._ingested(message, first)
                first = False
            elif isinstance(message, Status):
                self.status = message
                self.serving.set()
            elif isinstance(message, Fatal):
                self.fatal = message.reason
                self.gave_up.set()
            else:
                self._keys(channel, message)
        if self.channel in (None, channel):  # not an engine started since
            self.status = None
            self.serving.clear()
        if self.channel is channel and self.spawner.gone:  # its spawner died first: no Exited will come
            self._exited(self.pid, None)

    def _keys(self, channel, message):
        """What the engine tells the duplicate index; msgpack gives tuples back as lists."""
        if isinstance(message, KeysLoaded):
            self.keys.load([(as_key(key), ts) for key, ts in message.keys],
                           {as_key(group): ts for group, ts in message.newest})
        elif isinstance(message, KeysCommitting):
            self.keys.committing([(as_key(key), ts) for key, ts in message.keys])
            channel.send(Noted(message.id))
        elif isinstance(message, KeysCommitted):
            self.keys.committed([(as_key(key), ts) for key, ts in message.keys])

    def _ingested(self, message, first):
        if first:  # where the database stands: the seqs up to it were ingested by an engine before this one
            self.wait_s = self.backoff_s[0]
            for seq in [seq for seq in self.pending if seq <= message.position.seq]:
                self.untold += 1
                self._settle(seq, None)
        for outcome in message.outcomes:
            if outcome.error is not None:
                self._settle(outcome.seq, RecordRefused(outcome.error))
            else:
                self._settle(outcome.seq, outcome.stored)
        if message.position.seq > self.position.seq:
            self.position = message.position

    def _settle(self, seq, result):
        if seq not in self.pending:  # settled already (an engine ingesting its journal again after a replacement)
            return
        self.pending.remove(seq)
        if isinstance(result, RecordRefused):
            self.stored["quarantined"] += 1
        elif result:
            self.stored["stored"] += 1
        elif result is False:
            self.stored["duplicates"] += 1
        future = self.waiters.pop(seq, None)
        if future is not None and not future.done():
            (future.set_exception if isinstance(result, Exception) else future.set_result)(result)

    def report(self):
        """The engine's process as /health shows it."""
        engine = self.status
        return {"pid": self.pid, "uptime_s": round(time.time() - engine.started, 3) if engine else None,
                "cpu_s": engine.cpu_s if engine else None, "restarts": self.restarts, "last_exit": self.last_exit,
                "fatal": self.fatal, "position": self.position._asdict(), "records_waiting": self.waiting(),
                "untold": self.untold, "settled": dict(self.stored)}


def as_key(value):
    """A key or group as gexsrv.keys holds it (a tuple), from its msgpack form (a list)."""
    return tuple(value) if isinstance(value, list) else value


def describe(status):
    """A wait status in words: 'was killed by SIGKILL', 'exited with code 1'; None: nobody could wait for it."""
    if status is None:
        return "ended after its spawner, how is not known"
    if os.WIFSIGNALED(status):
        return f"was killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exited with code {os.waitstatus_to_exitcode(status)}"
