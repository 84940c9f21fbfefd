"""One journal line's format, written and read here alone (gexsrv.journal keeps the lines, gexsrv.ingest takes
them in):

    {"seq":41,"kind":"snapshot",...,"rows":300,"dup":false,"arrived":1777492800512,"body":{...},"crc":2753346152}

The header's fields come first, `seq` the very first (seq_of reads it without decoding the line); `body` is the
request body byte for byte but for its line breaks, which become spaces; `crc` is the CRC-32 of the line's bytes
before `,"crc":`, so a line cut short by a crash is recognised. A GEX line's header is GexHeader, a /uw frame's
raw line UwHeader; a /uw frame with topic gex has both. Headers are Structs, encoded without a dict per line.

Ingest reads a line back by its header alone and cuts the body out unparsed: the body's own decoding parses it
once. It takes the strike rows the request's decoding counted (`rows`) rather than checking them again; a line
without them (an older gexsrv wrote it) or with null (rows were skipped) has them checked again.
"""

import zlib

import msgspec
from msgspec import Raw, Struct

from gexsrv.decode import decode_gex
from gexsrv.uw.payloads import decode_uw

CRC_MARK = b',"crc":'
BODY_MARK = b',"body":'
JSON_SPACE = b" \t"  # JSON's whitespace as a line holds it: its line breaks became spaces
ENCODER = msgspec.json.Encoder()
LINE_BREAKS = bytes.maketrans(b"\r\n", b"  ")


class GexHeader(Struct, kw_only=True, gc=False):
    """A GEX record's key as decided, how it arrived, and its received time as stored (the client's received_at
    when it sent one); `dup` and `arrived` (the server's clock) are set by Intake.accept. The journal writes the
    seq before them."""

    kind: str
    path: str  # /gex, /uw or poller
    source: str
    ticker: str
    endpoint: str
    ts: int
    received: int
    rows: int | None = None  # the strike rows stored; None when some were skipped
    dup: bool | None = None
    arrived: int = 0


class UwHeader(Struct, kw_only=True, gc=False):
    """A /uw frame's raw line: who sent it and when, its topic and id."""

    kind: str = "uw"
    path: str = "/uw"
    received: int
    addr: str | None
    ua: str | None
    topic: str
    id: str
    dup: bool | None = None
    arrived: int = 0


def gex_header(record, path):
    # With rows skipped, ingest needs their indexes and problems too: it finds them again, rather than the line
    # carrying them for a case this rare.
    return GexHeader(kind=record.kind, path=path, source=record.source, ticker=record.ticker,
                     endpoint=record.endpoint, ts=record.timestamp_ms, received=record.received_ms,
                     rows=None if record.skipped else record.strike_rows)


def uw_header(record):
    raw = record.raw
    return UwHeader(received=raw["received_at"], addr=raw["source_addr"], ua=raw["user_agent"], topic=raw["topic"],
                    id=raw["id"])


def encode_line(header, body, seq=None):
    """One journal line, in parts to write with one writev: the seq and the header's fields (a header Struct or a
    dict; without `seq`, a dict holds it first), the body as JSON, the CRC."""
    fields = ENCODER.encode(header)
    head = (fields[:-1] if seq is None else b'{"seq":%d,' % seq + fields[1:-1]) + b',"body":'
    if b"\n" in body or b"\r" in body:
        body = body.translate(LINE_BREAKS)
    return head, body, CRC_MARK + str(zlib.crc32(body, zlib.crc32(head))).encode() + b"}\n"


def check_line(line):
    """The line without its CRC when the CRC matches, else None."""
    cut = line.rfind(CRC_MARK)
    if cut < 0 or not line.endswith(b"}\n"):
        return None
    try:
        crc = int(line[cut + len(CRC_MARK):-2])
    except ValueError:
        return None
    return line[:cut] if zlib.crc32(line[:cut]) == crc else None


def seq_of(line):
    """The seq of a journal line, which encode_line writes first: `{"seq":N,`."""
    return int(line[7:line.index(b",", 7)])


class Head(Struct, gc=False):
    """What ingest reads back of a journal line's header: the fields of both headers it needs. `rows` is None when
    the strike rows are checked again: some were skipped, or an older gexsrv wrote the line."""

    seq: int
    kind: str
    path: str
    received: int
    source: str = "live"
    ticker: str | None = None
    endpoint: str | None = None
    ts: int | None = None
    rows: int | None = None
    addr: str | None = None
    ua: str | None = None


HEAD = msgspec.json.Decoder(Head)


def cut_line(line):
    """(Head, body as Raw) of a journal line, the body without the whitespace around it, as a Raw field would hold
    it. The first `,"body":` is the body's key: the header before it is flat, and inside a JSON string `,"` can
    only be its last comma and closing quote, which `body":` cannot follow."""
    checked = check_line(line)
    cut = checked.index(BODY_MARK)
    return HEAD.decode(checked[:cut] + b"}"), Raw(checked[cut + len(BODY_MARK):].strip(JSON_SPACE))


def decode_line(line, rules):
    """The record a journal line holds, decoded again by the one rule, its key as the request decided it. A /uw
    frame with topic gex has two lines: its raw frame (kind uw) and its GEX record."""
    head, body = cut_line(line)
    if head.path == "/uw":
        frame = decode_uw(body, rules, head.received, head.addr, head.ua, head.rows)
        if head.kind == "uw":
            return frame
        record = frame.gex
    else:
        record = decode_gex(body, rules, head.received, strike_rows=head.rows)
    return msgspec.structs.replace(record, kind=head.kind, ticker=head.ticker, endpoint=head.endpoint,
                                   timestamp_ms=head.ts, source=head.source).held()
