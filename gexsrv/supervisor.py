"""Keeps the database open for writing. When it is not — held by another process, on a read-only disk, refused by
a failed ingest or a DuckDB fatal error — the supervisor opens it again on a fresh connection after a pause that
doubles each time (capped, with jitter), until that works; then it calls the `recovered` callbacks (ingest
resumes from the journal position in the database). Meanwhile requests keep being journaled, within the backlog
bounds. One alert when an incident starts and one when it ends, with its duration; not one per request.
"""

import asyncio
import logging
import random
import time

log = logging.getLogger("gexsrv.supervisor")


class Supervisor:
    def __init__(self, store, notifier, first_pause_s=0.5, max_pause_s=30.0):
        self.store = store
        self.notifier = notifier
        self.first_pause_s = first_pause_s
        self.max_pause_s = max_pause_s
        self.recovered = []  # async callables, run in order each time the database is writable again
        self.wake = asyncio.Event()
        self.task = None
        self.attempts = 0
        self.since = None  # epoch seconds the current incident started
        self.next_retry_at = None
        self.incidents = 0

    def start(self):
        if self.store.state != "writable":
            self._begin(self.store.error)
        self.task = asyncio.create_task(self._watch())

    async def close(self):
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def trouble(self, error):
        """A write failed in a way that needs a fresh connection (Store.write raised StorageError)."""
        if self.since is None:
            self._begin(error)
        self.wake.set()

    def _begin(self, error):
        self.since = time.time()
        self.incidents += 1
        self.notifier.alert(f"gexsrv storage incident: {self.store.path} cannot be written ({error}); requests "
                            "are journaled and will be ingested when it can")

    def _end(self):
        took = time.time() - self.since
        self.notifier.alert(f"gexsrv storage recovered: {self.store.path} is writable again after {took:.1f} s")
        self.since, self.attempts, self.next_retry_at = None, 0, None

    def pause(self):
        """The wait before the next attempt: doubling from first_pause_s up to max_pause_s, minus up to half."""
        full = min(self.max_pause_s, self.first_pause_s * 2 ** self.attempts)
        return full * random.uniform(0.5, 1.0)

    async def _watch(self):
        while True:
            if self.since is None:
                await self.wake.wait()
                self.wake.clear()
                continue
            pause = self.pause()
            self.next_retry_at = time.time() + pause
            await asyncio.sleep(pause)
            await self.store.run(self.store.open)
            if self.store.state != "writable":
                self.attempts += 1
                log.warning("the database is still %s (%s); trying again", self.store.state, self.store.error)
                continue
            try:
                for callback in self.recovered:
                    await callback()
            except Exception as exc:  # a recovery step failed: the incident goes on
                self.store.state, self.store.error = "failing", f"recovery failed: {exc}"
                log.exception("recovery after reopening the database failed")
                self.attempts += 1
                continue
            self._end()

    def report(self):
        return {"incident_since": self.since, "attempts": self.attempts, "next_retry_at": self.next_retry_at,
                "incidents": self.incidents}
