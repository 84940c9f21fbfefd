"""A /uw body decoded into what happens next: Ignored (control traffic), a GEX Record (topic "gex", stored as
POST /gex would), or a UwRecord (the universal_webhooks row plus the normalised rows of its topic's table).

The raw row's id is derived from the sha256 of the canonical body (keys sorted, no whitespace), so a replay
gets the same id and the same content hash, which the unique index refuses: stored once.
"""

import hashlib
import uuid

import msgspec
from msgspec import Struct

from gexsrv.payloads import PayloadError, decode_gex
from gexsrv.uw import feeds, trades
from gexsrv.uw.frames import control_reason, decode, decode_frame
from gexsrv.uw.values import Problems

ANY = msgspec.json.Decoder()

# (topic test, table, rows(frame, webhook_id, problems)) in order; topics matching none are stored raw only.
TABLES = [
    (lambda topic: topic.startswith("option_trades"), "option_trades_events", trades.rows),
    (lambda topic: topic.startswith("market_agg"), "uw_market_agg", feeds.market_agg_rows),
    (lambda topic: topic.startswith(("flow-alerts", "flow_alerts")), "uw_flow_alerts", feeds.flow_alert_rows),
]


class Ignored(Struct):
    reason: str


class UwRecord(Struct):
    """One stored /uw frame: `raw` is its universal_webhooks row, `rows` its rows for `table` (if any)."""

    raw: dict
    table: str | None
    rows: list[dict]
    problems: list[dict]
    kind: str = "uw"

    @property
    def key(self):
        return self.raw["content_sha256"]


def identity(body):
    """(raw row id, content sha256) of a body; PayloadError if any part of it is not valid JSON."""
    canonical = msgspec.json.encode(decode(ANY, body, "$"), order="sorted")
    digest = hashlib.sha256(canonical).digest()
    return str(uuid.UUID(bytes=digest[:16])), digest.hex()


def _table_for(topic):
    return next(((table, rows) for matches, table, rows in TABLES if topic and matches(topic)), (None, None))


def _gex(frame, default_endpoint, received_ms):
    try:
        return decode_gex(frame.payload, default_endpoint, received_ms)
    except PayloadError as exc:
        raise PayloadError(frame.prefix + exc.field[1:], exc.reason) from None


def decode_uw(body, default_endpoint, received_ms, source_addr=None, user_agent=None):
    """Ignored, a GEX Record or a UwRecord for one /uw body; PayloadError if the frame itself is malformed."""
    frame = decode_frame(body)
    reason = control_reason(frame)
    if reason:
        return Ignored(reason)
    webhook_id, digest = identity(body)
    if frame.topic == "gex":
        return _gex(frame, default_endpoint, received_ms)
    table, to_rows = _table_for(frame.topic)
    problems = Problems()
    rows = to_rows(frame, webhook_id, problems) if to_rows else []
    for row in rows:
        row.update(webhook_id=webhook_id, received_at=received_ms)
    raw = {
        "id": webhook_id, "received_at": received_ms, "shape": frame.shape, "topic": frame.topic,
        "event": frame.event, "join_ref": frame.join_ref, "ref": frame.ref,
        "payload": bytes(frame.payload).decode(), "source_addr": source_addr, "user_agent": user_agent,
        "content_sha256": digest, "problems": [f"{p['field']}: {p['error']}" for p in problems],
    }
    return UwRecord(raw, table, rows, list(problems))
