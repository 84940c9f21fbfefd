"""Field values as Unusual Whales sends them (decimals as strings, times as ISO text or epoch numbers) turned
into typed values. "" and null become None; anything unreadable becomes None plus a problem naming its path."""

import datetime as dt
import math
import re

DECIMAL = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
INTEGER = re.compile(r"^[-+]?\d{1,19}$")  # longer digit strings go by float: int() refuses past 4,300 digits
BIGINT = 2**63
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2100, 1, 1, tzinfo=dt.timezone.utc)
UNIX_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# Epoch numbers below each bound are in that unit: seconds until year 5138, ms, us, then ns.
EPOCH_UNITS = [(1e11, 1e6), (1e14, 1e3), (1e17, 1.0), (math.inf, 1e-3)]  # (below, microseconds per unit)
EARLIEST_US, LATEST_US = ((moment - UNIX_EPOCH) // dt.timedelta(microseconds=1) for moment in (EARLIEST, LATEST))
OPTION_TYPES = {"c": "call", "call": "call", "calls": "call", "p": "put", "put": "put", "puts": "put"}


class Problems(list):
    """What could not be normalised: {"field": JSON path, "error": what is wrong}."""

    def add(self, field, error):
        self.append({"field": field, "error": error})
        return None


def number(value, field, problems):
    """A finite float from a number or a decimal string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if not DECIMAL.match(value.strip()):
            return problems.add(field, f"expected a decimal number, got {value[:40]!r}")
        value = float(value)
    if not math.isfinite(value):
        return problems.add(field, "must be a finite number")
    return float(value)


def count(value, field, problems):
    """A whole number (fits BIGINT) from an int, an integral float or a digit string."""
    if isinstance(value, str) and INTEGER.match(value.strip()):
        value = int(value)
    elif not isinstance(value, int):
        value = number(value, field, problems)
        if value is None:
            return None
        if not value.is_integer():
            return problems.add(field, f"expected a whole number, got {value}")
        value = int(value)
    if not -BIGINT <= value < BIGINT:
        return problems.add(field, "whole number out of range")
    return value


def timestamp_us(value, field, problems):
    """Epoch microseconds from ISO-8601 text (naive means UTC) or an epoch number in s, ms, us or ns."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and DECIMAL.match(value.strip()):
        value = float(value)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            return problems.add(field, f"expected an ISO-8601 datetime or epoch number, got {value[:40]!r}")
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        micros = (moment - UNIX_EPOCH) // dt.timedelta(microseconds=1)
    else:  # an infinite value (from text such as "1e400", or an integer past any double) is in no unit: nan
        value = value if isinstance(value, float) or abs(value) < 2**1023 else math.inf
        micros = value * next((per for below, per in EPOCH_UNITS if abs(value) < below), math.nan)
    # compared as numbers: a datetime that far from 1970 would not exist (years 1 .. 9999), and nan is in no range
    if not EARLIEST_US <= micros < LATEST_US:
        return problems.add(field, "time is outside 2000-01-01 .. 2100-01-01")
    return round(micros)


def date(value, field, problems):
    """A date from YYYY-MM-DD or YYYYMMDD text (a datetime's date part is taken)."""
    if value is None or value == "":
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10] if "T" in value else value.strip())
    except ValueError:
        return problems.add(field, f"expected a date YYYY-MM-DD, got {value[:40]!r}")


def option_type(value, field, problems):
    if value is None or value == "":
        return None
    found = OPTION_TYPES.get(value.strip().lower())
    return found if found else problems.add(field, f"expected call or put, got {value[:40]!r}")


def texts(values):
    return None if values is None else [str(v) for v in values]


def first(*values):
    """The first value that is set (neither None nor ""), else None."""
    return next((value for value in values if value not in (None, "")), None)


def first_of(*candidates):
    """(value, field) of the first (value, field) candidate whose value is set, else (None, None)."""
    return next(((value, field) for value, field in candidates if value not in (None, "")), (None, None))
