"""The failures in a row of a background task that retries on its own (the Parquet export, the raw archive, the
original's output files): one failure is logged and retried, DEGRADED_AFTER in a row turn /health `degraded` with
the task, its last error, since when and how many, until the task succeeds again."""

import datetime as dt

DEGRADED_AFTER = 3  # one failure may be a passing one (a file briefly locked); three in a row are a broken task


class Streak:
    def __init__(self, task):
        self.task = task
        self.error = None  # the last error while failing; None once the task succeeds
        self.since = None  # ISO time of the first failure in a row
        self.failures = 0

    def failed(self, error):
        self.error = error
        self.failures += 1
        self.since = self.since or dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def succeeded(self):
        self.error = self.since = None
        self.failures = 0

    @property
    def degraded(self):
        return self.failures >= DEGRADED_AFTER

    def report(self):
        return {"task": self.task, "error": self.error, "since": self.since, "failures": self.failures}
