"""GET /metrics: the server in Prometheus' text format, from a CollectorRegistry of the app's own.

Three sources, so that the write path does next to nothing for metrics:
- requests are timed in the Application's log_function (gexsrv.app.request_logger), one histogram observation
  each; ingests as ingest reports them (Ingester.on_ingest), a few per second;
- everything else is read from the running parts when Prometheus scrapes (PartsCollector): counters and states
  they keep anyway;
- what only the database knows (history jobs, the quarantine) is read before each scrape (Metrics.refresh), in a
  worker thread on the store's read connection.
Warnings and errors logged anywhere are counted, and the latest kept for the status page (LogTail).
"""

import asyncio
import collections
import logging
import re

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.parser import text_string_to_metric_families

from gexsrv import __version__, reads
from gexsrv.store import StorageError

REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
INGEST_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)
# Ingest's counts (Ingester.stored) of what it stored, by the table a row lands in.
TABLES = {"snapshot": "gex_snapshots", "strike_rows": "gex_strikes", "majors": "gex_majors",
          "maxchange": "gex_maxchange", "uw": "universal_webhooks"}
# The database's states; "unavailable" is the front's word (processes = 2) while no engine answers its scrape.
STATES = ("writable", "read-only", "failing", "closed", "unavailable")
JOB_STATUSES = ("pending", "downloading", "importing", "completed", "skipped", "failed")
NOTIFICATION_RESULTS = ("sent", "failed", "dropped")
GROUP = re.compile(r"\(([^)]*)\)")


def route_label(pattern):
    r"""A route's pattern as its requests' `endpoint` label: /gex_history_url/(\d+)/? -> /gex_history_url/{id}."""
    def name(group):
        return "{id}" if group[1].startswith(r"\d") else "{path}" if group[1] else ""
    return GROUP.sub(name, pattern).removesuffix("/?").replace("\\", "") or "/"


class LogTail(logging.Handler):
    """Counts the warnings and errors logged, by level, and keeps the latest `size` of them."""

    def __init__(self, size=50):
        super().__init__(logging.WARNING)
        self.counts = collections.Counter()
        self.latest = collections.deque(maxlen=size)

    def emit(self, record):  # from any thread, holding self.lock (logging.Handler.handle)
        self.counts[record.levelname] += 1
        self.latest.append({"at": round(record.created * 1000), "level": record.levelname, "logger": record.name,
                            "message": record.getMessage()[:1000]})

    def recent(self):
        """The latest warnings and errors, newest first."""
        with self.lock:
            return list(reversed(self.latest))

    def counted(self):
        with self.lock:
            return dict(self.counts)


class Metrics:
    """The app's registry: request and ingest histograms, the parts' collector, the process' own metrics."""

    def __init__(self, parts, engine_scrape=None):
        self.parts = parts
        self.engine_scrape = engine_scrape  # the front's: a coroutine function of the engine's /metrics text
        self.engine_text = None
        self.registry = CollectorRegistry()
        self.requests = Histogram("gexsrv_request_duration_seconds", "HTTP requests by route, method and status: "
                                  "time from the request's start to its reply", ("endpoint", "method", "status"),
                                  buckets=REQUEST_BUCKETS, registry=self.registry)
        # (route, method, status) -> its histogram: labels() validates and locks on every call, once per request.
        # No more of them than the histogram keeps itself.
        self.request_series = {}
        self.log_tail = LogTail()
        self.stored = None  # what refresh() read from the database; None while it cannot be read
        self.registry.register(PartsCollector(parts, self))
        ProcessCollector(registry=self.registry)
        if parts.ingester is not None:
            self._ingest_histograms()

    def _ingest_histograms(self):
        self.ingest_seconds = Histogram("gexsrv_ingest_seconds", "Ingests into DuckDB (one transaction each): "
                                        "time from taking the records to their commit", buckets=INGEST_BUCKETS,
                                        registry=self.registry)
        self.ingest_records = Histogram("gexsrv_ingest_batch_records", "Records per ingest",
                                        buckets=BATCH_BUCKETS, registry=self.registry)

    def observe_request(self, handler):
        """The log_function's part: time the finished request under its route (`route`, set by make_app)."""
        key = (getattr(handler, "route", "unmatched"), handler.request.method, handler.get_status())
        series = self.request_series.get(key)
        if series is None:
            series = self.request_series[key] = self.requests.labels(key[0], key[1], str(key[2]))
        series.observe(handler.request.request_time())

    def observe_ingest(self, seconds, records):
        self.ingest_seconds.observe(seconds)
        self.ingest_records.observe(records)

    async def refresh(self):
        """Read what only the database knows, in a worker thread; a database away leaves those metrics out. The
        front scrapes the engine instead (None while it is down)."""
        if self.engine_scrape is not None:
            self.engine_text = await self.engine_scrape()
            return
        try:
            self.stored = await asyncio.to_thread(stored_facts, self.parts)
        except StorageError:
            self.stored = None

    def exposition(self, accept):
        """(body, content type) in the format the scraper's Accept header asks for (text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        if self.engine_scrape is None:
            return encoder(self.registry), content_type
        return encoder(BothProcesses(self.registry, self.engine_text)), content_type


class BothProcesses:
    """The front's families and the engine's (from its exposition text) as one registry: a family both have
    (process_*, the build, the log) is one family whose samples say which process with a `proc` label. The
    engine's request durations are left out: the front times every request, those it passed on included."""

    LEFT_OUT = {"gexsrv_request_duration_seconds"}
    # Families both processes always have: labelled even when the engine did not answer (a series is its labels).
    BOTH_HAVE = {"process_virtual_memory_bytes", "process_resident_memory_bytes", "process_start_time_seconds",
                 "process_cpu_seconds", "process_open_fds", "process_max_fds", "gexsrv_build_info",
                 "gexsrv_log_messages"}

    def __init__(self, registry, engine_text):
        self.registry = registry
        self.engine_text = engine_text

    def collect(self):
        own = list(self.registry.collect())
        theirs = [family for family in text_string_to_metric_families(self.engine_text or "")
                  if family.name not in self.LEFT_OUT]
        shared = {family.name for family in own} & ({family.name for family in theirs} | self.BOTH_HAVE)
        engine_side = {family.name: family for family in theirs if family.name in shared}
        for family in own:
            if family.name in shared:
                family = with_proc(family, engine_side.get(family.name))
            yield family
        yield from (family for family in theirs if family.name not in shared)
        if self.engine_text is None:  # an alert on gexsrv_storage_writable == 0 fires, an absent series would not
            yield from storage_state("unavailable")


def storage_state(current):
    yield gauge("gexsrv_storage_writable", "1 while the database takes writes", int(current == "writable"))
    yield labelled(GaugeMetricFamily, "gexsrv_storage_state", "The database's state (1 for the current one)",
                   ["state"], {(state,): int(current == state) for state in STATES})


def with_proc(front, engine):
    """One family of the front's and the engine's samples (None while it is down), labelled with their process."""
    both = Metric(front.name, front.documentation, front.type, front.unit)
    both.samples = [sample._replace(labels={**sample.labels, "proc": proc})
                    for proc, family in (("front", front), ("engine", engine)) if family
                    for sample in family.samples]
    return both


def stored_facts(parts):
    jobs, rows_imported = reads.history_counts(parts.store)
    return {"jobs": jobs, "rows_imported": rows_imported, "quarantined": parts.store.quarantined(),
            "import_rates": reads.import_rates(parts.store, parts.runner)}


def gauge(name, doc, value):
    return GaugeMetricFamily(name, doc, value=value)


def counter(name, doc, value):
    return CounterMetricFamily(name, doc, value=value)


def labelled(family, name, doc, labels, values):
    """A family of `family` (GaugeMetricFamily, CounterMetricFamily) with one sample per {label values: value}."""
    found = family(name, doc, labels=labels)
    for key, value in values.items():
        found.add_metric(list(key), value)
    return found


class PartsCollector:
    """The running parts' state at scrape time: attribute reads and small sums on the event loop."""

    def __init__(self, parts, metrics):
        self.parts = parts
        self.metrics = metrics

    def describe(self):
        return []  # families vary with what runs (poller, lake) and what the database says

    def collect(self):
        parts = self.parts
        yield labelled(GaugeMetricFamily, "gexsrv_build_info", "The running gexsrv", ["version"],
                       {(__version__,): 1})
        if parts.store is not None:  # the parts that own the database (one process, or the engine)
            yield from self.storage(parts)
            yield from self.ingest(parts)
            yield from self.history()
            yield from self.feeds(parts)
            yield from self.beside_storage(parts)
        if parts.intake is not None:  # the parts that take writes in (one process, or the front)
            yield from self.journal(parts)
            yield from self.beside_journal(parts)
        if parts.link is not None:
            yield from self.engine(parts.link)
        yield labelled(CounterMetricFamily, "gexsrv_log_messages", "Warnings and errors logged, by level",
                       ["level"], {(level,): n for level, n in self.metrics.log_tail.counted().items()})

    def storage(self, parts):
        store = parts.store
        yield from storage_state(store.state)
        yield counter("gexsrv_storage_incidents", "Times the database stopped taking writes",
                      parts.supervisor.incidents)
        yield labelled(CounterMetricFamily, "gexsrv_commit_conflicts", "Commits refused because another "
                       "transaction had just committed one of their keys (live ingest beside a history import), by "
                       "whose commit it was: written again, the key stored first kept; not an incident",
                       ["writer"], {(writer,): n for writer, n in store.conflicts.items()})
        if self.metrics.stored is not None:
            yield gauge("gexsrv_storage_quarantined_records", "Journaled records the database refused "
                        "(gexsrv_quarantine)", self.metrics.stored["quarantined"])

    def journal(self, parts):
        journal, consumer = parts.journal, parts.ingester or parts.link
        yield gauge("gexsrv_journal_records_waiting", "Journaled records not yet ingested", consumer.waiting())
        yield gauge("gexsrv_journal_bytes_waiting", "Journal bytes not yet ingested",
                    journal.bytes_after(consumer.position))
        yield counter("gexsrv_journal_fsyncs", "fdatasync calls of the journal (one covers every line since the "
                      "previous one)", journal.fsyncs)
        yield counter("gexsrv_journal_written_bytes", "Bytes appended to the journal", journal.bytes_written)
        yield gauge("gexsrv_journal_segments", "Journal segments not yet archived", len(journal.segments))
        yield gauge("gexsrv_journal_failed", "1 once an fsync failed (appends refused until a restart)",
                    int(bool(journal.error)))
        yield gauge("gexsrv_journal_refusing", "1 while appends fail (a full disk), until one succeeds again",
                    int(bool(journal.refusing)))
        yield counter("gexsrv_intake_refused_busy", "Writes refused with 503 because ingest was too far behind",
                      parts.intake.refused)
        yield gauge("gexsrv_duplicate_index_keys", "Recent keys held to answer `duplicate`", len(parts.keys))

    def ingest(self, parts):
        ingester = parts.ingester
        stored = ingester.stored
        yield gauge("gexsrv_ingest_lag_seconds", "Age of the oldest record waiting for ingest",
                    ingester.report()["lag_s"])
        yield gauge("gexsrv_ingest_held_bytes", "Request bodies held in memory for ingest", ingester.held_bytes)
        yield counter("gexsrv_ingest_failures", "Ingests the database took nothing of", ingester.failures)
        yield labelled(CounterMetricFamily, "gexsrv_rows_stored", "Rows ingested into DuckDB since start, by table",
                       ["table"], {(table,): stored[kind] for kind, table in TABLES.items()})
        yield counter("gexsrv_ingest_duplicates", "Records not stored: their key was stored already",
                      stored["duplicates"])
        yield counter("gexsrv_ingest_quarantined", "Records the database refused, kept in gexsrv_quarantine",
                      stored["quarantined"])

    def history(self):
        stored = self.metrics.stored
        if stored is None:
            return
        jobs = stored["jobs"]
        yield labelled(GaugeMetricFamily, "gexsrv_history_jobs", "History import jobs by status", ["status"],
                       {(status,): jobs.get(status, 0) for status in sorted({*JOB_STATUSES, *jobs})})
        yield counter("gexsrv_history_rows_imported", "Strike rows imported by completed history jobs",
                      stored["rows_imported"])
        yield gauge("gexsrv_history_import_rows_per_second", "Strike rows per second of the import running now, "
                    "over its run so far (0: none runs)", sum(stored["import_rates"].values()))

    def feeds(self, parts):
        feeds = parts.latest.feeds.feeds
        labels = ["ticker", "endpoint", "kind"]
        yield labelled(GaugeMetricFamily, "gexsrv_feed_timestamp_seconds", "Newest payload timestamp per feed "
                       "(age: time() minus this)", labels, {key: f.timestamp_ms / 1000 for key, f in feeds.items()})
        yield labelled(GaugeMetricFamily, "gexsrv_feed_received_timestamp_seconds", "When a payload of the feed "
                       "last arrived", labels, {key: f.received_ms / 1000 for key, f in feeds.items()})
        yield labelled(CounterMetricFamily, "gexsrv_feed_records", "Payloads of the feed acknowledged since start",
                       labels, {key: f.records for key, f in feeds.items()})
        yield gauge("gexsrv_latest_tickers", "Tickers in the latest view (GET /api/latest)", len(parts.latest.entries))

    def engine(self, link):
        yield gauge("gexsrv_engine_up", "1 while the engine process serves (processes = 2)",
                    int(link.serving.is_set()))
        yield counter("gexsrv_engine_restarts", "Times the engine process was started again after it ended",
                      link.restarts)

    def beside_journal(self, parts):
        """The poller and the archive."""
        poller = parts.poller
        yield gauge("gexsrv_poller_enabled", "1 when the gexbot poller runs", int(poller is not None))
        if poller is not None:
            yield labelled(CounterMetricFamily, "gexsrv_poller_results", "Poller fetches: stored (not a duplicate) "
                           "or error", ["result"], {("stored",): poller.stored, ("error",): poller.errors})
            yield gauge("gexsrv_poller_last_poll_timestamp_seconds", "When the latest poll round began",
                        poller.last_poll_at or 0)
        yield gauge("gexsrv_archive_files", "Files in the raw archive", parts.archiver.files)
        yield gauge("gexsrv_archive_bytes", "Bytes in the raw archive", parts.archiver.bytes)

    def beside_storage(self, parts):
        """Notifications and the lake."""
        notifier = parts.notifier
        yield labelled(CounterMetricFamily, "gexsrv_notifications", "Alerts and trade proposals by channel and "
                       "result", ["channel", "result"], {(channel, result): counts[result] for channel, counts in
                                                         notifier.counts.items() for result in NOTIFICATION_RESULTS})
        yield gauge("gexsrv_notifications_in_flight", "Notifications being sent", len(notifier.tasks))
        yield counter("gexsrv_lake_exported_rows", "Strike rows exported to Parquet since start",
                      parts.lake.exported_rows)
