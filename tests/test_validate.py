"""The validator on DuckDB data: clean data passes; each planted defect is reported alone, with its key."""

import pytest

from validate_helpers import MINUTE, MS, NOW_MS, build_clean, check, copy_of, plant, problems, run

SPX_ZERO = "ticker = 'SPX' AND endpoint = 'gex_zero'"
DTE_DEFECT = f"UPDATE gex_snapshots SET min_dte = 3 WHERE ticker = 'SPX' AND endpoint = 'gex_one' AND timestamp = {MS}"


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    return build_clean(tmp_path_factory.mktemp("clean"))


def test_clean_data_passes_with_only_the_legacy_duplicates_as_a_warning(clean):
    report = run(clean)
    assert report.exit_code == 0 and report.status == "clean"
    assert problems(report) == {"timeline.exact_duplicates": "warning"}
    duplicates = check(report, "timeline.exact_duplicates")
    assert duplicates.count == 3  # the generator's exact copies, all legacy
    assert {e["endpoint"] for e in duplicates.examples} == {"legacy"}
    assert check(report, "structure.duckdb_schema").checked == "gexsrv tables"
    assert check(report, "crosscheck.parquet_counts").status == "passed"  # the server exported its lake
    assert check(report, "crosscheck.spot_parquet").status == "passed"


def _strike(ts, rank):
    """The strike value of the rank-th strike row of an SPX gex_zero snapshot (helpers.snapshot's layout)."""
    return (f"(SELECT strike FROM gex_strikes WHERE {SPX_ZERO} AND timestamp = {ts} "
            f"ORDER BY strike LIMIT 1 OFFSET {rank})")


DEFECTS = [
    ("rules.spot", [f"UPDATE gex_snapshots SET spot_price = 'nan' WHERE {SPX_ZERO} AND timestamp = {MS + 5 * MINUTE}"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + 5 * MINUTE}),
    ("rules.strike_order", [
        f"UPDATE gex_strikes SET strike = CASE WHEN strike = {_strike(MS, 1)} THEN {_strike(MS, 2)} "
        f"ELSE {_strike(MS, 1)} END WHERE {SPX_ZERO} AND timestamp = {MS} "
        f"AND strike IN ({_strike(MS, 1)}, {_strike(MS, 2)})"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS}),
    ("rules.strike_unique", [
        "INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors) "
        f"SELECT timestamp, ticker, endpoint, strike, 0, 0, priors FROM gex_strikes WHERE {SPX_ZERO} "
        f"AND timestamp = {MS + MINUTE} AND strike = {_strike(MS + MINUTE, 4)}"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + MINUTE}),
    ("rules.band", [
        f"UPDATE gex_snapshots SET zero_gamma = spot_price * 1.5 WHERE ticker = 'ES_SPX' AND timestamp = {MS}"],
     {"ticker": "ES_SPX", "endpoint": "gex_zero", "timestamp": MS, "level": "zero_gamma"}),
    ("rules.majors_in_strikes", [
        f"UPDATE gex_snapshots SET major_pos_oi = major_pos_oi + 2.5 WHERE {SPX_ZERO} AND timestamp = {MS}"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS, "level": "major_pos_oi"}),
    ("rules.net_gex", [f"UPDATE gex_snapshots SET sum_gex_oi = sum_gex_oi + 100 WHERE {SPX_ZERO} AND timestamp = {MS}"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS}),
    ("rules.dte", [DTE_DEFECT],
     {"ticker": "SPX", "endpoint": "gex_one", "timestamp": MS, "min_dte": 3}),
    ("rules.priors", [f"UPDATE gex_strikes SET priors = [1.0, 2.0] WHERE {SPX_ZERO} AND timestamp = {MS} "
                      f"AND strike = {_strike(MS, 0)}"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS, "priors_length": 2}),
    ("rules.orphan_strikes", [
        "INSERT INTO gex_strikes (timestamp, ticker, endpoint, strike, gamma, oi_gamma, priors) "
        f"VALUES ({MS + 30_000}, 'SPX', 'gex_zero', 7100, 1, 1, [1.0, 2, 3, 4, 5])"],
     {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + 30_000}),
    ("timeline.duplicates", [  # legacy rows have no key constraint: a second, different version of one
        "INSERT INTO gex_snapshots SELECT * REPLACE (delta_risk_reversal + 1 AS delta_risk_reversal) "
        "FROM gex_snapshots WHERE ticker = 'NDX' AND endpoint IS NULL AND timestamp = 1761055200000"],
     {"table": "gex_snapshots", "ticker": "NDX", "endpoint": "legacy", "timestamp": 1761055200000, "versions": 2}),
    ("timeline.out_of_order", [
        f"UPDATE gex_snapshots SET received_at = CASE WHEN timestamp = {MS + 5 * MINUTE} THEN "
        f"(SELECT received_at FROM gex_snapshots WHERE {SPX_ZERO} AND timestamp = {MS + 6 * MINUTE}) ELSE "
        f"(SELECT received_at FROM gex_snapshots WHERE {SPX_ZERO} AND timestamp = {MS + 5 * MINUTE}) END "
        f"WHERE {SPX_ZERO} AND timestamp IN ({MS + 5 * MINUTE}, {MS + 6 * MINUTE})"],
     {"table": "gex_snapshots", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + 5 * MINUTE}),
    ("timeline.gaps", [
        f"DELETE FROM {table} WHERE ticker = 'ES_SPX' AND timestamp BETWEEN {MS + 5 * MINUTE} AND {MS + 12 * MINUTE}"
        for table in ("gex_strikes", "gex_snapshots")],
     {"table": "gex_snapshots", "ticker": "ES_SPX", "endpoint": "gex_zero", "timestamp": MS + 13 * MINUTE,
      "gap_s": 540}),
    ("timeline.future", [
        f"INSERT INTO gex_maxchange SELECT * REPLACE ({NOW_MS + 86_400_000} AS timestamp, "
        f"(SELECT max(received_at) + 1 FROM gex_maxchange) AS received_at) FROM gex_maxchange WHERE timestamp = {MS}"],
     {"table": "gex_maxchange", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": NOW_MS + 86_400_000}),
    ("timeline.before_start", [
        "INSERT INTO gex_maxchange SELECT * REPLACE (1262304000000 AS timestamp, 1262304000000 AS received_at) "
        f"FROM gex_maxchange WHERE timestamp = {MS}"],
     {"table": "gex_maxchange", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": 1262304000000}),
    ("timeline.spot_jumps", [f"UPDATE gex_majors SET spot = spot * 1.1 WHERE timestamp = {MS + 19 * MINUTE}"],
     {"table": "gex_majors", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + 19 * MINUTE}),
]


@pytest.mark.parametrize("name, statements, key", DEFECTS, ids=[d[0] for d in DEFECTS])
def test_a_planted_defect_is_reported_alone_with_its_key(clean, tmp_path, name, statements, key):
    data = copy_of(clean, tmp_path, lake=False)  # a DuckDB defect only: the lake would disagree too
    plant(data, *statements)
    report = run(data)
    assert problems(report) == {name: "failed", "timeline.exact_duplicates": "warning"}
    assert report.exit_code == 1 and report.status == "failed"
    found = check(report, name)
    assert found.count >= 1
    assert any(key.items() <= example.items() for example in found.examples), found.examples


def test_filters_narrow_every_check(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    plant(data, DTE_DEFECT)
    assert run(data, ticker="ES_SPX").exit_code == 0
    assert run(data, endpoint="gex_zero,legacy").exit_code == 0
    assert run(data, since=str(MS + 1)).exit_code == 0
    assert run(data, until="2026-04-28").exit_code == 0
    assert check(run(data, endpoint="gex_one", until="2026-04-29"), "rules.dte").count == 1
    legacy_only = run(data, endpoint="legacy")
    assert check(legacy_only, "timeline.exact_duplicates").count == 3
    assert check(legacy_only, "rules.dte").count == 0


def test_the_validator_never_writes(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    before = (data / "gex_data.db").read_bytes()
    run(data)
    assert (data / "gex_data.db").read_bytes() == before
