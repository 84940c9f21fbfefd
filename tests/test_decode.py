"""The one decoding rule (gexsrv.decode): kinds, envelopes, aliases, lenient inputs, column checks, error paths."""

import datetime as dt
import json
import os
import subprocess
import sys

import pytest

from gexsrv.decode import Rules, decode_gex, endpoint_parts, normalize_endpoint, timestamp_ms, with_strikes
from gexsrv.payloads import PayloadError
from helpers import TS

UTC = Rules("gex_zero", dt.timezone.utc)
RECEIVED_MS = (TS + 60) * 1000  # the server's clock when the bodies arrive


def decode(body, rules=UTC, received_ms=RECEIVED_MS):
    return decode_gex(json.dumps(body).encode(), rules, received_ms)


@pytest.mark.parametrize("value, expected", [
    (TS, TS * 1000), (TS + 0.25, TS * 1000 + 250), (TS * 1000 + 123, TS * 1000 + 123),
    ("1777493040", 1777493040000), (" 1777493040.5 ", 1777493040500), ("1777493040123", 1777493040123),
    ("2026-04-29T20:00:00Z", TS * 1000), ("2026-04-29T16:00:00-04:00", TS * 1000),
    ("2026-04-29T20:00:00.250+00:00", TS * 1000 + 250), ("2026-04-29 20:00:00", TS * 1000),
])
def test_timestamps_in_every_form_the_original_read_become_epoch_ms(value, expected):
    assert timestamp_ms(value, "$.timestamp", UTC) == expected


def test_naive_iso_times_are_read_in_the_configured_zone():
    new_york = Rules("gex_zero", dt.timezone(dt.timedelta(hours=-4)))
    assert decode({"ticker": "X", "timestamp": "2026-04-29T16:00:00"}, new_york).timestamp_ms == TS * 1000
    assert decode({"ticker": "X", "timestamp": "2026-04-29T16:00:00"}).timestamp_ms == (TS - 4 * 3600) * 1000


def test_local_zone_reads_naive_times_as_the_original_did():
    """`local` (no zone in Rules) reads a naive time in the process's zone, as the original's code did."""
    code = ("import json; from gexsrv.decode import Rules, decode_gex; "
            "print(decode_gex(b'{\"ticker\":\"X\",\"timestamp\":\"2026-04-29T16:00:00\"}', Rules('gex_zero', None), 0)"
            ".timestamp_ms)")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "TZ": "America/New_York"},
                         capture_output=True, text=True, check=True).stdout
    assert int(out) == TS * 1000


@pytest.mark.parametrize("value, reason", [
    ("yesterday", "ISO-8601"), (17774928, "outside 2000-01-01"), ("1e20", "outside 2000-01-01"),
])
def test_unreadable_timestamps_are_refused_naming_the_field(value, reason):
    with pytest.raises(PayloadError) as caught:
        decode({"ticker": "X", "data": {"timestamp": value}})
    assert caught.value.field == "$.data.timestamp" and reason in caught.value.reason


@pytest.mark.parametrize("name, expected", [
    ("zero", ("gex_zero", None)), ("ONE", ("gex_one", None)), ("gex_full", ("gex_full", None)),
    ("classic/zero", ("gex_zero", None)), ("classic/one", ("gex_one", None)), ("state/full", ("state_gex_full", None)),
    ("classic/gex_one", ("gex_one", None)), ("classic/zero/maxchange", ("gex_zero", "maxchange")),
    ("gex_maxchange", (None, "maxchange")), ("maxchange", (None, "maxchange")),
    ("classic/one/majors", ("gex_one", "majors")), ("/SPX/state/zero/majors", ("state_gex_zero", "majors")),
    ("/v2/NQ_NDX/classic/full/", ("gex_full", None)), ("/STATE/classic/one", ("gex_one", None)),
    ("state/gamma_zero", ("state_gamma_zero", None)), ("majors", (None, "majors")),
    ("state/gex_zero", ("state_gex_zero", None)), ("state_gex_zero", ("state_gex_zero", None)),
    ("/v2/SPX/orderflow/orderflow", ("orderflow_orderflow", None)),
])
def test_endpoint_names_as_clients_write_them(name, expected):
    assert endpoint_parts(name) == expected


@pytest.mark.parametrize("name, package, expected", [
    ("gex_zero", "state", "state_gex_zero"), ("zero", "state", "state_gex_zero"),
    ("state_gex_zero", "state", "state_gex_zero"), ("classic/zero", "state", "gex_zero"),
    ("gex_zero", "classic", "gex_zero"), ("orderflow", "orderflow", "orderflow_orderflow"),
])
def test_a_name_without_a_package_is_in_the_package_given(name, package, expected):
    """A history file's name gives the package of the endpoint sent beside it (gexsrv.history.names)."""
    assert normalize_endpoint(name, None, package=package) == expected


@pytest.mark.parametrize("name", ["a/b/c", "gex zero", "../x", "x" * 41, "state/" + "x" * 35])
def test_endpoints_that_cannot_name_a_folder_are_refused(name):
    with pytest.raises(PayloadError) as caught:
        normalize_endpoint(name, "gex_zero")
    assert caught.value.field == "$.endpoint"


@pytest.mark.parametrize("body, kind", [
    ({"timestamp": TS, "ticker": "X", "strikes": []}, "snapshot"),
    ({"timestamp": TS, "ticker": "X", "net_gex_vol": 1, "strikes": [[1, 2]]}, "snapshot"),
    ({"timestamp": TS, "ticker": "X", "net_gex_vol": 1, "major_pos_vol": 7}, "snapshot"),
    ({"timestamp": TS, "ticker": "X", "mpos_vol": 1}, "majors"),
    ({"timestamp": TS, "ticker": "X", "current": [1, 2]}, "maxchange"),
    ({"ticker": "X", "endpoint": "maxchange", "data": {"timestamp": TS}}, "maxchange"),
    ({"ticker": "X", "endpoint": "classic/zero/maxchange", "data": {"timestamp": TS}}, "maxchange"),
    ({"ticker": "X", "kind": "majors", "payload": {"timestamp": TS}}, "majors"),
    ({"ticker": "X", "kind": "snapshot", "payload": {"timestamp": TS, "mpos_vol": 1}}, "snapshot"),
    ({"timestamp": TS, "ticker": "X", "kind": "maxchange", "strikes": [[1, 2]]}, "maxchange"),
])
def test_explicit_kind_wins_then_strikes_make_a_snapshot(body, kind):
    assert decode(body).kind == kind


def test_envelope_fields_fill_what_the_payload_lacks():
    record = decode({"ticker": "es_spx", "feed": "one", "received_at": "2026-04-29T20:00:05Z",
                     "data": {"timestamp": TS}})
    assert (record.ticker, record.endpoint, record.received_ms) == ("ES_SPX", "gex_one", (TS + 5) * 1000)
    inner_wins = decode({"ticker": "SPX", "endpoint": "one", "data": {"timestamp": TS, "ticker": "NDX",
                                                                        "endpoint": "full"}})
    assert (inner_wins.ticker, inner_wins.endpoint) == ("NDX", "gex_full")


def test_every_alias_lands_in_its_column():
    poller = decode({"ticker": "SPX", "endpoint": "gex_zero", "kind": "snapshot", "payload": {
        "timestamp": TS, "spot": 7100.5, "zero_gamma": 7090.0, "net_gex_vol": 12.5, "net_gex_oi": -3.25,
        "major_pos_vol": 7110, "major_neg_vol": 7050, "major_pos_oi": 7120, "major_neg_oi": 7000}})
    row = poller.row
    assert (row.spot_price, row.zero_gamma, row.net_gex, row.sum_gex_vol, row.sum_gex_oi) == (
        7100.5, 7090.0, 12.5, 12.5, -3.25)
    assert (row.major_pos_vol, row.major_neg_vol, row.major_pos_oi, row.major_neg_oi) == (7110, 7050, 7120, 7000)
    assert poller.problems == []
    majors = decode({"timestamp": TS, "ticker": "SPX", "kind": "majors", "major_pos_vol": 1, "mneg_vol": 2,
                     "sum_gex_vol": 3, "sum_gex_oi": 4}).row
    assert (majors.mpos_vol, majors.mneg_vol, majors.net_gex_vol, majors.net_gex_oi) == (1, 2, 3, 4)
    by_net_gex = decode({"timestamp": TS, "ticker": "SPX", "net_gex": 42.5, "strikes": []}).row
    assert (by_net_gex.net_gex, by_net_gex.sum_gex_vol) == (42.5, 42.5)


def test_a_timestamp_past_the_future_tolerance_is_kept_and_reported():
    tolerance = UTC.future_ms // 1000
    at_the_edge = decode({"timestamp": TS + 60 + tolerance, "ticker": "SPX", "spot": 1.0})
    past_it = decode({"ticker": "SPX", "data": {"timestamp": TS + 61 + tolerance, "spot": 1.0}})
    assert at_the_edge.problems == []
    assert past_it.timestamp_ms == (TS + 61 + tolerance) * 1000
    assert past_it.problems == [{"field": "$.data.timestamp", "error": "86401 s ahead of the server's clock "
                                 "(future_tolerance_s is 86400): stored, but never taken as the latest of its ticker "
                                 "or feed"}]
    assert decode({"timestamp": TS + 3600, "ticker": "SPX"}, Rules(future_ms=0)).problems[0]["field"] == "$.timestamp"


def test_recognised_values_that_fit_no_column_are_reported_not_dropped():
    record = decode({"timestamp": TS, "ticker": "SPX", "kind": "majors", "net_gex_vol": 1, "net_gex": 2,
                     "strikes": [[1, 2]], "max_priors": [[1, 2]], "min_dte": 0})
    assert record.row.net_gex_vol == 1
    assert sorted(p["field"] for p in record.problems) == ["$.max_priors", "$.min_dte", "$.net_gex", "$.strikes"]
    assert "differs from the net_gex_vol stored (1.0)" in next(
        p["error"] for p in record.problems if p["field"] == "$.net_gex")
    both = decode({"timestamp": TS, "ticker": "SPX", "sum_gex_vol": 1, "net_gex": 2, "net_gex_vol": 3}).row
    assert (both.net_gex, both.sum_gex_vol) == (2, 1)


def test_a_bad_strike_row_is_skipped_and_reported_and_the_snapshot_kept():
    record = decode({"timestamp": TS, "ticker": "SPX", "strikes": [
        [7100, 1.0, 2.0, [1, None, 3, 4, 5]], [7105], [7110, "x"], [7115, 3.0], None]})
    assert [(r.strike, r.gamma, r.oi_gamma, r.priors) for r in with_strikes(record).row.strikes] == [
        (7100, 1.0, 2.0, (1, None, 3, 4, 5)), (7115, 3.0, None, None)]
    assert [p["field"] for p in record.problems] == ["$.strikes[1]", "$.strikes[2][1]", "$.strikes[4]"]
    assert all(p["error"].startswith("strike row skipped") for p in record.problems)


def test_nulls_are_kept_in_priors_and_max_priors():
    record = decode({"timestamp": TS, "ticker": "SPX", "max_priors": [[7100, None], [7105, 2.5]],
                     "strikes": [[7100, 1.0, None, [None, 1, 2, 3, 4]]]})
    assert record.row.max_priors == "[[7100.0,null],[7105.0,2.5]]"
    assert with_strikes(record).row.strikes[0].priors == (None, 1, 2, 3, 4)


@pytest.mark.parametrize("ticker, ok", [
    ("$SPX", True), ("^vix", True), ("brk.b", True), ("NQ_NDX", True), ("A/B", False), ("A\\B", False),
    ("..", False), ("A..B", False), (".SPX", False), ("-SPX", False), ("S\x00X", False), ("S P X", False),
    ("X" * 33, False),
])
def test_tickers_must_be_safe_as_folder_names(ticker, ok):
    if ok:
        assert decode({"timestamp": TS, "ticker": ticker}).ticker == ticker.upper()
        return
    with pytest.raises(PayloadError) as caught:
        decode({"timestamp": TS, "ticker": ticker})
    assert caught.value.field == "$.ticker" and "Parquet lake" in caught.value.reason


def test_values_are_checked_against_their_columns():
    with pytest.raises(PayloadError) as caught:
        decode({"timestamp": TS, "ticker": "SPX", "min_dte": 2**31})
    assert caught.value.field == "$.min_dte" and "2147483647" in caught.value.reason


def test_errors_inside_an_envelope_carry_the_envelope_path():
    with pytest.raises(PayloadError) as caught:
        decode({"ticker": "SPX", "payload": {"timestamp": TS, "spot": "high"}})
    assert (caught.value.field, caught.value.reason) == ("$.payload.spot", "Expected `float | null`, got `str`")
