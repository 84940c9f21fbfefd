"""msgspec Structs for every /gex payload shape, and the decoding of a request body into one Record.

Accepted on /gex (CONTRACT section 1): a bare snapshot, a bare majors or maxchange object, or the original's
envelope {"ticker", "endpoint"|"feed", "kind", "received_at", "data"|"payload": {...}} around any of them.
"""

import datetime as dt
from typing import Annotated, Literal, Union

import msgspec
from msgspec import Meta, Raw, Struct

# JSON numbers like 1e999 decode to inf; the bounds turn that into a validation error.
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]
Ticker = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.^/-]{1,32}$")]
Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,40}$")]
Timestamp = Union[Finite, dt.datetime]

ENDPOINT_ALIASES = {"zero": "gex_zero", "one": "gex_one", "full": "gex_full"}
MAXCHANGE_ENDPOINTS = {"gex_maxchange", "maxchange"}
EARLIEST_MS = 946_684_800_000  # 2000-01-01: anything older is a unit mistake, not GEX data
LATEST_MS = 4_102_444_800_000  # 2100-01-01
SECONDS_BELOW = 100_000_000_000  # epoch values under this are seconds (year 5138), above are milliseconds


# gc=False: a payload holds no reference cycles, and hundreds of thousands of tracked objects in flight would
# make every garbage collection walk them all. Tuples of floats are untracked by the collector too, lists are not.
class StrikeRow(Struct, array_like=True, gc=False):
    """[strike, gex_by_volume, gex_by_oi, [priors 1m, 5m, 10m, 15m, 30m]]; the last two may be missing."""

    strike: Finite
    gamma: Finite
    oi_gamma: Finite | None = None
    priors: tuple[Finite, ...] | None = None


class Snapshot(Struct, gc=False):
    timestamp: Timestamp
    ticker: Ticker | None = None
    endpoint: Name | None = None
    spot: Finite | None = None
    zero_gamma: Finite | None = None
    net_gex: Finite | None = None
    sum_gex_vol: Finite | None = None
    sum_gex_oi: Finite | None = None
    min_dte: int | None = None
    sec_min_dte: int | None = None
    major_pos_vol: Finite | None = None
    major_pos_oi: Finite | None = None
    major_neg_vol: Finite | None = None
    major_neg_oi: Finite | None = None
    delta_risk_reversal: Finite | None = None
    max_priors: list[list[Finite]] | None = None
    strikes: list[StrikeRow] = []


class Majors(Struct, gc=False):
    timestamp: Timestamp
    ticker: Ticker | None = None
    endpoint: Name | None = None
    spot: Finite | None = None
    zero_gamma: Finite | None = None
    mpos_vol: Finite | None = None
    mpos_oi: Finite | None = None
    mneg_vol: Finite | None = None
    mneg_oi: Finite | None = None
    net_gex_vol: Finite | None = None
    net_gex_oi: Finite | None = None


class Pair(Struct, array_like=True, gc=False):
    strike: Finite
    value: Finite


class MaxChange(Struct, gc=False):
    timestamp: Timestamp
    ticker: Ticker | None = None
    endpoint: Name | None = None
    current: Pair | None = None
    one: Pair | None = None
    five: Pair | None = None
    ten: Pair | None = None
    fifteen: Pair | None = None
    thirty: Pair | None = None


NOTHING = Raw()  # an absent field; msgspec allows no `Raw | None`


class Envelope(Struct, gc=False):
    """What routing needs from any body: the envelope's fields, or markers of a bare payload's kind."""

    ticker: Ticker | None = None
    endpoint: Name | None = None
    feed: Name | None = None
    kind: Literal["snapshot", "majors", "maxchange"] | None = None
    data: Raw = NOTHING
    payload: Raw = NOTHING
    mpos_vol: Raw = NOTHING
    net_gex_vol: Raw = NOTHING
    current: Raw = NOTHING


class Record(Struct, gc=False):
    """One decoded payload, keyed and ready for the buffer: kind is snapshot, majors or maxchange."""

    kind: str
    ticker: str
    endpoint: str
    timestamp_ms: int
    received_ms: int
    body: Snapshot | Majors | MaxChange

    @property
    def key(self):
        return (self.kind, self.ticker, self.endpoint, self.timestamp_ms)


class PayloadError(ValueError):
    """A rejected body: `field` is the JSON path of the problem, `reason` says what is wrong with it."""

    def __init__(self, field, reason):
        super().__init__(f"{reason} - at `{field}`")
        self.field = field
        self.reason = reason


ENVELOPE = msgspec.json.Decoder(Envelope)
DECODERS = {
    "snapshot": msgspec.json.Decoder(Snapshot),
    "majors": msgspec.json.Decoder(Majors),
    "maxchange": msgspec.json.Decoder(MaxChange),
}


def _reason_and_path(exc, prefix):
    text = str(exc)
    reason, sep, path = text.rpartition(" - at `")
    if not sep:
        return text, prefix
    if reason == "Number out of range":
        reason = "must be a finite number"
    return reason, prefix + path.rstrip("`")[1:]


def _decode(decoder, raw, prefix):
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        reason, path = _reason_and_path(exc, prefix)
        raise PayloadError(path, reason) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise PayloadError(prefix, f"invalid JSON: {exc}") from None


def timestamp_ms(value, field="$.timestamp"):
    """Epoch seconds, epoch milliseconds or an ISO-8601 datetime (naive means UTC) as epoch milliseconds."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        ms = round(value.timestamp() * 1000)
    else:
        ms = round(value * 1000) if abs(value) < SECONDS_BELOW else round(value)
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise PayloadError(field, "timestamp is outside 2000-01-01 .. 2100-01-01 (expected epoch seconds or ms)")
    return ms


def normalize_endpoint(name, default):
    name = (name or default).lower()
    return ENDPOINT_ALIASES.get(name, name)


def _kind(envelope, inner_probe):
    if envelope.kind:
        return envelope.kind
    if (envelope.endpoint or envelope.feed or "").lower() in MAXCHANGE_ENDPOINTS:
        return "maxchange"
    if inner_probe.mpos_vol or inner_probe.net_gex_vol:
        return "majors"
    if inner_probe.current:
        return "maxchange"
    return "snapshot"


def decode_gex(body, default_endpoint, received_ms):
    """Decode one /gex body into a Record, or raise PayloadError naming the field."""
    envelope = _decode(ENVELOPE, body, "$")
    inner, prefix, probe = body, "$", envelope
    if envelope.data or envelope.payload:
        field = "data" if envelope.data else "payload"
        inner, prefix = getattr(envelope, field), f"$.{field}"
        probe = _decode(ENVELOPE, inner, prefix)
    kind = _kind(envelope, probe)
    payload = _decode(DECODERS[kind], inner, prefix)
    ticker = payload.ticker or envelope.ticker
    if not ticker:
        raise PayloadError(f"{prefix}.ticker", "Object missing required field `ticker`")
    endpoint = payload.endpoint or envelope.endpoint or envelope.feed
    if (endpoint or "").lower() in MAXCHANGE_ENDPOINTS:
        endpoint = None
    return Record(
        kind=kind,
        ticker=ticker.upper(),
        endpoint=normalize_endpoint(endpoint, default_endpoint),
        timestamp_ms=timestamp_ms(payload.timestamp, f"{prefix}.timestamp"),
        received_ms=received_ms,
        body=payload,
    )


def net_gex_by_volume(snapshot):
    """The original took `net_gex` or `sum_gex_vol` for the same number."""
    return snapshot.sum_gex_vol if snapshot.sum_gex_vol is not None else snapshot.net_gex
