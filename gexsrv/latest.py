"""The latest GEX data of every ticker, merged as the original's latest.json (CONTRACT section 6), kept in memory.

Ingest hands over every GEX record it stored (Ingester.observers, on the event loop). Per ticker, the newest
record of each kind is held, newest by the payload's `timestamp`: a record older than the one held for its ticker
and kind (a history file replayed through /gex, a late retry) does not replace it, so old data never becomes
"latest"; one as new or newer does (of equal timestamps, the one stored last wins). Endpoints do not matter:
the latest snapshot is the latest of gex_zero, gex_one and gex_full alike.

A record dated more than the future tolerance ahead of the server's clock (future_tolerance_s; the reply lists it
in its problems) is stored but never held, here or in the feeds, nor loaded at start: one payload dated 2099 would
otherwise stay the newest, and every feed's age frozen, for good.

Holding a record is the whole cost on the hot path; the JSON view is built when asked and cached until the
ticker's next change. At start the view is loaded from DuckDB in a worker thread (load()): the newest snapshot
(with its strike rows), majors and maxchange of every ticker; records stored meanwhile are kept where newer.

Beside it, per feed (ticker, endpoint, kind), what the status page and /metrics show (Feeds): the newest timestamp,
when a payload last arrived, and the newest snapshot of each (ticker, endpoint) with its strike rows. Both hold
records as ingest holds them (without StrikeRow objects) and read the strike rows back only for the ones they show.

Memory is bounded: a snapshot has at most max_strikes strike rows (gexsrv.decode), and the tickers of the view, the
feeds and the feeds' snapshots are each at most max_feeds (gexsrv.bounded); past it, the one updated least recently
is let go of. It stays in DuckDB; a ticker let go of comes back with the next payload stored for it, which then is
its latest here even if DuckDB holds a newer one (a late retry).
"""

import asyncio
import datetime as dt
import logging
import time

import msgspec

from gexsrv.bounded import Bounded
from gexsrv.decode import with_strikes
from gexsrv.payloads import StrikeRow
from gexsrv.records import MajorsRow, MaxChangeRow, Record, SnapshotRow

log = logging.getLogger("gexsrv.latest")

ROWS = {"snapshot": SnapshotRow, "majors": MajorsRow, "maxchange": MaxChangeRow}
TABLES = {"snapshot": "gex_snapshots", "majors": "gex_majors", "maxchange": "gex_maxchange"}
# combined field -> (snapshot column, majors column): the snapshot's value first, the majors' where it has none
MERGED = {
    "spot": ("spot_price", "spot"),
    "zero_gamma": ("zero_gamma", "zero_gamma"),
    "net_gex_vol": ("sum_gex_vol", "net_gex_vol"),
    "net_gex_oi": ("sum_gex_oi", "net_gex_oi"),
    "major_pos_vol": ("major_pos_vol", "mpos_vol"),
    "major_neg_vol": ("major_neg_vol", "mneg_vol"),
    "major_pos_oi": ("major_pos_oi", "mpos_oi"),
    "major_neg_oi": ("major_neg_oi", "mneg_oi"),
}
WINDOWS = {"current": "Now", "one": "1 min", "five": "5 min", "ten": "10 min", "fifteen": "15 min",
           "thirty": "30 min"}
# the snapshot's columns under gexbot's names (net_gex is an alias of sum_gex_vol there)
SNAPSHOT_FIELDS = {"spot_price": "spot", "zero_gamma": "zero_gamma", "min_dte": "min_dte",
                   "sec_min_dte": "sec_min_dte", "major_pos_vol": "major_pos_vol", "major_pos_oi": "major_pos_oi",
                   "major_neg_vol": "major_neg_vol", "major_neg_oi": "major_neg_oi", "sum_gex_vol": "sum_gex_vol",
                   "sum_gex_oi": "sum_gex_oi", "delta_risk_reversal": "delta_risk_reversal"}


def now_ms():
    return time.time() * 1000


def seconds(ms):
    """Epoch ms as gexbot's epoch seconds: an integer when whole."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def iso(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds")


def parsed_priors(text):
    """max_priors is kept as JSON text; a legacy row whose text does not parse shows none."""
    if text is None:
        return None
    try:
        return msgspec.json.decode(text)
    except msgspec.DecodeError:
        return None


# ---- each kind's payload, under gexbot's field names ----

def _head(record):
    return {"timestamp": seconds(record.timestamp_ms), "ticker": record.ticker, "endpoint": record.endpoint}


def snapshot_payload(record):
    row = record.row
    return {**_head(record), **{name: getattr(row, column) for column, name in SNAPSHOT_FIELDS.items()},
            "max_priors": parsed_priors(row.max_priors), "strikes": row.strikes}  # a StrikeRow encodes as a list


def majors_payload(record):
    return {**_head(record), **msgspec.structs.asdict(record.row)}


def maxchange_payload(record):
    row = record.row
    pairs = {window: [getattr(row, f"{window}_strike"), getattr(row, f"{window}_value")] for window in WINDOWS}
    return {**_head(record), **{window: None if pair[0] is None else pair for window, pair in pairs.items()}}


PAYLOADS = {"majors": majors_payload, "maxchange": maxchange_payload, "snapshot": snapshot_payload}


def max_change(row):
    """The maxchange windows under the original's labels."""
    return {label: {"strike": getattr(row, f"{window}_strike"), "net_gex": getattr(row, f"{window}_value")}
            for window, label in WINDOWS.items()}


def combined(snapshot, majors, maxchange):
    """The merged block: the snapshot's values first, the majors' where the snapshot has none."""
    merged = {}
    for name, (snapshot_column, majors_column) in MERGED.items():
        value = getattr(snapshot.row, snapshot_column) if snapshot else None
        merged[name] = getattr(majors.row, majors_column) if value is None and majors else value
    source = snapshot or majors or maxchange
    merged.update(
        timestamp=seconds(source.timestamp_ms),
        delta_risk_reversal=snapshot.row.delta_risk_reversal if snapshot else None,
        strikes=snapshot.row.strikes if snapshot else [],
        max_priors=(parsed_priors(snapshot.row.max_priors) if snapshot else None) or [],
        max_change=max_change(maxchange.row) if maxchange else {},
        source_endpoint=source.endpoint,
        has_snapshot=snapshot is not None,
    )
    return merged


class Entry:
    """One ticker: the newest record of each kind, the record applied last, and the encoded view (None: stale)."""

    __slots__ = ("held", "last", "encoded")

    def __init__(self):
        self.held = {}
        self.last = None
        self.encoded = None

    def view(self, ticker):
        held, last = self.held, self.last
        if "snapshot" in held:
            held["snapshot"] = with_strikes(held["snapshot"])
        return {
            "ticker": ticker,
            "updated_at": iso(max(record.received_ms for record in held.values())),
            **{kind: PAYLOADS[kind](held[kind]) if kind in held else None for kind in PAYLOADS},
            "metadata": {"last_endpoint": last.endpoint, "last_payload_kind": last.kind,
                         "received_at": iso(last.received_ms)},
            "combined": combined(held.get("snapshot"), held.get("majors"), held.get("maxchange")),
        }


class Feed:
    """One (ticker, endpoint, kind): its newest payload timestamp, when one last arrived, how many since start."""

    __slots__ = ("timestamp_ms", "received_ms", "records")

    def __init__(self):
        self.timestamp_ms = self.received_ms = self.records = 0

    def update(self, timestamp_ms, received_ms):
        self.timestamp_ms = max(self.timestamp_ms, timestamp_ms)
        self.received_ms = max(self.received_ms, received_ms)


class Feeds:
    """Every feed, and the newest snapshot of each (ticker, endpoint); used on the event loop only. Unlike the
    latest view, endpoints are kept apart: a chart of gex_one must not show a gex_zero snapshot."""

    def __init__(self, future_ms, max_feeds):
        self.future_ms = future_ms  # records dated further ahead of the clock are not shown
        self.feeds = Bounded(max_feeds)  # (ticker, endpoint, kind) -> Feed
        self.snapshots = Bounded(max_feeds)  # (ticker, endpoint) -> the newest snapshot Record

    def _feed(self, key, timestamp_ms, received_ms):
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = Feed()
        else:
            self.feeds.touch(key)
        feed.update(timestamp_ms, received_ms)
        return feed

    def observe(self, record):
        """Ingest's observer, as Latest.observe: a GEX record stored."""
        if record.kind not in ROWS or record.timestamp_ms > now_ms() + self.future_ms:
            return
        self._feed((record.ticker, record.endpoint, record.kind), record.timestamp_ms, record.received_ms).records += 1
        if record.kind == "snapshot":
            held = self.snapshots.get((record.ticker, record.endpoint))
            if held is None or record.timestamp_ms >= held.timestamp_ms:
                self.snapshots[(record.ticker, record.endpoint)] = record

    def snapshot(self, ticker, endpoint):
        """The newest snapshot of (ticker, endpoint) held, with its strike rows; None if none is."""
        held = self.snapshots.get((ticker, endpoint))
        if held is not None:
            held = with_strikes(held)
            self.snapshots.keep((ticker, endpoint), held)
        return held

    def loaded(self, rows):
        """(ticker, endpoint, kind, newest timestamp, last received) of each feed stored in the database; the ones
        received last are kept when there are more than max_feeds."""
        for ticker, endpoint, kind, timestamp_ms, received_ms in sorted(rows, key=lambda row: row[4]):
            self._feed((ticker, endpoint, kind), timestamp_ms, received_ms)

    def report(self, now_ms):
        """Every feed, by ticker, endpoint and kind, with its age (now minus its newest timestamp) in seconds."""
        return [{"ticker": ticker, "endpoint": endpoint, "kind": kind, "timestamp": feed.timestamp_ms,
                 "received_at": feed.received_ms, "age_s": round((now_ms - feed.timestamp_ms) / 1000, 3),
                 "received_age_s": round((now_ms - feed.received_ms) / 1000, 3), "records": feed.records}
                for (ticker, endpoint, kind), feed in sorted(self.feeds.items())]


class Latest:
    """The view of every ticker, and the feeds; used on the event loop only."""

    def __init__(self, future_s, max_feeds):
        self.future_ms = future_s * 1000  # records dated further ahead of the clock are stored, never held
        self.entries = Bounded(max_feeds)  # ticker -> Entry
        self.feeds = Feeds(self.future_ms, max_feeds)
        self.version = 0  # counts changes, so a file writer knows when the view changed
        self.encoded_all = None
        self.load_state = "pending"  # pending | loading | done | failed: <why>
        self.loading = None

    def observe(self, record):
        """Ingest's observer: hold a stored GEX record if it is the newest of its ticker and kind (and not dated
        too far ahead)."""
        if record.kind in ROWS and record.timestamp_ms <= now_ms() + self.future_ms:
            self.offer(record, live=True)

    def offer(self, record, live):
        """Hold record unless an older one would replace a newer one. A record loaded from the database (not
        live) replaces only an older one, and is the ticker's `last` only if it was received after that."""
        entry = self.entries.get(record.ticker)
        if entry is None:
            entry = self.entries[record.ticker] = Entry()
        held = entry.held.get(record.kind)
        if held is not None and (record.timestamp_ms < held.timestamp_ms
                                 or (not live and record.timestamp_ms == held.timestamp_ms)):
            return
        self.entries.touch(record.ticker)
        entry.held[record.kind] = record
        if live or entry.last is None or record.received_ms >= entry.last.received_ms:
            entry.last = record
        entry.encoded = self.encoded_all = None
        self.version += 1

    def encoded(self, ticker=None):
        """The JSON view of one ticker (None if unknown), or of every ticker as {TICKER: view}."""
        if ticker is not None:
            entry = self.entries.get(ticker)
            return None if entry is None else self._encoded(ticker, entry)
        if self.encoded_all is None:
            parts = [msgspec.json.encode(ticker) + b":" + self._encoded(ticker, self.entries[ticker])
                     for ticker in sorted(self.entries)]
            self.encoded_all = b"{" + b",".join(parts) + b"}"
        return self.encoded_all

    def _encoded(self, ticker, entry):
        if entry.encoded is None:
            entry.encoded = msgspec.json.encode(entry.view(ticker))
        return entry.encoded

    def report(self):
        held = (self.entries, self.feeds.feeds, self.feeds.snapshots)
        return {"tickers": len(self.entries), "load": self.load_state, "feeds": len(self.feeds.feeds),
                "snapshots": len(self.feeds.snapshots), "max_feeds": self.entries.limit,
                "evicted": sum(bounded.evicted for bounded in held)}

    def start_loading(self, store):
        """Load in the background (serving goes on meanwhile), unless loaded or loading already."""
        if self.load_state != "done" and (self.loading is None or self.loading.done()):
            self.loading = asyncio.create_task(self.load(store))

    async def close(self):
        if self.loading:
            await self.loading

    async def load(self, store):
        """Fill the view from the database, in a worker thread; a failure is logged and the view stays live-only."""
        self.load_state = "loading"
        try:
            records, feeds = await asyncio.to_thread(newest_records, store, round(now_ms() + self.future_ms))
        except Exception as exc:  # the view then holds what is stored from now on; serving goes on
            log.error("latest view not loaded from the database: %s", exc, exc_info=not isinstance(exc, LoadError))
            self.load_state = f"failed: {exc}"
            return
        for record in sorted(records, key=lambda record: record.received_ms):  # past max_feeds, the newest stay
            self.offer(record, live=False)
        self.feeds.loaded(feeds)
        self.load_state = "done"
        log.info("latest view loaded from the database: %d tickers", len(self.entries))


# ---- loading from DuckDB, on a worker thread ----

class LoadError(Exception):
    """The database cannot be read."""


# The newest row per ticker up to a time (of equal timestamps, the one received last). max() per ticker and the join
# on its result keep this a scan of three columns, not a sort of the table; legacy rows have NULL endpoint and
# received_at.
NEWEST = """
    SELECT ticker, endpoint, timestamp, coalesce(received_at, timestamp), {columns} FROM {table}
    JOIN (SELECT ticker, max(timestamp) AS timestamp FROM {table} WHERE timestamp <= $upto GROUP BY ticker)
    USING (ticker, timestamp)
    QUALIFY row_number() OVER (PARTITION BY ticker ORDER BY received_at DESC NULLS LAST, endpoint NULLS LAST) = 1"""
# One query per snapshot, with its key as constants: DuckDB then skips every row group whose timestamp range
# misses it (measured on 5M legacy strike rows: ~10 ms a ticker), where a join would scan the range between the
# oldest and the newest ticker's. rowid keeps the payload's order.
STRIKES = """
    SELECT strike, gamma, oi_gamma, priors FROM gex_strikes
    WHERE ticker = ? AND timestamp = ? AND endpoint IS NOT DISTINCT FROM ? ORDER BY rowid"""


# Each feed's newest timestamp up to a time, and its last arrival; legacy rows (NULL endpoint) belong to no feed.
FEEDS = """
    SELECT ticker, endpoint, max(timestamp), coalesce(max(received_at), max(timestamp)) FROM {table}
    WHERE endpoint IS NOT NULL AND timestamp <= $upto GROUP BY ticker, endpoint"""


def newest_records(store, upto_ms):
    """The newest snapshot (with its strike rows), majors and maxchange of every ticker, as Records; and
    (ticker, endpoint, kind, newest timestamp, last received) of every feed; rows dated after upto_ms left out."""
    cursor = store.cursor()
    if cursor is None:
        raise LoadError(f"database is {store.state}: {store.error}")
    upto = {"upto": upto_ms}
    try:
        records = [record for kind in ROWS for record in _newest(cursor, kind, upto)]
        feeds = [(ticker, endpoint, kind, *times) for kind in ROWS
                 for ticker, endpoint, *times in cursor.execute(FEEDS.format(table=TABLES[kind]), upto).fetchall()]
        return records, feeds
    finally:
        cursor.close()


def _newest(cursor, kind, upto):
    row_type = ROWS[kind]
    columns = [name for name in row_type.__struct_fields__ if name != "strikes"]
    sql = NEWEST.format(table=TABLES[kind], columns=", ".join(columns))
    records = []
    for ticker, endpoint, timestamp, received, *values in cursor.execute(sql, upto).fetchall():
        fields = dict(zip(columns, values))
        if kind == "snapshot":
            found = cursor.execute(STRIKES, [ticker, timestamp, endpoint]).fetchall()
            fields["strikes"] = [StrikeRow(*strike) for strike in found]
        records.append(Record(kind=kind, ticker=ticker, endpoint=endpoint, timestamp_ms=timestamp,
                              received_ms=received, row=row_type(**fields), problems=[]))
    return records
