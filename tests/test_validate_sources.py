"""The validator across sources: the Parquet lake the server exports, staged history JSON, /uw links."""

import os

import polars as pl
import pytest

import make_legacy_db
from validate_helpers import (LIVE, MS, STEPS, build_clean, check, copy_of, live_snapshot, plant, problems, run,
                              write_staged)

EVERYTHING = 1000  # a sample that takes every snapshot, so a planted difference is always seen
CLEAN = {"timeline.exact_duplicates": "warning"}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    data = build_clean(tmp_path_factory.mktemp("clean"))
    for ticker, endpoint in LIVE:
        write_staged(data, ticker, endpoint, [live_snapshot(ticker, endpoint, i) for i in range(STEPS)])
    return data


def lake_file(data, ticker="SPX", endpoint="gex_zero", kind="strikes"):
    (path,) = (data / "parquet" / "gexbot" / ticker / endpoint).glob(f"*.{kind}.parquet")
    return path


def test_clean_sources_agree(clean):
    report = run(clean, sample=EVERYTHING)
    assert problems(report) == CLEAN
    for name in ("structure.parquet_schema", "structure.staged_json", "crosscheck.spot_parquet",
                 "crosscheck.parquet_counts", "crosscheck.parquet_rows",
                 "crosscheck.live_vs_history", "links.uw_links"):
        assert check(report, name).status == "passed", name
    assert check(report, "crosscheck.spot_staged_json").status == "passed"  # nothing imported: nothing sampled


def _rewrite(path, frame):
    os.unlink(path)
    frame.write_parquet(path)


def test_a_value_changed_in_parquet_is_a_spot_check_failure(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data)
    frame = pl.read_parquet(path)
    first = frame.with_row_index().filter(pl.col("timestamp") == MS + 60_000)["index"][0]
    target = pl.int_range(pl.len()) == first
    _rewrite(path, frame.with_columns(pl.when(target).then(pl.col("gamma") + 1).otherwise(pl.col("gamma"))
                                      .alias("gamma")))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.spot_parquet": "failed"}
    (example,) = check(report, "crosscheck.spot_parquet").examples
    assert example | {"ticker": "SPX", "endpoint": "gex_zero", "timestamp": MS + 60_000, "field": "gamma"} == example


def test_the_same_sample_for_the_same_seed(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data)
    frame = pl.read_parquet(path)
    _rewrite(path, frame.with_columns(pl.col("gamma") + 1))  # every SPX gex_zero row now differs
    counts = [check(run(data, sample=5, seed=seed), "crosscheck.spot_parquet").count for seed in (1, 1, 2, 3, 4)]
    assert counts[0] == counts[1]
    assert len(set(counts)) > 1  # other seeds draw other snapshots


def test_a_stray_parquet_row_breaks_the_day_count(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data)
    stray = pl.read_parquet(path).head(1).with_columns(pl.lit(MS + 30_000).alias("timestamp"))
    stray.write_parquet(path.parent / "20260429.999999-999999.strikes.parquet")
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.parquet_counts": "failed"}
    (example,) = check(report, "crosscheck.parquet_counts").examples
    assert example == {"ticker": "SPX", "endpoint": "gex_zero", "day": "2026-04-29", "duckdb_rows": 100,
                       "parquet_rows": 101}


def test_a_missing_lake_file_breaks_the_day_count(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    os.unlink(lake_file(data, "ES_SPX"))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.parquet_counts": "failed"}
    assert check(report, "crosscheck.parquet_counts").examples[0]["parquet_rows"] == 0


def test_a_mistyped_parquet_file_is_reported_once_and_left_out(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data, "SPX", "gex_one")
    frame = pl.read_parquet(path)
    _rewrite(path, frame.with_columns(pl.col("strike").cast(pl.String)))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "structure.parquet_schema": "failed"}
    (example,) = check(report, "structure.parquet_schema").examples
    assert example == {"file": str(path), "column": "strike", "expected": "DOUBLE", "found": "VARCHAR"}


def test_a_live_snapshot_differing_from_the_staged_history(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    bodies = [live_snapshot("SPX", "gex_one", i) for i in range(STEPS)]
    bodies[3]["strikes"][2][1] += 0.5
    bodies[4]["zero_gamma"] += 1
    write_staged(data, "SPX", "gex_one", bodies)
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.live_vs_history": "failed"}
    found = check(report, "crosscheck.live_vs_history")
    assert found.count == 2
    assert {(e["timestamp"], e["field"]) for e in found.examples} == {(MS + 3 * 60_000, "gamma"),
                                                                     (MS + 4 * 60_000, "zero_gamma")}


def test_imported_snapshots_are_sampled_against_their_staged_file(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    plant(data, "UPDATE gex_snapshots SET source = 'history:1' WHERE ticker = 'ES_SPX'")
    path = lake_file(data, "ES_SPX", "gex_zero", "snapshots")  # the lake as an import would have written it
    _rewrite(path, pl.read_parquet(path).with_columns(source=pl.lit("history:1")))
    bodies = [live_snapshot("ES_SPX", "gex_zero", i) for i in range(STEPS)]
    write_staged(data, "ES_SPX", "gex_zero", {"data": bodies})  # the {"data": [...]} shape is read too
    assert problems(run(data, sample=EVERYTHING)) == CLEAN
    bodies[7]["strikes"][0][3] = [9.0, 9.0, 9.0, 9.0, 9.0]
    write_staged(data, "ES_SPX", "gex_zero", {"data": bodies})
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.spot_staged_json": "failed"}
    (example,) = check(report, "crosscheck.spot_staged_json").examples
    assert example["timestamp"] == MS + 7 * 60_000 and example["field"] == "priors"


def test_a_staged_file_that_is_no_history_file(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = data / "source" / "gexbot" / "SPX_gex_one_history.json"
    path.write_text("this is not JSON")
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "structure.staged_json": "failed"}
    assert check(report, "structure.staged_json").examples[0]["file"] == str(path)


def test_uw_rows_must_point_at_a_stored_webhook(tmp_path):
    """The original's tables may come without a foreign key; gexsrv's own refuse orphans outright."""
    data = tmp_path / "legacy"
    data.mkdir()
    make_legacy_db.build(data / "gex_data.db", days=1, tickers=["SPX"], n_strikes=5)
    good, orphan = "0d9c6f3e-4b8a-4f7e-9a51-3c2d1e0f9a11", "11111111-2222-3333-4444-555555555555"
    plant(data, "CREATE TABLE universal_webhooks (id UUID, payload JSON)",
          "CREATE TABLE option_trades_events (trade_id VARCHAR, webhook_id UUID)",
          f"INSERT INTO universal_webhooks VALUES ('{good}', '{{}}')",
          f"INSERT INTO option_trades_events VALUES ('t1', '{good}'), ('t2', '{orphan}')")
    report = run(data)
    assert problems(report) == {**CLEAN, "links.uw_links": "failed"}
    assert check(report, "links.uw_links").examples == [
        {"table": "option_trades_events", "rowid": 1, "webhook_id": orphan}]


def test_a_value_changed_in_a_snapshots_file_is_named_with_its_kind_key_and_field(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data, kind="snapshots")
    frame = pl.read_parquet(path)
    ts = MS + 5 * 60_000
    _rewrite(path, frame.with_columns(zero_gamma=pl.when(pl.col("timestamp") == ts).then(1.5).otherwise("zero_gamma")))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.parquet_rows": "failed"}
    found = check(report, "crosscheck.parquet_rows")
    assert (found.count, found.examples) == (1, [{
        "kind": "snapshots", "ticker": "SPX", "endpoint": "gex_zero", "timestamp": ts, "field": "zero_gamma",
        "duckdb": "7082.5", "parquet": "1.5", "time": "2026-04-29T14:05:00.000+00:00"}])
    assert "missing from DuckDB or from the lake" in found.detail


def test_a_doubled_maxchange_row_and_a_missing_majors_file_are_reported_row_by_row(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data, kind="maxchange")
    frame = pl.read_parquet(path)
    _rewrite(path, pl.concat([frame, frame.filter(pl.col("timestamp") == MS)]))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "crosscheck.parquet_rows": "failed"}
    found = check(report, "crosscheck.parquet_rows")
    assert [(e["kind"], e["timestamp"], e["field"], e["duckdb"], e["parquet"]) for e in found.examples] == [
        ("maxchange", MS, "copies", "1", "2")]
    lake_file(data, kind="majors").unlink()
    found = check(run(data, sample=EVERYTHING), "crosscheck.parquet_rows")
    assert found.count == STEPS + 1  # every majors row of the day, and the doubled one
    assert [(e["kind"], e["timestamp"], e["field"], e["duckdb"], e["parquet"]) for e in found.examples] == [
        ("majors", MS + i * 60_000, "row", "present", "missing") for i in range(5)]


def test_a_mistyped_snapshots_file_is_reported_by_the_schema_check_alone(clean, tmp_path):
    data = copy_of(clean, tmp_path)
    path = lake_file(data, "SPX", "gex_one", "snapshots")
    _rewrite(path, pl.read_parquet(path).with_columns(pl.col("min_dte").cast(pl.Float64)).drop("source"))
    report = run(data, sample=EVERYTHING)
    assert problems(report) == {**CLEAN, "structure.parquet_schema": "failed"}
    assert check(report, "structure.parquet_schema").examples == [
        {"file": str(path), "column": "min_dte", "expected": "INTEGER", "found": "DOUBLE"},
        {"file": str(path), "column": "source", "expected": "VARCHAR", "found": None}]
