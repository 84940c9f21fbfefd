"""OCC option symbols: ROOT + YYMMDD + C|P + strike x 1000 in 8 digits, e.g. ARM260116C00118000.

The root is 1 to 6 characters, padded with spaces to 6 in the OSI form (`SPY   260116C00600000`) and unpadded
in most feeds. The last 15 characters always hold the date, the right and the strike, so they split it.
"""

import datetime as dt
import functools
import re
from typing import NamedTuple

ROOT = re.compile(r"^[A-Z][A-Z0-9.]{0,5}$")
TAIL = re.compile(r"^(\d{2})(\d{2})(\d{2})([CP])(\d{8})$")
RIGHTS = {"C": "call", "P": "put"}
# Weekly and PM-settled index series trade under their own root; the underlying is the index.
INDEX_ROOTS = {"SPXW": "SPX", "SPXPM": "SPX", "NDXP": "NDX", "RUTW": "RUT", "VIXW": "VIX", "XSPW": "XSP"}


class Occ(NamedTuple):
    root: str
    underlying: str
    expiry: dt.date
    option_type: str  # call | put
    strike: float


@functools.lru_cache(maxsize=8192)
def parse(symbol):
    """The parts of an OCC symbol; ValueError says what is wrong with it."""
    text = symbol.strip().upper().removeprefix("O:")
    tail = TAIL.match(text[-15:])
    root = text[:-15].rstrip()
    if tail is None or not ROOT.match(root):
        raise ValueError(f"not an OCC option symbol (ROOT + YYMMDD + C|P + 8-digit strike): {symbol!r}")
    yy, mm, dd, right, strike = tail.groups()
    try:
        expiry = dt.date(2000 + int(yy), int(mm), int(dd))
    except ValueError:
        raise ValueError(f"OCC symbol {symbol!r} has no valid expiry date") from None
    return Occ(root, INDEX_ROOTS.get(root, root), expiry, RIGHTS[right], int(strike) / 1000)
