"""GET /api/heatmap and /api/days over HTTP against a real server holding a generated day (tests/dayfixture.py):
the grid's cells, the bucketing and the level series against DuckDB queries of the tests' own, the band and the
window, CSV and Parquet equal to the JSON, the lake's strike files for a day the database no longer holds, and a
400 naming the parameter for every bad one."""

import io

import duckdb
import polars as pl
import pytest

from dayfixture import (DAY_MS, DAY_QUERY, DAY_START, LEVELS, OPEN_MS, cells_of, day_snapshots, expected, import_day,
                        reference)
from helpers import HISTORY_DAY, TS, Server, snapshot



@pytest.fixture(scope="module")
def snaps():
    return day_snapshots()


@pytest.fixture(scope="module")
def ref(snaps):
    con = reference(snaps)
    yield con
    con.close()


@pytest.fixture(scope="module")
def day_server(tmp_path_factory, snaps):
    data = tmp_path_factory.mktemp("day") / "data"
    import_day(data, snaps)
    srv = Server(data).start()
    yield srv
    srv.stop()


def heatmap(server, query):
    reply = server.get(f"/api/heatmap?{query}")
    assert reply.status == 200, reply.body
    return reply.json()


def assert_matches(reply, want, approx=False):
    cells, nulls = cells_of(reply)
    assert reply["times"] == want["times"]
    assert reply["strikes"] == want["strikes"]
    assert cells == (pytest.approx(want["cells"], rel=1e-12) if approx else want["cells"])
    assert nulls == len(want["times"]) * len(want["strikes"]) - len(want["cells"])
    assert reply["series"] == want["series"]


def test_a_day_by_the_minute_is_each_buckets_last_snapshot(day_server, ref):
    reply = heatmap(day_server, DAY_QUERY)
    assert {k: reply[k] for k in ("ticker", "endpoint", "from", "to", "bucket_s", "measure", "agg", "source")} == {
        "ticker": "SPX", "endpoint": "gex_zero", "from": DAY_START, "to": DAY_START + DAY_MS, "bucket_s": 60,
        "measure": "vol", "agg": "last", "source": "database"}
    want = expected(ref, DAY_START, DAY_START + DAY_MS)
    assert len(want["times"]) == 20 and set(want["series"]["snapshots"]) == {12}
    assert_matches(reply, want)
    _, nulls = cells_of(reply)
    assert nulls > 0  # the strikes shift with spot: some buckets lack some strikes


@pytest.mark.parametrize("query, args", [
    ("&measure=oi", {"measure": "oi"}),
    ("&agg=mean&bucket_s=120", {"agg": "mean", "bucket_s": 120}),
    ("&bucket_s=23", {"bucket_s": 23}),  # buckets that straddle the minute, aligned to the epoch
    ("&band=0.1", {"band": 0.1}),
    ("&min_strike=6790&max_strike=6805.5&measure=oi&agg=mean", {"low": 6790, "high": 6805.5, "measure": "oi",
                                                                 "agg": "mean"}),
    ("&min_strike=6800", {"low": 6800}),
])
def test_measures_aggregates_buckets_and_bands(day_server, ref, query, args):
    reply = heatmap(day_server, DAY_QUERY + query)
    want = expected(ref, DAY_START, DAY_START + DAY_MS, **args)
    assert want["cells"] and len(want["strikes"]) < 40
    assert_matches(reply, want, approx=args.get("agg") == "mean")


def test_from_and_to_narrow_the_window_inside_its_buckets(day_server, ref):
    since, until = OPEN_MS + 95_000, OPEN_MS + 605_000  # mid-bucket at both ends: those buckets are partial
    reply = heatmap(day_server, f"ticker=spx&endpoint=classic/zero&from={since}&to={until // 1000}")
    assert (reply["from"], reply["to"], reply["endpoint"]) == (since, until, "gex_zero")
    want = expected(ref, since, until)
    assert want["series"]["snapshots"][0] == 5 and want["series"]["snapshots"][-1] == 1
    assert_matches(reply, want)


def test_a_window_without_snapshots_is_empty(day_server):
    reply = heatmap(day_server, "ticker=SPX&endpoint=gex_zero&date=2025-10-22")
    assert (reply["source"], reply["times"], reply["strikes"], reply["grid"]) == (None, [], [], [])
    assert reply["series"] == {name: [] for name in ("at", "snapshots", *LEVELS)}


def test_a_level_the_last_snapshot_lacks_is_null_not_an_earlier_ones(server):
    first = snapshot(timestamp=TS, n_strikes=3)
    last = snapshot(timestamp=TS + 5, n_strikes=3, spot=7140.0, zero_gamma=None, major_pos_oi=None)
    for payload in (first, last):
        assert server.post("/gex?ack=ingested", payload).status == 202
    reply = heatmap(server, f"ticker=SPX&endpoint=gex_zero&from={TS}&to={TS + 60}")
    assert reply["series"] == {"at": [(TS + 5) * 1000], "snapshots": [2], "spot": [7140.0], "zero_gamma": [None],
                               "major_pos_vol": [last["major_pos_vol"]], "major_pos_oi": [None],
                               "major_neg_vol": [last["major_neg_vol"]], "major_neg_oi": [last["major_neg_oi"]]}
    assert reply["grid"] == [[row[1] for row in last["strikes"]]]


def frame_of(reply):
    """The JSON reply as the export's table: a row per time, the series, a column per strike."""
    columns = {"time": reply["times"], **reply["series"]}
    for j, strike in enumerate(reply["strikes"]):
        columns[str(strike)] = [row[j] for row in reply["grid"]]
    return pl.DataFrame(columns, schema={name: pl.Int64 if name in ("time", "at", "snapshots") else pl.Float64
                                         for name in columns})


@pytest.mark.parametrize("form, read, kind", [("csv", pl.read_csv, "text/csv; charset=utf-8"),
                                               ("parquet", pl.read_parquet, "application/vnd.apache.parquet")])
def test_csv_and_parquet_hold_the_json_grid(day_server, form, read, kind):
    query = DAY_QUERY + "&band=0.2&bucket_s=300"
    reply = heatmap(day_server, query)
    exported = day_server.get(f"/api/heatmap?{query}&format={form}")
    assert exported.status == 200
    assert exported.headers["Content-Type"] == kind
    assert exported.headers["Content-Disposition"] == f'attachment; filename="SPX_gex_zero_20251021_vol.{form}"'
    frame = read(io.BytesIO(exported.body))
    if form == "csv":  # CSV has no types: its empty cells read as strings where a column holds no number
        frame = frame.cast({name: dtype for name, dtype in frame_of(reply).schema.items()})
    assert frame.columns == ["time", "at", "snapshots", *LEVELS, *map(str, reply["strikes"])]
    assert frame.equals(frame_of(reply))


def test_the_page_is_served_as_the_status_page_is(day_server):
    page, status_page = day_server.get("/day"), day_server.get("/")
    assert (page.status, page.headers["Content-Type"]) == (200, "text/html")
    for header in ("Content-Type", "Content-Security-Policy", "X-Content-Type-Options", "Cache-Control"):
        assert page.headers[header] == status_page.headers[header]
    assert b'<script src="/web/day.js" defer></script>' in page.body
    assert day_server.get("/day/").body == page.body
    assert day_server.request("HEAD", "/day").status == 200
    script = day_server.get("/web/day.js")
    assert script.status == 200 and script.headers["Content-Type"] in ("text/javascript", "application/javascript")


def test_days_lists_the_stored_day(day_server, snaps):
    reply = day_server.get("/api/days")
    assert reply.status == 200
    assert reply.json() == {"days": [{"ticker": "SPX", "endpoint": "gex_zero", "date": HISTORY_DAY,
                                      "snapshots": len(snaps), "first": OPEN_MS,
                                      "last": snaps[-1]["timestamp"] * 1000, "source": "database"}]}
    assert day_server.get("/api/days?ticker=NDX").json() == {"days": []}
    assert day_server.get("/api/days?ticker=SPX&endpoint=zero").json() == reply.json()


def test_a_day_only_the_lake_holds_is_read_from_its_files(tmp_path, snaps, ref):
    data = tmp_path / "data"
    import_day(data, snaps)  # the import exports the day to the lake, and compacts it (a past day)
    folder = data / "parquet/gexbot/SPX/gex_zero"
    assert {path.name for path in folder.iterdir()} >= {"20251021.strikes.parquet", "20251021.snapshots.parquet"}
    queries = [DAY_QUERY + "&min_strike=6790&max_strike=6830&bucket_s=120", DAY_QUERY + "&band=0.1&agg=mean"]
    server = Server(data).start()
    from_database = [heatmap(server, query) for query in queries]
    server.stop()
    with duckdb.connect(str(data / "gex_data.db")) as db:  # the day leaves the database
        db.execute("DELETE FROM gex_strikes")
        db.execute("DELETE FROM gex_snapshots")
    server.start()
    try:
        for query, want in zip(queries, from_database):
            found = heatmap(server, query)
            assert {**found, "grid": None} == {**want, "source": "lake", "grid": None}
            assert cells_of(found)[0] == pytest.approx(cells_of(want)[0], rel=1e-12)  # a mean's sums
        assert_matches(from_database[0], expected(ref, DAY_START, DAY_START + DAY_MS, 120, low=6790, high=6830))
        assert server.get("/api/days").json() == {"days": [
            {"ticker": "SPX", "endpoint": "gex_zero", "date": HISTORY_DAY, "snapshots": None, "first": None,
             "last": None, "source": "lake"}]}
    finally:
        server.stop()

    # A lake of strike rows only (as gexsrv wrote it before it kept snapshots there): no levels, no band.
    (folder / "20251021.snapshots.parquet").unlink()
    server.start()
    try:
        strikes_only = heatmap(server, queries[0])
        assert {**strikes_only, "series": None} == {**from_database[0], "source": "lake", "series": None}
        series = strikes_only["series"]
        assert (series["at"], series["snapshots"]) == (from_database[0]["series"]["at"],
                                                        from_database[0]["series"]["snapshots"])
        assert all(series[name] == [None] * len(strikes_only["times"]) for name in LEVELS)
        refused = server.get(f"/api/heatmap?{queries[1]}")
        assert refused.status == 400
        assert refused.json()["field"] == "band" and "strike files only" in refused.json()["error"]
    finally:
        server.stop()


TOO_LONG = "from=2025-10-01&to=2025-10-09"
BAD = [
    ("endpoint=gex_zero&date=2025-10-21", "ticker", "ticker is required"),
    ("ticker=SPX&date=2025-10-21", "endpoint", "endpoint is required"),
    ("ticker=-SPX&endpoint=gex_zero&date=2025-10-21", "ticker", "ticker"),
    ("ticker=SPX&endpoint=maxchange&date=2025-10-21", "endpoint", "expected an endpoint"),
    ("ticker=SPX&endpoint=gex_zero", "date", "date is required unless both from and to are given"),
    ("ticker=SPX&endpoint=gex_zero&from=2025-10-21T13:30", "date", "date is required"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-32", "date", "date must be a day YYYY-MM-DD"),
    ("ticker=SPX&endpoint=gex_zero&date=21.10.2025", "date", "date must be a day YYYY-MM-DD"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-W43-2", "date", "date must be a day YYYY-MM-DD"),
    ("ticker=SPX&endpoint=gex_zero&date=1999-12-31", "date", "from 2000-01-01"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&from=noon", "from", "expected epoch seconds or milliseconds"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&to=2025-10-21T00:00", "from", "from must be before to"),
    (f"ticker=SPX&endpoint=gex_zero&{TOO_LONG}&bucket_s=600", "to", "7 days apart at most"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&bucket_s=0", "bucket_s", "from 1 to 86400"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&bucket_s=1.5", "bucket_s", "whole number"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&bucket_s=86401", "bucket_s", "from 1 to 86400"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&bucket_s=10", "bucket_s", "more than 5000 buckets of 10 s"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&measure=gamma", "measure", "measure must be one of vol, oi"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&agg=max", "agg", "agg must be one of last, mean"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&band=0", "band", "above 0 and at most 100"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&band=101", "band", "above 0 and at most 100"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&band=wide", "band", "finite number"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&band=2&max_strike=7000", "band", "not both"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&min_strike=nan", "min_strike", "finite number"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&max_strike=inf", "max_strike", "finite number"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&min_strike=7000&max_strike=6000", "min_strike",
     "min_strike must not be above max_strike"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&format=xlsx", "format", "format must be one of json, csv"),
    ("ticker=SPX&endpoint=gex_zero&date=2025-10-21&strikes=10", "strikes", "unknown parameter 'strikes'"),
]


@pytest.mark.parametrize("query, field, said", BAD, ids=[f"{field}:{said[:24]}" for _, field, said in BAD])
def test_a_bad_parameter_is_a_400_naming_it(day_server, query, field, said):
    reply = day_server.get(f"/api/heatmap?{query}")
    assert reply.status == 400, reply.body
    body = reply.json()
    assert (body["status"], body["field"]) == ("error", field)
    assert said in body["error"]


def test_days_refuses_a_bad_parameter(day_server):
    for query, field in [("ticker=..", "ticker"), ("endpoint=maxchange", "endpoint"), ("date=2025-10-21", "date")]:
        reply = day_server.get(f"/api/days?{query}")
        assert (reply.status, reply.json()["field"]) == (400, field)
