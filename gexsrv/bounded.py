"""A mapping that holds at most `limit` keys, letting go of the least recently updated one past it: what bounds the
views kept in memory (gexsrv.latest), whose values are whole snapshots."""

import collections


class Bounded(collections.OrderedDict):
    """Setting a key (new or not) makes it the most recent; `touch` does so without setting it, `keep` sets it
    without doing so. Past `limit` keys the least recent ones are dropped, counted in `evicted`."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.evicted = 0

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)
            self.evicted += 1

    def touch(self, key):
        self.move_to_end(key)

    def keep(self, key, value):
        """Replace the value of a key held without making it more recent (a read that caches, not an update)."""
        super().__setitem__(key, value)
