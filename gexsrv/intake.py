"""Taking a decoded request in: refuse it when ingest is too far behind, tell whether it is a duplicate, append it
to the journal, hand it to ingest, and wait until it is durable (or, with ack=ingested, in DuckDB).

Handlers and the poller call Intake.accept; nothing is acknowledged before the fsync that covers its line.
"""

import asyncio
import time

from tornado.ioloop import PeriodicCallback

from gexsrv.journal import JournalError


class Busy(Exception):
    """Ingest is behind past its bound: retry later (503 + Retry-After)."""


class NotIngested(Exception):
    """ack=ingested timed out: the record is durable in the journal and will be ingested later."""


class NotDurable(Exception):
    """The record is not known to be on disk; `unknown` says whether it may be stored anyway."""

    def __init__(self, message, unknown=False):
        super().__init__(message)
        self.unknown = unknown


class Intake:
    def __init__(self, journal, ingester, keys, backlog_records, backlog_bytes, ingested_timeout_s):
        self.journal = journal
        self.ingester = ingester
        self.keys = keys
        self.backlog_records = backlog_records
        self.backlog_bytes = backlog_bytes
        self.ingested_timeout_s = ingested_timeout_s
        self.refused = 0
        self.closed = False  # set at shutdown
        self.pruning = PeriodicCallback(keys.prune, 60_000)

    def behind(self):
        """Why writes are refused now, or None."""
        if self.closed:
            return "the server is shutting down"
        waiting = self.ingester.waiting()
        if waiting >= self.backlog_records:
            return f"{waiting} journaled records are waiting for ingest"
        uningested = self.journal.bytes_after(self.ingester.position)
        if uningested >= self.backlog_bytes:
            return f"{uningested >> 20} MiB of journal are waiting for ingest"
        return None

    def start(self):
        self.pruning.start()

    @staticmethod
    def _when(record):
        return record.raw["received_at"] if record.kind == "uw" else record.timestamp_ms

    def append(self, record, header, body):
        """Journal one record; return (seq, future resolving once durable)."""
        seq, segment, end, durable = self.journal.append(header, body)
        self.ingester.add(seq, segment, end, header.arrived, len(body), record.held())
        self.keys.add(record.key, self._when(record))
        return seq, durable

    async def accept(self, items, body, ack="journal"):
        """Journal the (record, header) items of one request together (headers of gexsrv.journalline, whose `dup`
        and `arrived` are filled in here); return, per item, whether it is a duplicate: True, False or None
        (unknown; with ack=ingested, as ingest found it). Raises Busy, NotDurable, or with ack=ingested
        NotIngested (timed out) or RecordRefused (quarantined)."""
        reason = self.behind()
        if reason:
            self.refused += 1
            raise Busy(reason)
        duplicates = [self.keys.seen(record.key, self._when(record)) for record, _ in items]
        # The server's clock, whatever the client's received_at says: the archive files the line by its day.
        arrived = round(time.time() * 1000)
        appended = []
        try:
            for (record, header), dup in zip(items, duplicates):
                header.dup, header.arrived = dup, arrived
                appended.append(self.append(record, header, body))
        except JournalError as exc:
            raise NotDurable(f"not stored: {exc}" if not appended else f"{exc}; part of the request may be "
                             "stored, and sending it again is safe", unknown=bool(appended)) from exc
        ingested = [self.ingester.wait(seq) for seq, _ in appended] if ack == "ingested" else None
        try:
            for _, durable in appended:
                await durable
        except JournalError as exc:
            raise NotDurable(str(exc), unknown=exc.unknown) from exc
        if ingested:
            try:
                stored = await asyncio.wait_for(asyncio.gather(*ingested), self.ingested_timeout_s)
                # None: ingested by an engine that died before saying whether it was a duplicate (engine_link)
                return [None if each is None else not each for each in stored]
            except asyncio.TimeoutError:
                raise NotIngested(f"not ingested within {self.ingested_timeout_s:g} s ({self.ingester.why_waiting()}); "
                                  "it is journaled and will be") from None
        return duplicates
