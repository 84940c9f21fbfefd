"""The fast strike-row check (gexsrv.strikecheck) against the exact per-row decoding it stands in for: whatever it
accepts, every row decodes, and it counts them right; what it does not accept still gets the exact problems."""
import json

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

from gexsrv.decode import STRIKES, Rules, decode_gex, with_strikes
from gexsrv.strikecheck import uniform_rows

TS = 1777492800

PLAIN_NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False).map(repr),
                          st.integers(-10**6, 10**6).map(str))
# JSON number texts, with those a float row refuses: too large, or with a positive exponent that overflows.
NUMBER_TEXTS = st.one_of(
    PLAIN_NUMBERS,
    st.sampled_from(["1e999", "-1e301", "1e300", "9.99e299", "1E+5", "1e-400", "2.5e-7", "0", "-0.0",
                     "1" + "0" * 300, "1" + "0" * 299, "1" + "0" * 301, "0." + "0" * 320 + "1", "null"]),
)
ROW_SHAPES = st.sampled_from([2, 3, 4])


@st.composite
def strike_texts(draw):
    """A strike array's JSON text: rows of 2, 3 or 4 items (the 4th a list), of one shape or not, of plain numbers
    or of any (so that both what the check accepts and what it leaves are drawn often)."""
    width, priors, uniform = draw(ROW_SHAPES), draw(st.integers(0, 6)), draw(st.booleans())
    numbers = draw(st.sampled_from([PLAIN_NUMBERS, NUMBER_TEXTS]))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        w = width if uniform or draw(st.booleans()) or not rows else draw(ROW_SHAPES)
        row = [draw(numbers) for _ in range(min(w, 3))]
        if w == 4:
            row.append("[" + ",".join(draw(numbers) for _ in range(priors)) + "]")
        rows.append("[" + ",".join(row) + "]")
    return ("[" + ",".join(rows) + "]").encode()


def exact_count(text):
    """Rows the exact decoding keeps, or None when it skips one."""
    try:
        return len(STRIKES.decode(text))
    except msgspec.ValidationError:
        return None


@pytest.mark.slow
@settings(max_examples=800, deadline=None)
@given(strike_texts())
def test_what_the_fast_check_accepts_the_exact_decoding_accepts_row_for_row(text):
    count = uniform_rows(text)
    if count is not None:
        assert count == exact_count(text)


@pytest.mark.parametrize("row", [
    "[7100,1.5,2.5,[1,2,3,4,5]]", "[7100,1.5]", "[7100,1.5,-2]", "[7100,1,2,[]]", "[1e-9,2.5e-400,-0.0,[0.1]]",
    "[" + "9" * 300 + ",1]",
])
def test_a_uniform_array_of_good_rows_is_counted_without_decoding(row):
    text = ("[" + ",".join([row] * 7) + "]").encode()
    assert uniform_rows(text) == 7 == exact_count(text)


@pytest.mark.parametrize("text", [
    "[[7100,1e999]]", "[[7100,1e5]]", "[[7100,1E+2]]", "[[" + "1" * 301 + ",1]]", "[[7100,null]]",
    "[[7100, 1.5]]", '[[7100,"1.5"]]', "[[7100,1.5],[7105,1.5,2]]", "[[7100]]", "[[7100,1,2,3]]", "[[7100,1,2,[1],4]]",
    "[7100,1.5]", "[]", "[[7100,1,[2]]]", "[[7100,1,2,[[1]]]]", "[[7100,true]]",
])
def test_anything_else_is_left_to_the_exact_decoding(text):
    assert uniform_rows(text.encode()) is None


def snapshot(strikes):
    return json.dumps({"timestamp": TS, "ticker": "SPX", "strikes": strikes}).encode()


def test_a_snapshot_is_decoded_without_strike_row_objects_and_they_are_made_again_for_a_view():
    body = snapshot([[7100 + 5 * i, 1.5, -2.5, [1, 2, 3, 4, 5]] for i in range(300)])
    record = decode_gex(body, Rules(), TS * 1000)
    assert (record.row.strikes, record.strike_rows, record.skipped, record.problems) == ([], 300, (), [])
    shown = with_strikes(record).row.strikes
    assert [(r.strike, r.priors) for r in shown[:2]] == [(7100, (1, 2, 3, 4, 5)), (7105, (1, 2, 3, 4, 5))]
    assert len(shown) == 300
    assert record.held() is record and with_strikes(record).held().row.strikes == []  # ingest holds no objects


def test_a_bad_row_among_uniform_ones_is_skipped_and_reported_exactly():
    text = b"[[7100,1.5,2.5],[7105,1e999,2.5],[7110,1.5,2.5]]"
    body = b'{"timestamp":%d,"ticker":"SPX","strikes":%s}' % (TS, text)
    record = decode_gex(body, Rules(), TS * 1000)
    assert (record.strike_rows, record.skipped) == (2, (1,))
    assert record.problems == [{"field": "$.strikes[1][1]", "error": "strike row skipped: must be a finite number"}]
    assert [r.strike for r in with_strikes(record).row.strikes] == [7100, 7110]


def test_the_strike_limit_counts_rows_the_fast_check_accepted():
    body = snapshot([[7100 + i, 1.0] for i in range(5)])
    with pytest.raises(Exception, match="5 strike rows, more than the 4"):
        decode_gex(body, Rules(max_strikes=4), TS * 1000)

