"""The three /uw body shapes (CONTRACT section 3) reduced to one Frame, and the control traffic among them.

1. Phoenix browser-socket frame: [join_ref, ref, topic, event, payload]
2. official websocket frame:     [channel, payload]
3. the original's envelope:      {"topic", "eventType"|"event_type"|"event", "payload"}; without "payload"
   the whole object is the payload.
"""

import msgspec
from msgspec import Raw, Struct

from gexsrv.decode import decode_with
from gexsrv.payloads import NOTHING, PayloadError


class Phoenix(Struct, array_like=True):
    join_ref: str | int | None
    ref: str | int | None
    topic: str
    event: str
    payload: Raw


class Channel(Struct, array_like=True):
    channel: str
    payload: Raw


class Envelope(Struct):
    topic: str | None = None
    eventType: str | None = None
    event_type: str | None = None
    event: str | None = None
    payload: Raw = NOTHING


class JoinReply(Struct):
    """Enough of a payload to tell a join acknowledgement ({"status", "response"}) from data."""

    status: Raw = NOTHING
    response: Raw = NOTHING
    data: Raw = NOTHING
    id: Raw = NOTHING


class Wrapper(Struct):
    data: Raw = NOTHING


class Frame(Struct):
    shape: str  # phoenix | channel | envelope
    topic: str | None
    event: str | None
    payload: Raw
    prefix: str  # the JSON path of the payload in the body, for error messages
    join_ref: str | None = None
    ref: str | None = None


OUTER = msgspec.json.Decoder(list[Raw] | Envelope)
PHOENIX = msgspec.json.Decoder(Phoenix)
CHANNEL = msgspec.json.Decoder(Channel)
JOIN_REPLY = msgspec.json.Decoder(JoinReply)
WRAPPER = msgspec.json.Decoder(Wrapper)
LIST = msgspec.json.Decoder(list[Raw])


def _text(value):
    return None if value is None else str(value)


def decode_frame(body):
    """The Frame of a /uw body; PayloadError for invalid JSON or an array that is neither frame shape."""
    outer = decode_with(OUTER, body, "$")
    if isinstance(outer, Envelope):
        event = outer.eventType or outer.event_type or outer.event
        if outer.payload:
            return Frame("envelope", outer.topic, event, outer.payload, "$.payload")
        return Frame("envelope", outer.topic, event, Raw(body), "$")
    if len(outer) == 5:
        frame = decode_with(PHOENIX, body, "$")
        return Frame("phoenix", frame.topic, frame.event, frame.payload, "$[4]",
                     _text(frame.join_ref), _text(frame.ref))
    if len(outer) == 2:
        frame = decode_with(CHANNEL, body, "$")
        return Frame("channel", frame.channel, None, frame.payload, "$[1]")
    raise PayloadError("$", f"expected a Phoenix frame [join_ref, ref, topic, event, payload] or a "
                            f"[channel, payload] frame, got an array of {len(outer)} items")


def _first_char(raw):
    return bytes(memoryview(raw)[:64]).lstrip()[:1]


def is_object(raw):
    return _first_char(raw) == b"{"


def control_reason(frame):
    """Why the frame is control traffic (phx_* events, heartbeats, join replies), or None if it is data."""
    event = (frame.event or "").lower()
    if event.startswith("phx_") or event == "heartbeat":
        return f"control frame: {event}"
    if frame.topic == "phoenix":
        return "control frame: phoenix topic"
    if frame.shape == "channel" and is_object(frame.payload):
        reply = decode_with(JOIN_REPLY, frame.payload, frame.prefix)
        if reply.status and reply.response and not (reply.data or reply.id):
            return "control frame: join reply"
    return None


def items(payload, prefix):
    """The records a payload carries, with their paths: payload.data or the payload itself, each an object or
    an array of them."""
    raw, path = payload, prefix
    if is_object(payload):
        wrapper = decode_with(WRAPPER, payload, prefix)
        if not wrapper.data:
            return [(payload, prefix)]
        raw, path = wrapper.data, f"{prefix}.data"
    if _first_char(raw) == b"[":
        return [(item, f"{path}[{i}]") for i, item in enumerate(decode_with(LIST, raw, path))]
    return [(raw, path)]
