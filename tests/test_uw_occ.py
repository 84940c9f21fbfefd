"""OCC symbol parsing and the string-to-number conversions of gexsrv.uw (unit tests, no server)."""

import datetime as dt

import pytest

from gexsrv.uw import occ
from gexsrv.uw.values import Problems, count, date, number, option_type, timestamp_us

UTC = dt.timezone.utc


@pytest.mark.parametrize("symbol, parts", [
    ("ARM260116C00118000", ("ARM", "ARM", dt.date(2026, 1, 16), "call", 118.0)),
    ("SPY   260116P00600500", ("SPY", "SPY", dt.date(2026, 1, 16), "put", 600.5)),  # OSI padding
    ("SPY260116P00600500", ("SPY", "SPY", dt.date(2026, 1, 16), "put", 600.5)),
    ("F260320C00012500", ("F", "F", dt.date(2026, 3, 20), "call", 12.5)),
    ("SPXW251021C06800000", ("SPXW", "SPX", dt.date(2025, 10, 21), "call", 6800.0)),
    ("NDXP251021P21000000", ("NDXP", "NDX", dt.date(2025, 10, 21), "put", 21000.0)),
    ("BRKB1 270115C00500000", ("BRKB1", "BRKB1", dt.date(2027, 1, 15), "call", 500.0)),  # adjusted, digit root
    ("O:TSLA260116C00430000", ("TSLA", "TSLA", dt.date(2026, 1, 16), "call", 430.0)),
    (" tsla260116c00430000 ", ("TSLA", "TSLA", dt.date(2026, 1, 16), "call", 430.0)),
    ("QQQ260116C00000500", ("QQQ", "QQQ", dt.date(2026, 1, 16), "call", 0.5)),
])
def test_occ_symbols_decode_to_their_parts(symbol, parts):
    assert tuple(occ.parse(symbol)) == parts


@pytest.mark.parametrize("symbol, reason", [
    ("ARM261316C00118000", "no valid expiry"),  # month 13
    ("ARM260230C00118000", "no valid expiry"),  # 30 February
    ("ARM260116X00118000", "not an OCC"),
    ("ARM260116C0011800", "not an OCC"),  # 7-digit strike
    ("260116C00118000", "not an OCC"),  # no root
    ("TOOLONG260116C00118000", "not an OCC"),  # 7-char root
    ("AR M260116C00118000", "not an OCC"),
    ("", "not an OCC"),
])
def test_bad_occ_symbols_are_refused_with_a_reason(symbol, reason):
    with pytest.raises(ValueError, match=reason):
        occ.parse(symbol)


def test_numbers_from_strings_nulls_and_garbage():
    problems = Problems()
    assert [number(v, "$.x", problems) for v in ("1.25", "-0.5", ".5", "1e3", 2, 2.5, "", None, " 7 ")] == [
        1.25, -0.5, 0.5, 1000.0, 2.0, 2.5, None, None, 7.0]
    assert problems == []
    assert [number(v, f"$.b{i}", problems) for i, v in enumerate(["abc", "NaN", "1_000", "inf", "1e999"])] == [None] * 5
    assert [p["field"] for p in problems] == ["$.b0", "$.b1", "$.b2", "$.b3", "$.b4"]
    assert problems[0]["error"] == "expected a decimal number, got 'abc'"
    assert problems[4]["error"] == "must be a finite number"


def test_counts_take_whole_numbers_only():
    problems = Problems()
    assert [count(v, "$.n", problems) for v in (3, "12", 4.0, "5.0", None, "")] == [3, 12, 4, 5, None, None]
    assert problems == []
    assert count("2.5", "$.size", problems) is None and count(2**63, "$.big", problems) is None
    assert problems == [{"field": "$.size", "error": "expected a whole number, got 2.5"},
                        {"field": "$.big", "error": "whole number out of range"}]


def test_timestamps_from_iso_text_and_epoch_numbers_in_any_unit():
    moment = dt.datetime(2025, 10, 21, 14, 30, 1, 123000, tzinfo=UTC)
    us = (moment - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)
    problems = Problems()
    values = ["2025-10-21T14:30:01.123Z", "2025-10-21T14:30:01.123", "2025-10-21T16:30:01.123+02:00",
              us // 1000, str(us // 1000), us, us * 1000, us / 1e6]
    assert [timestamp_us(v, "$.t", problems) for v in values] == [us] * len(values)
    assert timestamp_us("2025-10-21T14:30:01.123456Z", "$.t", problems) == us + 456
    assert problems == []
    assert timestamp_us("yesterday", "$.a", problems) is None and timestamp_us(17774928, "$.b", problems) is None
    assert [p["field"] for p in problems] == ["$.a", "$.b"]
    assert "outside 2000-01-01" in problems[1]["error"]


def test_dates_and_option_types():
    problems = Problems()
    assert date("2026-01-16", "$.d", problems) == date("20260116", "$.d", problems) == dt.date(2026, 1, 16)
    assert date("2026-01-16T00:00:00Z", "$.d", problems) == dt.date(2026, 1, 16)
    assert [option_type(v, "$.o", problems) for v in ("C", "call", "Puts", "p", None)] == [
        "call", "call", "put", "put", None]
    assert problems == []
    assert date("16/01/2026", "$.d", problems) is None and option_type("straddle", "$.o", problems) is None
    assert problems == [{"field": "$.d", "error": "expected a date YYYY-MM-DD, got '16/01/2026'"},
                        {"field": "$.o", "error": "expected call or put, got 'straddle'"}]
