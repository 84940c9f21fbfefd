"""The fast check of a snapshot's strike rows: how many rows the JSON text holds when every one of them is a row
decode.STRIKE would accept, found without making a Python object per number.

The front decodes strike rows only to check and count them (ingest parses them from the same text in DuckDB), and
msgspec makes ~2,400 floats of a 300-row snapshot, which cost more than the rest of the request's decoding. The
common case is text in one uniform shape, every row numbers alone; this check accepts only that, and whatever it
does not accept is decoded row by row as before (decode._strike_rows), so a row skipped and its problem are the
same either way. It is conservative: it never accepts text that the exact decoding would refuse a row of.

It relies on the text being valid JSON, which the payload's decoding checked (msgspec parses what it keeps as Raw).
"""

import re

NUMBER_CHARS = b"0123456789.-+eE"
DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
# A run of more digits than this may be a number over the 1e300 bound of payloads.Finite; 300 never is.
MAX_DIGIT_RUN = 300
TOO_MANY_DIGITS = b"0" * (MAX_DIGIT_RUN + 1)
POSITIVE_EXPONENT = re.compile(rb"[eE]\+?[0-9]")
# The first row's shape, numbers deleted: [strike, gamma], with oi_gamma, or with oi_gamma and a list of priors.
FIRST_ROW = re.compile(rb"\[(\[,(?:,(?:,\[,*\])?)?\])")


def uniform_rows(text):
    """The number of rows of `text` (a JSON array, bytes) when every row has the same shape and holds numbers
    alone, each within the Finite bounds; None when it must be decoded row by row."""
    shape = text.translate(None, NUMBER_CHARS)
    first = FIRST_ROW.match(shape)
    if first is None:
        return None
    row = first.group(1)
    count, rest = divmod(len(shape) - 1, len(row) + 1)
    if rest or shape != b"[" + (row + b",") * (count - 1) + row + b"]":
        return None
    if text.translate(DIGITS_AS_ZERO).find(TOO_MANY_DIGITS) >= 0:
        return None
    if (b"e" in text or b"E" in text) and POSITIVE_EXPONENT.search(text):
        return None
    return count
