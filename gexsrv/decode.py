"""The one decoding rule for GEX payloads, on every path: POST /gex, POST /uw with topic "gex", the poller and
history files (CONTRACT sections 1 and 6).

- An explicit `kind` wins. Otherwise a payload with strike rows is a snapshot; one whose endpoint names its kind
  (`classic/zero/majors`, `gex_maxchange`: gexsrv.endpoints) is of that kind; one with maxchange windows is
  maxchange; one with `mpos_*`/`mneg_*` is majors; anything else a snapshot.
- The envelope's fields fill what the payload lacks: ticker, endpoint (or feed), kind and received_at.
- Every alias the original mapped is mapped. A recognised value that ends in no column (an alias that disagrees
  with the value stored, a field the kind has no column for, a bad strike row) is listed in the record's
  `problems`, which the reply carries; nothing recognised is dropped silently.
- Values are checked here against the columns that will hold them, so one record cannot fail a batch.
- Lenient where the original was: numeric-string and ISO timestamps, `package/category` endpoints, nulls in
  priors, strike rows that are skipped (and reported) while the snapshot is kept. Strict where safety needs it:
  tickers name folders of the Parquet lake.
"""

import datetime as dt
import math
import re
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Raw

from gexsrv.endpoints import endpoint_parts, normalize_endpoint
from gexsrv.payloads import Envelope, GexPayload, PayloadError, StrikeRow
from gexsrv.records import MajorsRow, MaxChangeRow, Record, SnapshotRow
from gexsrv.strikecheck import uniform_rows

EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything older is a unit mistake, not GEX data
LATEST_MS = 4_102_444_800_000  # 2100-01-01
SECONDS_BELOW = 100_000_000_000  # epoch values under this are seconds (year 5138), above are milliseconds
NUMERIC = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

# Letters, digits and $^_.=:!+- ; no path separators or control characters, no `..`, no leading `.` or `-`.
TICKER = re.compile(r"^(?![.-])(?!.*\.\.)[A-Z0-9$^_.=:!+-]{1,32}$")
TICKER_RULE = ("must be 1 to 32 letters, digits or $^_.=:!+- characters, not starting with . or - and without "
               "`..` (a ticker names a folder of the Parquet lake)")

WINDOWS = ("current", "one", "five", "ten", "fifteen", "thirty")
MAJORS_MARKERS = ("mpos_vol", "mpos_oi", "mneg_vol", "mneg_oi")

# column -> the payload fields that may carry its value; the first one present wins.
SNAPSHOT_COLUMNS = {
    "spot_price": ("spot",),
    "zero_gamma": ("zero_gamma",),
    "net_gex": ("net_gex", "net_gex_vol", "sum_gex_vol"),
    "sum_gex_vol": ("sum_gex_vol", "net_gex_vol", "net_gex"),
    "sum_gex_oi": ("sum_gex_oi", "net_gex_oi"),
    "min_dte": ("min_dte",),
    "sec_min_dte": ("sec_min_dte",),
    "major_pos_vol": ("major_pos_vol", "mpos_vol"),
    "major_pos_oi": ("major_pos_oi", "mpos_oi"),
    "major_neg_vol": ("major_neg_vol", "mneg_vol"),
    "major_neg_oi": ("major_neg_oi", "mneg_oi"),
    "delta_risk_reversal": ("delta_risk_reversal",),
}
MAJORS_COLUMNS = {
    "spot": ("spot",),
    "zero_gamma": ("zero_gamma",),
    "mpos_vol": ("mpos_vol", "major_pos_vol"),
    "mpos_oi": ("mpos_oi", "major_pos_oi"),
    "mneg_vol": ("mneg_vol", "major_neg_vol"),
    "mneg_oi": ("mneg_oi", "major_neg_oi"),
    "net_gex_vol": ("net_gex_vol", "sum_gex_vol", "net_gex"),
    "net_gex_oi": ("net_gex_oi", "sum_gex_oi"),
}
# the payload's value fields (not its key or envelope fields), checked for what a kind leaves unstored
VALUE_FIELDS = [name for name in GexPayload.__struct_fields__
                if name not in ("timestamp", "ticker", "endpoint", "kind", "received_at")]

MAX_ENVELOPES = 3
TOO_DEEP = "nested too deeply to read (arrays or objects inside each other past the decoder's limit)"

ENVELOPE = msgspec.json.Decoder(Envelope)
STRIKES = msgspec.json.Decoder(list[StrikeRow])
STRIKE = msgspec.json.Decoder(StrikeRow)
RAW_LIST = msgspec.json.Decoder(list[Raw])


class Rules(NamedTuple):
    """What decoding needs beyond the body: the endpoint of payloads that name none, the zone of ISO times that
    carry none (None: the server's local zone, as the original read them), how far ahead of the server's clock a
    timestamp may be before it is reported (ms), and the most strike rows a snapshot may have (None: any).

    `replay` decodes a body that was accepted before (a journal or archive line, whose key the line holds):
    the checks that refuse a body are not made again, since a limit lowered or a rule tightened since its
    acceptance must not make ingest refuse what was acknowledged."""

    default_endpoint: str = "gex_zero"
    naive_zone: dt.tzinfo | None = dt.timezone.utc
    future_ms: int = 86_400_000
    max_strikes: int | None = None
    replay: bool = False

    @classmethod
    def from_settings(cls, settings):
        return cls(normalize_endpoint(settings.default_endpoint, None, "default_endpoint"),
                   zone(settings.naive_time_zone), round(settings.future_tolerance_s * 1000), settings.max_strikes)

    def replaying(self):
        return self._replace(max_strikes=None, replay=True)


def zone(name):
    """A tzinfo for `UTC` or an IANA name, None for `local`; ValueError names a zone that does not exist."""
    if name.lower() == "local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use local, UTC or an IANA name such as America/New_York)")


def _reason_and_path(exc, prefix):
    reason, sep, path = str(exc).rpartition(" - at `")
    if not sep:
        return str(exc), prefix
    if reason == "Number out of range":
        reason = "must be a finite number"
    return reason, prefix + path.rstrip("`")[1:]


def decode_with(decoder, raw, prefix):
    """decoder.decode(raw), or PayloadError naming the field under prefix."""
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        reason, path = _reason_and_path(exc, prefix)
        raise PayloadError(path, reason) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(prefix, f"invalid JSON: {exc}") from None
    except RecursionError:
        raise PayloadError(prefix, TOO_DEEP) from None


def timestamp_ms(value, field, rules=Rules()):
    """Epoch seconds or milliseconds (a number or numeric text), or ISO-8601 text, as epoch milliseconds."""
    if isinstance(value, str):
        text = value.strip()
        value = float(text) if NUMERIC.match(text) else _iso_ms(text, field, rules)
    ms = value * 1000 if abs(value) < SECONDS_BELOW else value
    # The bound is checked on the value stored, after rounding: 4102444799.9996 s rounds to 2100-01-01 itself.
    if not (rules.replay or (math.isfinite(ms) and EARLIEST_MS <= round(ms) < LATEST_MS)):
        raise PayloadError(field, "timestamp is outside 2000-01-01 .. 2100-01-01 (expected epoch seconds or ms)")
    return round(ms)


def _iso_ms(text, field, rules):
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(field, f"expected epoch seconds or milliseconds, or an ISO-8601 time, got {text[:40]!r}")
    if moment.tzinfo is None and rules.naive_zone is not None:
        moment = moment.replace(tzinfo=rules.naive_zone)
    try:
        return moment.timestamp() * 1000  # a naive time left here is read in the local zone
    except (ValueError, OverflowError):  # year 1 or 9999 in the local zone, out of range anyway
        return math.nan


def check_ticker(name, field="$.ticker"):
    """The ticker upper-cased, or PayloadError. ASCII is checked first: str.upper() folds some other letters into
    ASCII ones (`ß` into `SS`, `ſ` into `S`), which would store a ticker nobody sent."""
    ticker = name.strip()
    if not ticker.isascii() or not TICKER.match(ticker := ticker.upper()):
        raise PayloadError(field, f"ticker {name[:40]!r} {TICKER_RULE}")
    return ticker


def check_strike_count(count, field, rules):
    """A snapshot's strike rows are held in memory by the views (gexsrv.latest): their number is bounded."""
    if rules.max_strikes is not None and count > rules.max_strikes:
        raise PayloadError(field, f"{count} strike rows, more than the {rules.max_strikes} a snapshot may have "
                                  "(max_strikes)")


def _present(raw):
    """A Raw field that holds something other than null."""
    return bool(raw) and bytes(memoryview(raw)[:4]) != b"null"


def _strike_rows(raw, at, problems, skipped):
    """The strike rows as StrikeRow objects; a row that cannot be stored is skipped and reported, as the original
    skipped it."""
    if not _present(raw):
        return []
    try:
        return STRIKES.decode(raw)
    except msgspec.ValidationError:
        pass
    rows = []
    for i, item in enumerate(decode_with(RAW_LIST, raw, f"{at}.strikes")):
        try:
            rows.append(decode_with(STRIKE, item, f"{at}.strikes[{i}]"))
        except PayloadError as exc:
            problems.append({"field": exc.field, "error": f"strike row skipped: {exc.reason}"})
            skipped.append(i)
    return rows


def _strike_count(raw, at, problems, skipped):
    """How many strike rows will be stored, checked as _strike_rows checks them; the common case without making
    their objects (gexsrv.strikecheck)."""
    if not _present(raw):
        return 0
    count = uniform_rows(bytes(raw))
    return len(_strike_rows(raw, at, problems, skipped)) if count is None else count


def with_strikes(record):
    """A snapshot Record with its StrikeRow objects, read from the JSON text it keeps, less the rows its decoding
    skipped; any other record as it is. decode_gex makes no StrikeRow objects: the views make them for the few
    records they render."""
    if record.kind != "snapshot" or record.row.strikes or not record.strikes_json:
        return record
    rows = _strike_rows(record.strikes_json, "$", [], [])
    return msgspec.structs.replace(record, row=msgspec.structs.replace(record.row, strikes=rows))


def _columns(payload, columns):
    """{column: its first field that the payload holds}. Plain loops: on every request, and a generator per column
    cost three times as much."""
    found = {}
    for column, fields in columns.items():
        value = None
        for name in fields:
            value = getattr(payload, name)
            if value is not None:
                break
        found[column] = value
    return found


def _held_by(row, columns, value):
    """Whether one of the row's columns holds value."""
    for column in columns:
        if getattr(row, column) == value:
            return True
    return False


def _snapshot(payload, at, problems, skipped):
    max_priors = payload.max_priors
    return SnapshotRow(
        **_columns(payload, SNAPSHOT_COLUMNS),
        max_priors=None if max_priors is None else msgspec.json.encode(max_priors).decode(),
        strikes=[],
    )


def _majors(payload, at, problems, skipped):
    return MajorsRow(**_columns(payload, MAJORS_COLUMNS))


def _maxchange(payload, at, problems, skipped):
    values = {}
    for window in WINDOWS:
        pair = getattr(payload, window)
        values[f"{window}_strike"] = pair and pair.strike
        values[f"{window}_value"] = pair and pair.value
    return MaxChangeRow(**values)


# kind -> (its row from a payload, {column: payload fields} of its plain columns, other fields it stores)
KINDS = {
    "snapshot": (_snapshot, SNAPSHOT_COLUMNS, ("max_priors", "strikes")),
    "majors": (_majors, MAJORS_COLUMNS, ()),
    "maxchange": (_maxchange, {}, WINDOWS),
}


# kind -> {payload field: the columns that may hold its value}
HOLDERS = {kind: {name: [column for column, fields in columns.items() if name in fields] for name in VALUE_FIELDS}
           for kind, (_, columns, _) in KINDS.items()}


def _unstored(payload, kind, row, at):
    """Problems for the payload's values that the kind's row does not hold."""
    others, holders_of = KINDS[kind][2], HOLDERS[kind]
    problems = []
    for name in VALUE_FIELDS:
        value = getattr(payload, name)
        if value is None or name in others or (isinstance(value, Raw) and not _present(value)):
            continue
        holders = holders_of[name]
        if not holders:
            problems.append({"field": f"{at}.{name}", "error": f"not stored: a {kind} payload has no column for it"})
        elif not _held_by(row, holders, value):
            problems.append({"field": f"{at}.{name}", "error": f"not stored: differs from the {holders[0]} "
                                                               f"stored ({getattr(row, holders[0])})"})
    return problems


def _infer_kind(payload, named_kind):
    if _present(payload.strikes):
        return "snapshot"
    if named_kind:
        return named_kind
    if any(getattr(payload, window) is not None for window in WINDOWS):
        return "maxchange"
    if any(getattr(payload, marker) is not None for marker in MAJORS_MARKERS):
        return "majors"
    return "snapshot"


def _filled(name, payload, envelopes):
    """(value, path) of a key field: the payload's own, else the nearest envelope's that has it."""
    for node, at in [payload, *reversed(envelopes)]:
        value = getattr(node, name, None)
        if value is not None:
            return value, f"{at}.{name}"
    return None, f"{payload[1]}.{name}"


def _received(value, field, rules, received_ms, problems):
    if value is None:
        return received_ms
    try:
        return timestamp_ms(value, field, rules)
    except PayloadError as exc:
        problems.append({"field": field, "error": f"{exc.reason}; the server's receive time is stored instead"})
        return received_ms


def _ahead(ahead_ms, rules):
    return (f"{ahead_ms / 1000:.0f} s ahead of the server's clock (future_tolerance_s is {rules.future_ms / 1000:g}): "
            "stored, but never taken as the latest of its ticker or feed")


def _unwrap(body, prefix):
    """(payload, its path) and the envelopes around it, outermost first, each as (struct, path)."""
    node, at, envelopes = decode_with(ENVELOPE, body, prefix), prefix, []
    while node.data or node.payload:
        if len(envelopes) == MAX_ENVELOPES:
            raise PayloadError(at, f"more than {MAX_ENVELOPES} envelopes inside each other")
        envelopes.append((node, at))
        name = "data" if node.data else "payload"
        at = f"{at}.{name}"
        node = decode_with(ENVELOPE, getattr(node, name), at)
    return (node, at), envelopes


def check_utf8(data, field="$"):
    """msgspec does not look inside what it skips: text that is not UTF-8 there would reach the journal and
    DuckDB, which refuse it. Only request bodies are checked (bytes); what was read back from the journal is."""
    if isinstance(data, bytes) and not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError as exc:
            raise PayloadError(field, f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


def decode_gex(body, rules, received_ms, prefix="$", strike_rows=None):
    """One GEX body (a bare payload, or envelopes around one) as a Record, or PayloadError naming the field;
    received_ms is the server's clock when it arrived. strike_rows, from a journal line, is how many strike rows
    the request's decoding found, none skipped: taken as it is, not counted again."""
    check_utf8(body, prefix)
    (payload, at), envelopes = _unwrap(body, prefix)
    ticker, ticker_at = _filled("ticker", (payload, at), envelopes)
    if not ticker:
        raise PayloadError(ticker_at, "Object missing required field `ticker`")
    endpoint, endpoint_at = _filled("endpoint", (payload, at), envelopes)
    if endpoint is None:
        endpoint, endpoint_at = _filled("feed", (payload, at), envelopes)
    endpoint, named_kind = endpoint_parts(endpoint, endpoint_at) if endpoint else (None, None)
    if payload.timestamp is None:
        raise PayloadError(f"{at}.timestamp", "Object missing required field `timestamp`")
    kind = _filled("kind", (payload, at), envelopes)[0] or _infer_kind(payload, named_kind)
    problems, skipped = [], []
    received_at, received_at_path = _filled("received_at", (payload, at), envelopes)
    row = KINDS[kind][0](payload, at, problems, skipped)
    stored_rows = 0
    if kind == "snapshot":
        stored_rows = _strike_count(payload.strikes, at, problems, skipped) if strike_rows is None else strike_rows
        check_strike_count(stored_rows + len(skipped), f"{at}.strikes", rules)
    ts = timestamp_ms(payload.timestamp, f"{at}.timestamp", rules)
    if ts > received_ms + rules.future_ms:
        problems.append({"field": f"{at}.timestamp", "error": _ahead(ts - received_ms, rules)})
    return Record(
        kind=kind,
        ticker=ticker if rules.replay else check_ticker(ticker, ticker_at),
        endpoint=endpoint or rules.default_endpoint,
        timestamp_ms=ts,
        received_ms=_received(received_at, received_at_path, rules, received_ms, problems),
        row=row,
        problems=problems + _unstored(payload, kind, row, at),
        strikes_json=bytes(payload.strikes) if kind == "snapshot" and _present(payload.strikes) else b"",
        skipped=tuple(skipped),
        strike_rows=stored_rows,
    )
