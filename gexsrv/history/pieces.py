"""A history file's snapshots as raw JSON, a piece of the file at a time.

msgspec holds the GIL for the whole of one decode: splitting a full-day array (200 MB) in one call stalled every
other thread of the server (its event loop included) for about 0.6 s. An array is therefore cut where one object
ends and the next begins (`}` `,` `{`, a guess found by a regular expression), each piece decoded on its own as
`[piece]`. A guess inside a string leaves its piece in the middle of that string, which no decoder accepts, so a
piece that decodes is whole; at the first piece that does not, the file is decoded in one call after all, which
reads it as the whole-file decode always did (and raises its error for a file that is not JSON).

File shapes: a JSON array of snapshots, {"data": [...]}, one snapshot object, or JSON Lines (one per line). Only
the array, gexbot's own shape, and JSON Lines come in pieces.
"""

import re

import msgspec
from msgspec import Raw

PIECE_BYTES = 1 << 20  # about 120 snapshots of 120 strikes: a few ms of decoding
BOUNDARY = re.compile(rb"\}[ \t\n\r]*,[ \t\n\r]*\{")  # JSON's own white space only
PIECE_LINES = 500


class NotJson(Exception):
    """The bytes are not a history file's JSON; the message says why."""


class Wrapped(msgspec.Struct):
    data: list[Raw] | None = None


ARRAY = msgspec.json.Decoder(list[Raw])
WRAPPED = msgspec.json.Decoder(Wrapped)
ANY = msgspec.json.Decoder()


def pieces(data):
    """The snapshots of a file's bytes, each as raw JSON, in lists of some hundreds: NotJson when they cannot be
    read. Snapshots are never split: each list holds whole ones, in the file's order."""
    head = data[:64].lstrip()
    if head.startswith(b"{") and _json_lines(data, min(len(data), 64) - len(head)):
        yield from _lines(data)
    elif head.startswith(b"["):
        yield from _array(data)
    elif head.startswith(b"{"):
        wrapped = _decode(WRAPPED, data)
        yield wrapped.data if wrapped.data is not None else [Raw(data)]
    else:
        raise NotJson("the file is neither JSON (an array or an object) nor JSON Lines")


def _decode(decoder, data):
    try:
        return decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise NotJson(f"invalid JSON: {exc}") from None


def _json_lines(data, start):
    """Whether data, from start, is JSON Lines: a first line that is a whole JSON value, and another object after
    it. (The first line of a pretty-printed object is not whole.)"""
    end = data.find(b"\n", start)
    if end == -1 or data.find(b"{", end) == -1:
        return False
    try:
        ANY.decode(data[start:end])
    except msgspec.DecodeError:
        return False
    return True


def _lines(data):
    lines = [Raw(line) for line in data.splitlines() if line.strip()]
    for start in range(0, len(lines), PIECE_LINES):
        yield lines[start:start + PIECE_LINES]


def _array(data):
    """An array's elements, a piece at a time; the whole-file decode, past what was yielded, when a piece fails."""
    start, end = data.index(b"[") + 1, len(data.rstrip()) - 1
    if data[end:end + 1] != b"]":  # no array's end: the whole-file decode says what is wrong
        yield _decode(ARRAY, data)
        return
    view, done = memoryview(data), 0  # a piece is copied once, into its brackets
    while start < end:
        cut = BOUNDARY.search(data, start + PIECE_BYTES, end)
        stop = cut.start() + 1 if cut else end
        try:
            items = ARRAY.decode(b"[" + view[start:stop] + b"]")
        except msgspec.DecodeError:
            yield _decode(ARRAY, data)[done:]
            return
        done += len(items)
        yield items
        start = cut.end() - 1 if cut else end
