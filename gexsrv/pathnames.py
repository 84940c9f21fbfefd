"""Tickers and endpoints as file names, reversibly: the lake's data/parquet/gexbot/<ticker>/<endpoint>/ folders
and the staged data/source/gexbot/<ticker>_<endpoint>_history.json files (docs/parquet.md).

`encode` keeps A-Z a-z 0-9 _ ^ - and any `.` but a leading one, and writes every other byte of the UTF-8 name as
%XX (`%` itself included), so two different names never get one file name, and no name becomes `.`, `..`, a
hidden file or a path with a separator, whatever the decoders let through. Every name in use keeps its plain
spelling (SPX, NQ_NDX, ^VIX, BRK.B, gex_zero), so lakes and staging folders written before stay valid.
"""

import re
import string
import urllib.parse

SAFE = frozenset(string.ascii_letters + string.digits + "_^-.")
JOIN = "~"  # joins a staged file's ticker and endpoint when `_` would be ambiguous; encode never writes it
STAGED = re.compile(r"^(?P<pair>.+)_history(?:\.[0-9a-f]{16})?\.json$")
# the usual staged pair: the ticker ends at the first `_` before a lower-case letter (tickers are upper case,
# endpoints such as gex_zero start lower case)
PLAIN_PAIR = re.compile(r"^(.+?)_([a-z].*)$")


def encode(name):
    if not name:
        raise ValueError("an empty ticker or endpoint name has no file name")
    text = "".join(chr(b) if chr(b) in SAFE else f"%{b:02X}" for b in name.encode())
    return "%2E" + text[1:] if text.startswith(".") else text


def decode(file_name):
    """The name `encode` turned into file_name (any other file name reads as itself, %XX decoded)."""
    return urllib.parse.unquote(file_name)


def staged_stem(ticker, endpoint):
    """`<ticker>_<endpoint>_history`, or `<ticker>~<endpoint>_history` when the `_` would not split back into
    exactly these two (ticker SPX_1 with gex_zero, and SPX with 1_gex_zero, would both read SPX_1_gex_zero)."""
    t, e = encode(ticker), encode(endpoint)
    plain = f"{t}_{e}"
    return (plain if _split(plain) == (t, e) else f"{t}{JOIN}{e}") + "_history"


def staged_pair(file_name):
    """(ticker, endpoint) of a staged history file's name (with or without its hash); None for other names."""
    found = STAGED.match(file_name)
    parts = _split(found["pair"]) if found else None
    return (decode(parts[0]), decode(parts[1])) if parts else None


def _split(pair):
    if JOIN in pair:
        return tuple(pair.split(JOIN, 1))
    found = PLAIN_PAIR.match(pair)
    return found.groups() if found else None
