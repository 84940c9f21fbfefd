"""A /uw body decoded into what happens next: Ignored (control traffic) or a UwRecord: the universal_webhooks row
plus the normalised rows of its topic's table, or for topic "gex" the GEX Record that POST /gex would store.

The raw row's id is derived from the sha256 of the canonical body (keys sorted, no whitespace), so a replay
gets the same id and the same content hash, which the unique index refuses: stored once.
"""

import hashlib
import uuid

import msgspec
from msgspec import Struct

from gexsrv.decode import check_utf8, decode_gex, decode_with
from gexsrv.uw import feeds, trades
from gexsrv.uw.frames import control_reason, decode_frame
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
    """One stored /uw frame: `raw` is its universal_webhooks row, `rows` its rows for `table` (if any), `gex`
    the GEX record of a topic "gex" frame."""

    raw: dict
    table: str | None
    rows: list[dict]
    problems: list[dict]
    gex: object = None
    kind: str = "uw"

    @property
    def key(self):
        return self.raw["content_sha256"]

    def held(self):
        """This record as ingest holds it (its rows are all it needs)."""
        return self


def identity(body):
    """(raw row id, content sha256) of a body; PayloadError if any part of it is not valid JSON."""
    canonical = msgspec.json.encode(decode_with(ANY, body, "$"), order="sorted")
    digest = hashlib.sha256(canonical).digest()
    return str(uuid.UUID(bytes=digest[:16])), digest.hex()


def _table_for(topic):
    return next(((table, rows) for matches, table, rows in TABLES if topic and matches(topic)), (None, None))


def _gex(body, frame, rules, received_ms, strike_rows):
    """The original's envelope is itself a GEX envelope (its ticker, endpoint, kind and received_at sit beside
    the payload); in an array frame, the payload is the envelope or the bare payload."""
    if frame.shape == "envelope":
        return decode_gex(body, rules, received_ms, strike_rows=strike_rows)
    return decode_gex(frame.payload, rules, received_ms, prefix=frame.prefix, strike_rows=strike_rows)


def decode_uw(body, rules, received_ms, source_addr=None, user_agent=None, strike_rows=None):
    """Ignored or a UwRecord for one /uw body; PayloadError if the frame or its GEX payload is malformed.
    strike_rows: as decode_gex takes it, for a topic gex frame."""
    check_utf8(body)
    frame = decode_frame(body)
    reason = control_reason(frame)
    if reason:
        return Ignored(reason)
    webhook_id, digest = identity(body)
    gex = _gex(body, frame, rules, received_ms, strike_rows) if frame.topic == "gex" else None
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
    return UwRecord(raw, table, rows, list(problems), gex)
