"""The micro-batch buffer: decoded payloads waiting for the next group commit, each with its request's future."""

import asyncio
import collections


class Overloaded(Exception):
    """The buffer is at its high watermark: the caller should retry later (503 + Retry-After)."""


class Buffer:
    def __init__(self, max_records, notify):
        self.max_records = max_records
        self._notify = notify  # called on every put, so an idle writer starts at once
        self._items = collections.deque()
        self.rejected = 0
        self.closed = False  # set once the writer has stopped: nothing would commit a record put after that

    def __len__(self):
        return len(self._items)

    def put(self, record):
        """Queue a record; the returned future resolves once its transaction has committed."""
        if self.closed:
            raise Overloaded("the server is shutting down")
        if len(self._items) >= self.max_records:
            self.rejected += 1
            raise Overloaded(f"{len(self._items)} payloads are waiting for the writer")
        future = asyncio.get_running_loop().create_future()
        self._items.append((record, future))
        self._notify()
        return future

    def drain(self, limit):
        """Take up to `limit` of the oldest (record, future) pairs."""
        return [self._items.popleft() for _ in range(min(limit, len(self._items)))]
