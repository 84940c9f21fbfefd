"""Which keys are stored or journaled already, so a reply can say `duplicate` without asking DuckDB.

A GEX key is (kind, ticker, endpoint, timestamp). Two things are held in memory:
- per (kind, ticker, endpoint), the newest timestamp stored or journaled: a key newer than that is new for sure,
  which is the case of every live feed, whatever the age of its data;
- the keys themselves, of every record journaled since start and of the last `horizon` of data loaded from DuckDB
  at start, dropped once their timestamp falls out of the horizon.
So the answer is True (seen), False (certainly new: newer than its group, or inside the horizon and not seen), or
None: unknown, for an older timestamp that the index no longer holds. /uw frames are keyed by their content hash,
with the time they arrived and no group: a frame seen within the horizon is a known duplicate, any other unknown.
"""

import time

BUCKET_MS = 60_000


class RecentKeys:
    def __init__(self, horizon_s):
        self.horizon_ms = int(horizon_s * 1000)
        self.start_ms = self._now() - self.horizon_ms  # every stored key with a timestamp from here on is held
        self.buckets = {}  # minute -> keys whose timestamp falls in it
        self.newest = {}  # (kind, ticker, endpoint) -> newest timestamp stored or journaled

    @staticmethod
    def _now():
        return int(time.time() * 1000)

    def load(self, keys, newest):
        """What the database holds: (key, timestamp ms) pairs from start_ms on, and the newest timestamps."""
        self.newest.update(newest)
        for key, ts in keys:
            self.add(key, ts)

    def seen(self, key, ts):
        """True if stored or journaled, False if certainly not, None if the index cannot tell."""
        if key in self.buckets.get(ts // BUCKET_MS, ()):
            return True
        if isinstance(key, tuple) and ts > self.newest.get(key[:3], -1):
            return False
        return False if ts >= self.start_ms and isinstance(key, tuple) else None

    def add(self, key, ts):
        self.buckets.setdefault(ts // BUCKET_MS, set()).add(key)
        if isinstance(key, tuple) and ts > self.newest.get(key[:3], -1):
            self.newest[key[:3]] = ts

    def prune(self):
        """Forget keys whose timestamp left the horizon; called periodically."""
        self.start_ms = max(self.start_ms, self._now() - self.horizon_ms)
        first = self.start_ms // BUCKET_MS
        for bucket in [b for b in self.buckets if b < first]:
            del self.buckets[bucket]

    def __len__(self):
        return sum(len(keys) for keys in self.buckets.values())
