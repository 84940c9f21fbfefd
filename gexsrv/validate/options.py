"""What a validation run looks at and its thresholds: one Struct, shared by the CLI flags and /integrity's query."""

import datetime as dt
import re
from typing import Annotated

import msgspec

from gexsrv.endpoints import normalize_endpoint
from gexsrv.payloads import PayloadError

NAME = re.compile(r"^[A-Za-z0-9_.^/-]{1,40}$")  # tickers and endpoints, inlined into SQL only after this check
# Thresholds are scaled to ms and inlined into SQL: bounded, each stays a finite number there (1e9 s: 31 years).
MOST = 1e9
INT64 = 2**63
EARLIEST_MS = -62_135_596_800_000  # 0001-01-01, the first time Python's datetime holds
LATEST_MS = 253_402_300_800_000  # 10000-01-01


def _opt(help_text, **limits):
    return msgspec.Meta(description=help_text, **limits)


class Options(msgspec.Struct, kw_only=True, frozen=True, forbid_unknown_fields=True):
    ticker: Annotated[list[str], _opt("only these tickers (comma-separated)")] = []
    endpoint: Annotated[list[str], _opt("only these endpoints, named as POST /gex takes them (state/zero is "
                                        "state_gex_zero); 'legacy' means rows with no endpoint")] = []
    since: Annotated[str, _opt("only data at or after this UTC date/time (YYYY-MM-DD, ISO-8601 or epoch ms)")] = ""
    until: Annotated[str, _opt("only data before this UTC time; a bare date includes that whole day")] = ""
    sample: Annotated[int, _opt("snapshots (and archived journal records) compared field by field across sources",
                                ge=0, le=100_000)] = 20
    seed: Annotated[int, _opt("seed of the spot-check sample (same seed, same sample)", ge=-INT64, le=INT64 - 1)] = 0
    band: Annotated[float, _opt("zero gamma and major levels must lie within spot * (1 +- band)", gt=0, le=MOST)] = 0.2
    max_gap_s: Annotated[float, _opt("longest pause between rows inside a trading session, seconds", gt=0,
                                    le=MOST)] = 300.0
    max_jump: Annotated[float, _opt("largest relative spot change between consecutive rows", gt=0,
                                   le=MOST)] = 0.05
    sum_tolerance: Annotated[float, _opt("allowed |net GEX - sum of strikes|, relative to sum of |gex|",
                                         ge=0, le=MOST)] = 1e-6
    data_start: Annotated[str, _opt("timestamps before this UTC date are errors")] = "2018-01-01"
    future_slack_s: Annotated[float, _opt("timestamps this far past the clock are errors, seconds", ge=0,
                                         le=MOST)] = 300.0


FIELDS = msgspec.inspect.type_info(Options).fields


class OptionsError(ValueError):
    pass


def parse(values):
    """Options from strings (flags or query arguments); lists may come comma-separated."""
    values = dict(values)
    for name in ("ticker", "endpoint"):
        if isinstance(values.get(name), str):
            values[name] = [v for v in values[name].split(",") if v]
    try:
        options = msgspec.convert(values, Options, strict=False)
    except msgspec.ValidationError as exc:
        message = str(exc).replace("`$.", "`").replace("Object contains unknown field", "unknown option")
        raise OptionsError(message) from None
    for name in options.ticker + options.endpoint:
        if not NAME.match(name):
            raise OptionsError(f"not a ticker or endpoint name: {name!r}")
    for name in ("since", "until", "data_start"):
        if getattr(options, name):
            epoch_ms(getattr(options, name), name, end_of_day=name == "until")
    return msgspec.structs.replace(options, ticker=[t.upper() for t in options.ticker],
                                   endpoint=[_endpoint(e) for e in options.endpoint])


def _endpoint(name):
    """The endpoint a name selects as stored, so that a feed named as clients name it is not silently empty."""
    try:
        stored = normalize_endpoint(name, None, "endpoint")
    except PayloadError as exc:
        raise OptionsError(f"endpoint: {exc.reason}") from None
    if stored is None:
        raise OptionsError(f"endpoint: {name!r} names a kind of payload (majors, maxchange), not an endpoint")
    return stored


def epoch_ms(text, name="time", end_of_day=False):
    try:
        ms = int(text) if text.isascii() and text.isdigit() else _iso_ms(text, end_of_day)
    except ValueError:
        raise OptionsError(f"{name}: expected YYYY-MM-DD, ISO-8601 or epoch ms, got {text[:40]!r}") from None
    except OverflowError:  # the day after 9999-12-31
        ms = LATEST_MS
    if not EARLIEST_MS <= ms < LATEST_MS:
        raise OptionsError(f"{name}: {text[:40]!r} is outside the years 1 to 9999")
    return ms


def _iso_ms(text, end_of_day):
    if len(text) == 10:
        day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end_of_day else 0)
        return int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp() * 1000)
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return int(moment.timestamp() * 1000)


def add_arguments(parser):
    for field in FIELDS:
        flag = "--" + field.name.replace("_", "-")
        default = "none" if field.default is msgspec.NODEFAULT else repr(field.default)
        help_text = f"{field.type.extra_json_schema['description']} (default: {default})"
        parser.add_argument(flag, default=None, metavar=field.name.upper(), help=help_text)


def from_args(args):
    return parse({f.name: getattr(args, f.name) for f in FIELDS if getattr(args, f.name) is not None})
