"""Which keys are stored or journaled already, so a reply can say `duplicate` without asking DuckDB.

A GEX key is (kind, ticker, endpoint, timestamp). Two things are held in memory:
- per (kind, ticker, endpoint), the newest timestamp stored or journaled: a key newer than that is new for sure,
  which is the case of every live feed, whatever the age of its data;
- the keys themselves, of every record journaled since start and of the last `horizon` of data loaded from DuckDB
  at start, dropped once their timestamp falls out of the horizon.
So the answer is True (seen), False (certainly new: newer than its group, or inside the horizon and not seen), or
None: unknown, for an older timestamp that the index no longer holds. /uw frames are keyed by their content hash,
with the time they arrived and no group: a frame seen within the horizon is a known duplicate, any other unknown.

Until the database's keys are loaded (a start while it is locked by another process), every key not journaled
since start is unknown. A history import commits keys beside the journal: it tells the index which ones it is
about to commit (committing: unknown meanwhile, their groups' newest raised) and which ones it did (committed).
"""

import time

BUCKET_MS = 60_000


class RecentKeys:
    def __init__(self, horizon_s):
        self.horizon_ms = int(horizon_s * 1000)
        self.start_ms = self._now() - self.horizon_ms  # every stored key with a timestamp from here on is held
        self.buckets = {}  # minute -> keys whose timestamp falls in it
        self.doubtful = {}  # minute -> keys a history import is committing
        self.newest = {}  # (kind, ticker, endpoint) -> newest timestamp stored or journaled
        self.loaded = False  # the database's keys are in

    @staticmethod
    def _now():
        return int(time.time() * 1000)

    def load(self, keys, newest):
        """What the database holds: (key, timestamp ms) pairs from start_ms on, and the newest timestamps."""
        for group, ts in newest.items():
            self._raise_newest(group, ts)
        for key, ts in keys:
            self.add(key, ts)
        self.loaded = True

    def seen(self, key, ts):
        """True if stored or journaled, False if certainly not, None if the index cannot tell."""
        bucket = ts // BUCKET_MS
        if key in self.buckets.get(bucket, ()):
            return True
        if not self.loaded or key in self.doubtful.get(bucket, ()):
            return None
        if isinstance(key, tuple) and ts > self.newest.get(key[:3], -1):
            return False
        return False if ts >= self.start_ms and isinstance(key, tuple) else None

    def add(self, key, ts):
        self.buckets.setdefault(ts // BUCKET_MS, set()).add(key)
        if isinstance(key, tuple):
            self._raise_newest(key[:3], ts)

    def _raise_newest(self, group, ts):
        if ts > self.newest.get(group, -1):
            self.newest[group] = ts

    def committing(self, pairs):
        """(key, timestamp ms) pairs a history import is about to commit: unknown until committed()."""
        for key, ts in pairs:
            self._raise_newest(key[:3], ts)
            if ts >= self.start_ms:  # older ones are unknown anyway, their group's newest being later
                self.doubtful.setdefault(ts // BUCKET_MS, set()).add(key)

    def committed(self, pairs):
        """(key, timestamp ms) pairs a history import stored (now or before): seen."""
        for key, ts in pairs:
            if ts >= self.start_ms:
                self.add(key, ts)
                self.doubtful.get(ts // BUCKET_MS, set()).discard(key)

    def prune(self):
        """Forget keys whose timestamp left the horizon; called periodically."""
        self.start_ms = max(self.start_ms, self._now() - self.horizon_ms)
        first = self.start_ms // BUCKET_MS
        for held in (self.buckets, self.doubtful):
            for bucket in [b for b in held if b < first]:
                del held[bucket]

    def __len__(self):
        return sum(len(keys) for keys in self.buckets.values())
