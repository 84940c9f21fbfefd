"""Decoding of /gex bodies: shapes, aliases, timestamp units and error paths."""

import json

import pytest

from gexsrv.payloads import PayloadError, decode_gex, normalize_endpoint, timestamp_ms


def decode(body):
    return decode_gex(json.dumps(body).encode(), "gex_zero", 0)


@pytest.mark.parametrize("value, expected", [
    (1777492800, 1777492800000),
    (1777492800.25, 1777492800250),
    (1777492800123, 1777492800123),
])
def test_epoch_seconds_and_milliseconds_become_milliseconds(value, expected):
    assert timestamp_ms(value) == expected


def test_iso_timestamps_with_and_without_zone_are_utc():
    assert decode({"ticker": "X", "timestamp": "2026-04-29T20:00:00Z"}).timestamp_ms == 1777492800000
    assert decode({"ticker": "X", "timestamp": "2026-04-29T16:00:00-04:00"}).timestamp_ms == 1777492800000
    assert decode({"ticker": "X", "timestamp": "2026-04-29T20:00:00"}).timestamp_ms == 1777492800000


@pytest.mark.parametrize("name, expected", [
    (None, "gex_zero"), ("zero", "gex_zero"), ("ONE", "gex_one"), ("full", "gex_full"), ("gex_full", "gex_full"),
])
def test_endpoint_aliases(name, expected):
    assert normalize_endpoint(name, "gex_zero") == expected


@pytest.mark.parametrize("body, kind", [
    ({"timestamp": 1777492800, "ticker": "X", "strikes": []}, "snapshot"),
    ({"timestamp": 1777492800, "ticker": "X", "mpos_vol": 1}, "majors"),
    ({"timestamp": 1777492800, "ticker": "X", "net_gex_vol": 1}, "majors"),
    ({"timestamp": 1777492800, "ticker": "X", "current": [1, 2]}, "maxchange"),
    ({"ticker": "X", "endpoint": "maxchange", "data": {"timestamp": 1777492800}}, "maxchange"),
    ({"ticker": "X", "kind": "majors", "payload": {"timestamp": 1777492800}}, "majors"),
])
def test_kind_comes_from_the_envelope_or_the_payloads_fields(body, kind):
    assert decode(body).kind == kind


def test_envelope_ticker_and_feed_fill_in_for_the_payload():
    record = decode({"ticker": "es_spx", "feed": "one", "data": {"timestamp": 1777492800}})
    assert (record.ticker, record.endpoint) == ("ES_SPX", "gex_one")
    inner_wins = decode({"ticker": "SPX", "endpoint": "one", "data": {"timestamp": 1777492800, "ticker": "NDX",
                                                                        "endpoint": "full"}})
    assert (inner_wins.ticker, inner_wins.endpoint) == ("NDX", "gex_full")


def test_errors_inside_an_envelope_carry_the_envelope_path():
    with pytest.raises(PayloadError) as caught:
        decode({"ticker": "SPX", "payload": {"timestamp": 1777492800, "strikes": [[1, 2, 3, [4, None]]]}})
    assert caught.value.field == "$.payload.strikes[0][3][1]"
    assert caught.value.reason == "Expected `float`, got `null`"
