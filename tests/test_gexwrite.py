"""The strike rows DuckDB reads from a request body at ingest (gexwrite.STRIKES, guided by the decoder's `at` and
`skipped`) are exactly the rows the Python decoder (gexsrv.decode) made of it: same values to the bit, NULL where
Python has None, in the same order. Property-based: bodies are generated as clients write them, bare or in
envelopes, as POST /gex or as /uw frames, with every number form JSON allows, and written in batches through a
real Store as ingest writes them."""

import datetime as dt
import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gexsrv import kinds
from gexsrv.batches import COLUMNS
from gexsrv.decode import Rules, decode_gex, with_strikes
from gexsrv.payloads import PayloadError
from gexsrv.records import SnapshotRow
from gexsrv.store import Store
from gexsrv.uw.payloads import Ignored, decode_uw

RECEIVED_MS = 1_777_400_000_000
FIRST_SECOND = 1_777_492_800
CLOCK = itertools.count(FIRST_SECOND)  # every body gets a second of its own: keys never collide across examples
SNAPSHOT_COLUMNS = [name for name, _ in COLUMNS[SnapshotRow]]

# ---- JSON text, token by token, so that numbers keep the exact form drawn ----


class Number(str):
    """A JSON number as written (1e300, -0.0, 18446744073709551617, ...)."""


TS = Number("\x00TS\x00")  # where a body's timestamp goes; rendered JSON never holds a raw NUL
# a body's whitespace: a drawn sequence of separators, repeated
SPACES = st.lists(st.sampled_from(["", " ", "\n", "\t", "\r\n  "]), min_size=1, max_size=7).map(itertools.cycle)


def _name(key, escaped):
    """A key as JSON text; `escaped` writes its first letter as a \\u escape ("\\u0073trikes" is "strikes")."""
    return f'"\\u{ord(key[0]):04x}{key[1:]}"' if escaped else json.dumps(key)


def render(node, spaces, ascii_only, escaped_keys):
    """JSON text of a node (Number, str, bool, None, list, or dict of str -> node); `spaces` yields the
    whitespace to put around each token."""
    if isinstance(node, Number):
        return str(node)
    if isinstance(node, (list, dict)):
        pairs = node.items() if isinstance(node, dict) else [(None, item) for item in node]
        parts = []
        for key, value in pairs:
            name = "" if key is None else _name(key, escaped_keys) + next(spaces) + ":" + next(spaces)
            parts.append(next(spaces) + name + render(value, spaces, ascii_only, escaped_keys) + next(spaces))
        opening, closing = "{}" if isinstance(node, dict) else "[]"
        return opening + (",".join(parts) or next(spaces)) + closing
    return json.dumps(node, ensure_ascii=ascii_only)


# ---- numbers ----

EDGES = [
    "0", "-0", "0.0", "-0.0", "0e0", "-0E-0", "1e-300", "-1e-300", "1e300", "-1e300", "1E+300", "1e301",
    "1.0000000000000001e300", "5e-324", "4.9406564584124654e-324", "2.4703282292062327e-324",
    "2.4703282292062328e-324", "2.2250738585072011e-308", "2.2250738585072012e-308", "1e-400",
    "9007199254740993", "-9007199254740993", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
    "-9223372036854775809", "18446744073709551615", "18446744073709551616", "123456789012345678901234567890",
    "0.1000000000000000055511151231257827", "7138.55", "1.5E3", "2.5e+1", "1e0300", "1E-0300", "-0e+00",
    "9007199254740992.5", "9007199254740993.0000000001", "4503599627370496.5", "100000000000000000000000000000e-29",
    "2.225073858507201136057409796709131975934819546351645648e-308",
]
FLOATS = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)
FLOAT_FORMS = st.sampled_from(["r", ".17e", ".17E", ".25g", ".3e", ".0f"])


def _formatted(value, form):
    text = repr(value) if form == "r" else format(value, form)
    return text if form != ".0f" or abs(value) < 1e20 else repr(value)  # keep fixed-point forms short


def _decimal(whole, fraction, exponent):
    return f"{whole}{'.' + fraction if fraction else ''}{'' if exponent is None else 'e' + str(exponent)}"


NUMBERS = st.one_of(
    st.sampled_from(EDGES),
    st.integers(-(2**70), 2**70).map(str),
    st.builds(_formatted, FLOATS, FLOAT_FORMS),
    st.builds(_decimal, st.integers(-(10**6), 10**6), st.text("0123456789", max_size=25),
              st.one_of(st.none(), st.integers(-340, 310))),
).map(Number)
# what a snapshot's own fields hold: a value out of range refuses the whole body, so mostly tame ones
TAME = st.one_of(st.integers(-(10**9), 10**9).map(str), st.floats(-1e12, 1e12, allow_nan=False).map(repr),
                 st.sampled_from(["-0.0", "1e-300", "1e300", "9007199254740993"])).map(Number)

# ---- strike rows ----

JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.just({"a": Number("1")}), st.just({}),
                 st.just([]), st.just([Number("1")]))


def mostly(common, rare, odds):
    """`common` `odds` times out of `odds` + 1, else `rare` (one_of would give each half)."""
    return st.sampled_from([True] * odds + [False]).flatmap(lambda usual: common if usual else rare)


# Most rows are valid, as client rows are; enough are not.
PRIORS = mostly(st.lists(mostly(NUMBERS, st.none(), 3), max_size=6),
                st.one_of(st.none(), JUNK, NUMBERS, st.lists(st.one_of(NUMBERS, JUNK), min_size=1, max_size=6)), 4)
ITEM = mostly(NUMBERS, JUNK, 12)


@st.composite
def strike_row(draw):
    size = draw(st.sampled_from([1, 2, 3, 4, 4, 4, 4, 4, 5]))
    row = [draw(ITEM) for _ in range(min(size, 3))]
    if size >= 4:
        row.append(draw(PRIORS))
    if size == 5:
        row.append(draw(st.one_of(NUMBERS, JUNK)))
    return row


ROWS = mostly(st.lists(mostly(strike_row(), JUNK, 8), max_size=5), st.none(), 6)

# ---- payloads and envelopes ----

TICKERS = st.sampled_from(["SPX", "spx", " QQQ ", "ES_SPX", "$SPX.X", "VIX"])
ENDPOINTS = st.sampled_from(["gex_zero", "gex_one", "classic/full", "one", "state/gex_zero"])
TIMESTAMP_FORMS = st.sampled_from(["s", "ms", "s.5", "text"])
FIELDS = ["spot", "zero_gamma", "net_gex", "net_gex_vol", "sum_gex_vol", "sum_gex_oi", "net_gex_oi",
          "major_pos_vol", "major_pos_oi", "major_neg_vol", "major_neg_oi", "delta_risk_reversal"]


@st.composite
def snapshot(draw, keyed):
    """A gexbot snapshot as a dict node; `keyed` puts ticker and endpoint in it (else an envelope carries them)."""
    node = {"timestamp": TS}
    if keyed:
        node["ticker"] = draw(TICKERS)
        if draw(st.booleans()):
            node["endpoint"] = draw(ENDPOINTS)
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)):
        node[name] = draw(st.one_of(TAME, st.none()))
    for name in draw(st.lists(st.sampled_from(["min_dte", "sec_min_dte"]), unique=True)):
        node[name] = Number(str(draw(st.integers(-5, 400))))
    if draw(st.booleans()):
        node["max_priors"] = draw(st.one_of(st.none(), st.lists(st.lists(st.one_of(TAME, st.none()), max_size=3),
                                                                max_size=6)))
    strikes = draw(ROWS)
    return {"strikes": strikes, **node} if draw(st.booleans()) else {**node, "strikes": strikes}


@st.composite
def enveloped(draw):
    """A snapshot bare or in 1 to 3 envelopes {"data"|"payload": ...}; the outermost may carry the key fields."""
    depth = draw(st.integers(0, 3))
    keyed_inside = depth == 0 or draw(st.booleans())
    node = draw(snapshot(keyed_inside))
    for level in range(depth):
        node = {draw(st.sampled_from(["data", "payload"])): node}
        if level == depth - 1 and not keyed_inside:
            node["ticker"] = draw(TICKERS)
            node[draw(st.sampled_from(["endpoint", "feed"]))] = draw(ENDPOINTS)
            if draw(st.booleans()):
                node["received_at"] = Number(str(RECEIVED_MS - 5))
    return node


@st.composite
def uw_frame(draw):
    """A /uw body with topic "gex": a Phoenix frame (payload at $[4]), a [channel, payload] frame, or the
    original's envelope {"topic": "gex", "payload": ...} or {"topic": "gex", <payload fields>}."""
    payload = draw(enveloped())
    shape = draw(st.sampled_from(["phoenix", "channel", "envelope", "flat"]))
    if shape == "phoenix":
        refs = st.one_of(st.none(), st.integers(0, 99).map(str).map(Number), st.text("0123456789", max_size=3))
        return [draw(refs), draw(refs), "gex", draw(st.sampled_from(["update", "gex", "broadcast"])), payload]
    if shape == "channel":
        return ["gex", payload]
    if shape == "envelope":
        return {"topic": "gex", "event": "update", "payload": payload}
    return {"topic": "gex", "event": "update", **payload}


@st.composite
def request(draw):
    """(path, body text) of a POST /gex or POST /uw."""
    path = draw(st.sampled_from(["/gex", "/uw"]))
    node = draw(enveloped() if path == "/gex" else uw_frame())
    return path, render(node, draw(SPACES), draw(st.booleans()), draw(mostly(st.just(False), st.just(True), 5)))


def timestamp_text(form, second):
    return {"s": str(second), "ms": f"{second}000", "s.5": f"{second}.5", "text": f'"{second}"'}[form]


# ---- decoding as the handlers do, holding as ingest does ----


def decoded(path, body):
    """(records as ingest holds them, the GEX record before held()) of one body; None if it is refused."""
    try:
        if path == "/gex":
            record = decode_gex(body, Rules(), RECEIVED_MS)
            return [record.held()], record
        frame = decode_uw(body, Rules(), RECEIVED_MS)
    except PayloadError:
        return None
    assert not isinstance(frame, Ignored)
    return [frame.held(), frame.gex.held()], frame.gex


def exact(value):
    """Floats compared to the bit (repr tells -0.0 from 0.0 and round-trips every double); lists item by item."""
    if isinstance(value, float):
        return f"float {value!r}"
    if isinstance(value, (list, tuple)):
        return [exact(item) for item in value]
    return value


def python_rows(record):
    return [exact([s.strike, s.gamma, s.oi_gamma, None if s.priors is None else list(s.priors)])
            for s in with_strikes(record).row.strikes]


def python_snapshot(record):
    return exact([record.ticker, record.endpoint, record.received_ms, record.source,
                  *(getattr(record.row, name) for name in SNAPSHOT_COLUMNS)])


def stored(store, records):
    """{timestamp ms: (its gex_snapshots row, its gex_strikes rows in insertion order)} for the records' keys."""
    low, high = min(r.timestamp_ms for r in records), max(r.timestamp_ms for r in records)
    snapshots = {row[0]: exact(list(row[1:])) for row in store.read(
        f"SELECT timestamp, ticker, endpoint, received_at, source, {', '.join(SNAPSHOT_COLUMNS)} "
        "FROM gex_snapshots WHERE timestamp BETWEEN ? AND ?", [low, high])}
    strikes = {}
    for ts, *row in store.read("SELECT timestamp, strike, gamma, oi_gamma, priors FROM gex_strikes "
                               "WHERE timestamp BETWEEN ? AND ? ORDER BY seq", [low, high]):
        strikes.setdefault(ts, []).append(exact(row))
    return {ts: (snapshots[ts], strikes.get(ts, [])) for ts in snapshots}


def opened(data_dir):
    store = Store(str(data_dir), kinds.WRITERS)
    store.open()
    return store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = opened(tmp_path_factory.mktemp("gexwrite") / "data")
    yield store
    store.close()


@pytest.fixture
def own_store(tmp_path):
    store = opened(tmp_path / "data")
    yield store
    store.close()


def write(store, records):
    """Store.write as ingest calls it (Arrow tables prepared first); its outcomes."""
    return store.write(records, store.prepare(records))


@pytest.mark.slow
@settings(max_examples=200, deadline=dt.timedelta(seconds=5), database=None, print_blob=True)
@given(bodies=st.lists(st.tuples(request(), TIMESTAMP_FORMS), min_size=1, max_size=5), data=st.data())
def test_duckdb_stores_the_strike_rows_the_decoder_made(store, bodies, data):
    held, records = [], []  # per body: the records ingest holds (a /uw frame and its GEX record); GEX records
    for (path, text), form in bodies:
        found = decoded(path, text.replace(TS, timestamp_text(form, next(CLOCK))).encode())
        if found is not None:
            held.append(found[0])
            records.append(found[1])
    if not records:
        return
    assert all(record.kind == "snapshot" for record in records)
    # now and then some bodies come again, as after a crash: their keys are stored, the batch takes the
    # ON CONFLICT path (gexwrite.NEW_ONLY)
    first = data.draw(mostly(st.just(0), st.integers(1, len(held)), 3), label="bodies written before the batch")
    earlier = [record for group in held[:first] for record in group]
    everything = [record for group in held for record in group]
    if earlier:
        assert write(store, earlier) == [True] * len(earlier)
    assert write(store, everything) == [False] * len(earlier) + [True] * (len(everything) - len(earlier))
    assert stored(store, records) == {r.timestamp_ms: (python_snapshot(r), python_rows(r)) for r in records}


# ---- cases where the two readings once differed ----

SNAPSHOT = '"ticker":"SPX","timestamp":1777492800'
KEY_TWICE = [
    ("/gex", f'{{{SNAPSHOT},"strikes":[[1,2]],"strikes":[[3,4]]}}'),
    ("/gex", f'{{"data":{{{SNAPSHOT},"strikes":[[1,2]]}},"data":{{{SNAPSHOT},"strikes":[[3,4]]}}}}'),
    ("/uw", f'{{"topic":"gex","payload":{{{SNAPSHOT},"strikes":[[1,2]]}},"payload":{{{SNAPSHOT},"strikes":[[3,4]]}}}}'),
    ("/uw", f'[1,2,"gex","update",{{{SNAPSHOT},"strikes":[[1,2]],"strikes":[[3,4]]}}]'),
]


def assert_refused_or_stored_alike(store, path, body):
    found = decoded(path, body)
    if found is None:
        return
    held, record = found
    assert write(store, held) == [True] * len(held)
    assert stored(store, [record]) == {record.timestamp_ms: (python_snapshot(record), python_rows(record))}


@pytest.mark.parametrize("path, text", KEY_TWICE)
def test_a_key_given_twice_is_refused_or_read_alike(own_store, path, text):
    """msgspec keeps the last of a repeated key; DuckDB reads the strike rows from the bytes msgspec read."""
    assert_refused_or_stored_alike(own_store, path, text.encode())


@pytest.mark.parametrize("body", [b'{"ticker":"SPX","timestamp":1777492800,"note":"\xff","strikes":[[1,2]]}',
                                  b'{"ticker":"SPX","timestamp":1777492800,"strikes":[["\xff",1],[1,2]]}'])
def test_a_body_that_is_not_utf8_is_refused_or_stored(own_store, body):
    """msgspec does not look inside what it skips; the decoder checks the whole body, as the journal needs."""
    assert_refused_or_stored_alike(own_store, "/gex", body)
    with pytest.raises(PayloadError, match="not UTF-8"):
        decode_gex(body, Rules(), 0)
