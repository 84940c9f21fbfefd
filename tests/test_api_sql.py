"""GET /api/sql: a read-only query of the running server's database (gexsrv.sql), its limits, formats and refusals."""

import io
import json
import re
import threading
import urllib.parse

import polars as pl
import pytest

from helpers import README, TOKEN, TS, eventually, quick_start_body, snapshot

STAMPS = (TS, TS + 60)
SNAPSHOTS = "SELECT ticker, endpoint, timestamp, source, spot_price, zero_gamma, sum_gex_vol FROM gex_snapshots"
STRIKES = "SELECT timestamp, strike, gamma, oi_gamma, priors FROM gex_strikes ORDER BY timestamp, strike"
# A query that runs for minutes unless it is stopped.
ENDLESS = "SELECT count(*) FROM range(1000000000) a, range(1000000) b"


def sql(server, query, headers=None, **params):
    return server.request("GET", "/api/sql?" + urllib.parse.urlencode({"q": query, **params}), headers=headers)


def error(message, field="q"):
    return {"status": "error", "error": message, "field": field}


@pytest.fixture(scope="module")
def stored(shared_server):
    """The shared server with two SPX snapshots stored."""
    for timestamp in STAMPS:
        assert shared_server.post("/gex?ack=ingested", snapshot(timestamp=timestamp)).status == 202
    return shared_server


@pytest.fixture
def limited(start_server):
    """Rows cut at 3; time enough for a loaded machine to make the first of a huge result's rows."""
    return start_server(None, "--sql-max-rows", "3", "--sql-timeout-ms", "60000")


@pytest.fixture
def hasty(start_server):
    return start_server(None, "--sql-timeout-ms", "300")


def test_stored_snapshots_come_back_whole(stored):
    body = snapshot()
    reply = sql(stored, SNAPSHOTS + " ORDER BY timestamp")
    assert (reply.status, reply.headers["Content-Type"], reply.headers["X-Truncated"]) == (
        200, "application/json", "false")
    assert reply.json() == {
        "columns": ["ticker", "endpoint", "timestamp", "source", "spot_price", "zero_gamma", "sum_gex_vol"],
        "types": ["VARCHAR", "VARCHAR", "BIGINT", "VARCHAR", "DOUBLE", "DOUBLE", "DOUBLE"],
        "rows": [["SPX", "gex_zero", ts * 1000, "live", body["spot"], body["zero_gamma"], body["sum_gex_vol"]]
                 for ts in STAMPS],
        "truncated": False, "max_rows": 10000}


def test_json_csv_and_parquet_hold_the_same_strike_rows(stored):
    expected = [[ts * 1000, *row] for ts in STAMPS for row in snapshot()["strikes"]]
    as_json = sql(stored, STRIKES)
    assert as_json.json()["rows"] == expected
    as_csv = sql(stored, STRIKES, _format="csv")
    assert (as_csv.status, as_csv.headers["Content-Type"]) == (200, "text/csv; charset=utf-8")
    csv_rows = pl.read_csv(io.BytesIO(as_csv.body)).rows()
    assert [[*row[:4], json.loads(row[4])] for row in csv_rows] == expected  # a list is its JSON text in CSV
    as_parquet = sql(stored, STRIKES, _format="parquet")
    assert (as_parquet.status, as_parquet.headers["Content-Type"]) == (200, "application/vnd.apache.parquet")
    frame = pl.read_parquet(io.BytesIO(as_parquet.body))
    assert frame.columns == ["timestamp", "strike", "gamma", "oi_gamma", "priors"]
    assert [list(row) for row in frame.rows()] == expected


def test_values_json_has_no_type_for_are_made_json_safe(stored):
    reply = sql(stored, "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, 1.25::DECIMAL(5, 2) AS d, "
                        "TIMESTAMPTZ '2026-04-29 22:00:00+02' AS tz, TIMESTAMP '2026-04-29 20:00:00' AS ts, "
                        "DATE '2026-04-29' AS day, [1.5, NULL] AS l, {'a': 1} AS s, '\\xAA'::BLOB AS b, NULL AS z")
    assert reply.json() == {
        "columns": ["n", "i", "d", "tz", "ts", "day", "l", "s", "b", "z"],
        "types": ["DOUBLE", "DOUBLE", "DECIMAL(5,2)", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP", "DATE",
                  "DECIMAL(2,1)[]", "STRUCT(a INTEGER)", "BLOB", '"NULL"'],
        "rows": [[None, None, 1.25, "2026-04-29T20:00:00Z", "2026-04-29T20:00:00", "2026-04-29", [1.5, None],
                  {"a": 1}, "qg==", None]],
        "truncated": False, "max_rows": 10000}


def test_the_catalog_can_be_read(stored):
    reply = sql(stored, "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'gex_s%' ORDER BY 1")
    assert reply.json()["rows"] == [["gex_snapshots"], ["gex_strikes"]]
    described = sql(stored, "DESCRIBE gex_strikes").json()
    assert [row[:2] for row in described["rows"]][:5] == [
        ["timestamp", "BIGINT"], ["ticker", "VARCHAR"], ["strike", "DOUBLE"], ["gamma", "DOUBLE"],
        ["oi_gamma", "DOUBLE"]]


def test_a_reply_past_the_row_limit_is_cut_and_says_so(limited):
    reply = sql(limited, "FROM range(10)")
    assert (reply.status, reply.headers["X-Truncated"]) == (200, "true")
    assert reply.json() == {"columns": ["range"], "types": ["BIGINT"], "rows": [[0], [1], [2]], "truncated": True,
                            "max_rows": 3}
    assert sql(limited, "FROM range(3)").json()["truncated"] is False
    as_csv = sql(limited, "FROM range(10)", _format="csv")
    assert (as_csv.headers["X-Truncated"], as_csv.body) == ("true", b'"range"\n0\n1\n2\n')
    as_parquet = sql(limited, "FROM range(10)", _format="parquet")
    assert as_parquet.headers["X-Truncated"] == "true"
    assert pl.read_parquet(io.BytesIO(as_parquet.body)).to_dict(as_series=False) == {"range": [0, 1, 2]}
    assert sql(limited, "SELECT a.range FROM range(1000000000) a, range(1000000) b").json()["rows"] == [[0], [1], [2]]


def test_a_query_past_the_time_limit_is_stopped_while_the_server_goes_on(hasty):
    replies = []
    query = threading.Thread(target=lambda: replies.append(sql(hasty, ENDLESS)))
    query.start()
    health = hasty.get("/health")
    stored = hasty.post("/gex?ack=ingested", snapshot())
    query.join()
    assert (health.status, health.json()["status"], stored.status) == (200, "ok", 202)
    assert (replies[0].status, replies[0].json()) == (504, error(
        "the query ran past the time limit of 0.3 s (sql_timeout_ms) and was stopped"))
    assert sql(hasty, "SELECT count(*) FROM gex_snapshots").json()["rows"] == [[1]]


def test_a_shutdown_stops_the_query_running_rather_than_wait_for_it(start_server):
    srv = start_server(None, "--sql-timeout-ms", "600000")
    replies = []
    query = threading.Thread(target=lambda: replies.append(sql(srv, ENDLESS)))
    query.start()
    eventually(lambda: srv.get("/health").json()["connections"]["open"] >= 2, "the query's connection open")
    assert srv.stop() == 0  # within Server.stop's 20 s, where the query would run for hours
    query.join()
    assert (replies[0].status, replies[0].json()) == (503, {
        "status": "error", "error": "the database is not available now: the server is shutting down"})
    log = srv.log_path.read_text()
    assert ("broken DuckDB connection" not in log, "500 GET" not in log) == (True, True), log


def test_with_authentication_on_a_query_needs_the_token(start_server):
    srv = start_server(None, "--auth-token", TOKEN)
    refused = sql(srv, "SELECT 1 AS one")
    assert (refused.status, refused.json()) == (401, {
        "status": "error", "error": "missing bearer token (Authorization: Bearer <token>)"})
    allowed = sql(srv, "SELECT 1 AS one", headers={"Authorization": f"Bearer {TOKEN}"})
    assert (allowed.status, allowed.json()["rows"]) == (200, [[1]])


ONLY_THE_DATABASE = "this route reads only the database"
TABLE_FUNCTION = ("table function {} is not allowed here: " + ONLY_THE_DATABASE + " (allowed: duckdb_columns, "
                  "duckdb_constraints, duckdb_databases, duckdb_functions, duckdb_indexes, duckdb_keywords, "
                  "duckdb_schemas, duckdb_sequences, duckdb_tables, duckdb_types, duckdb_views, generate_series, "
                  "icu_calendar_names, json_each, json_tree, pg_timezone_names, pragma_table_info, pragma_version, "
                  "range, repeat, unnest)")
NOT_A_TABLE = "{!r} is not a table or view of the database: " + ONLY_THE_DATABASE + " (files and URLs are refused)"
# The lake's and the archive's shapes under a root that exists nowhere: a refusal that failed would read nothing
# (a relative path would be resolved in the server's working directory, which may be the repository's data/).
NOWHERE = "/nonexistent/gexsrv-test/data"
REFUSED = [
    ("SELECT * FROM read_csv('/etc/passwd')", TABLE_FUNCTION.format("read_csv")),
    (f"SELECT * FROM read_parquet('{NOWHERE}/parquet/**/*.parquet')", TABLE_FUNCTION.format("read_parquet")),
    ("SELECT * FROM read_json('https://example.com/x.json')", TABLE_FUNCTION.format("read_json")),
    (f"SELECT * FROM read_ndjson('{NOWHERE}/source/live/*/*.zst')", TABLE_FUNCTION.format("read_ndjson")),
    ("SELECT content FROM read_text('/etc/hostname')", TABLE_FUNCTION.format("read_text")),
    ("SELECT * FROM gex_snapshots WHERE source IN (SELECT content FROM read_blob('/etc/hostname'))",
     TABLE_FUNCTION.format("read_blob")),
    ("SELECT * FROM glob('/*')", TABLE_FUNCTION.format("glob")),
    ("FROM query('SELECT 1')", TABLE_FUNCTION.format("query")),
    (f"FROM '{NOWHERE}/parquet/x.parquet'", NOT_A_TABLE.format(f"{NOWHERE}/parquet/x.parquet")),
    ("SELECT * FROM '/etc/passwd'", NOT_A_TABLE.format("/etc/passwd")),
    ('SELECT * FROM (WITH "/etc/passwd" AS (SELECT 1) SELECT 1), "/etc/passwd"', NOT_A_TABLE.format("/etc/passwd")),
    ("SELECT * FROM no_such_table", NOT_A_TABLE.format("no_such_table")),
    ("ATTACH '/tmp/other.db' AS other", "only a query (SELECT) is run here, not ATTACH"),
    ("COPY gex_snapshots TO '/tmp/gexsrv-sql-copy.csv'", "only a query (SELECT) is run here, not COPY"),
    ("INSERT INTO gex_snapshots (ticker, timestamp) VALUES ('X', 1)", "only a query (SELECT) is run here, not INSERT"),
    ("DELETE FROM gex_snapshots", "only a query (SELECT) is run here, not DELETE"),
    ("SELECT 1; DELETE FROM gex_snapshots", "expected one SQL statement, got 2"),
    ("PRAGMA version", "only a query (SELECT) is run here, not PRAGMA"),
    ("SET threads = 4", "only a query (SELECT) is run here, not SET"),
    ("INSTALL spatial", "only a query (SELECT) is run here, not LOAD"),
    ("-- nothing but a comment", "expected one SQL statement, got 0"),
    ("SELECT nextval('gex_strikes_seq')", 'TransactionContext Error: Cannot write to database "gex_data" - '
                                          "transaction is launched in read-only mode"),
    ("SELEC 1", 'Parser Error: syntax error at or near "SELEC"\n\nLINE 1: SELEC 1\n        ^^^^^'),
    ("WITH t AS (SELECT 1 AS one) SELECT nope FROM t",
     'Binder Error: Referenced column "nope" not found in FROM clause!\nCandidate bindings: "one"'),
]


@pytest.mark.parametrize("query, why", REFUSED, ids=[q for q, _ in REFUSED])
def test_anything_but_a_query_of_the_database_gets_400_saying_why(stored, query, why):
    reply = sql(stored, query)
    assert (reply.status, reply.json()) == (400, error(why))


def test_what_a_refused_query_names_is_left_alone(stored, tmp_path):
    target = tmp_path / "copy.csv"
    assert sql(stored, f"COPY gex_strikes TO '{target}'").status == 400
    assert sql(stored, "INSERT INTO gex_snapshots (ticker, timestamp) VALUES ('X', 1)").status == 400
    assert not target.exists()
    assert sql(stored, "SELECT ticker, count(*) FROM gex_snapshots GROUP BY ALL").json()["rows"] == [["SPX", 2]]


def test_a_function_of_an_extension_not_loaded_is_not_fetched(stored):
    reply = sql(stored, "SELECT st_point(1, 2)")
    assert (reply.status, reply.json()["field"]) == (400, "q")
    assert reply.json()["error"].startswith(
        'Catalog Error: Scalar Function with name "st_point" is not in the catalog, but it exists in the spatial '
        "extension.")
    loaded = sql(stored, "SELECT count(*) FROM duckdb_functions() WHERE function_name = 'st_point'")
    assert loaded.json()["rows"] == [[0]]


@pytest.mark.parametrize("target, reply", [
    ("/api/sql", error("q is required")),
    ("/api/sql?q=", error("q is required")),
    ("/api/sql?q=SELECT+1&_format=xml", error("_format must be one of json, csv, parquet, not 'xml'", "_format")),
    ("/api/sql?q=SELECT+1&sql=SELECT+2", error("unknown parameter 'sql' (this path takes q, _format)", "sql")),
    ("/api/sql?q=SELECT+1+AS+a,+2+AS+a&_format=parquet", error(
        "column 'a' appears more than once: name each column once (AS) for Parquet", "_format")),
])
def test_bad_parameters_get_400_naming_them(stored, target, reply):
    got = stored.get(target)
    assert (got.status, got.json()) == (400, reply)


def test_the_readme_example_returns_what_it_shows(server):
    example = r'curl -sG localhost:8877/api/sql --data-urlencode "q=(.+?)"\n((?:# .+\n)+)'
    query, shown = re.search(example, README).groups()
    assert server.request("POST", "/gex?ack=ingested", quick_start_body()).status == 202
    assert sql(server, query).json() == json.loads("".join(line[2:] for line in shown.splitlines()))
