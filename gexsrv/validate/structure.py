"""Schema checks: DuckDB tables against gexsrv.schema's DDL, Parquet files against the lake's layout.

A database gexsrv never opened (no gexsrv_migrations table) is held to the legacy tables only; one it adopted
must hold every table and column the DDL creates. Extra columns (later legacy additions) are fine.
"""

import functools

import duckdb

from gexsrv import schema
from gexsrv.validate.report import EXAMPLES, result, skipped


@functools.cache
def expected_tables(adopted):
    """{table: {column: type}} as gexsrv.schema creates them in an empty database; built once per process (60 ms
    of CPU, a sixth of a check of a small database), so callers only read it."""
    con = duckdb.connect()
    try:
        if adopted:
            schema.apply(con)
        else:
            for ddl in schema.LEGACY_TABLES:
                con.execute(ddl)
        expected = {}
        for table, column, sqltype in con.execute(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE schema_name = 'main' AND NOT internal ORDER BY table_name, column_index").fetchall():
            expected.setdefault(table, {})[column] = sqltype
        return expected
    finally:
        con.close()


def duckdb_schema(ctx):
    name = "structure.duckdb_schema"
    if not ctx.tables:
        return skipped(name, "no DuckDB database")
    adopted = "gexsrv_migrations" in ctx.tables
    problems = []
    for table, columns in expected_tables(adopted).items():
        found = ctx.tables.get(table)
        if found is None:
            problems.append({"table": table, "column": None, "expected": "table", "found": None})
            continue
        problems.extend({"table": table, "column": column, "expected": sqltype, "found": found.get(column)}
                        for column, sqltype in columns.items() if found.get(column) != sqltype)
    rows = [(len(problems), *p.values()) for p in problems]
    layout = "gexsrv tables" if adopted else "legacy tables (not adopted by gexsrv yet)"
    return result(name, rows, ["table", "column", "expected", "found"], unit="columns", checked=layout)


def parquet_schema(ctx):
    """Files listed here are left out of the other lake checks (sources.Context), so each is reported once."""
    name = "structure.parquet_schema"
    if not ctx.lake_files:
        return skipped(name, "no Parquet files")
    problems = ctx.lake_problems
    rows = [(len(problems), *p) for p in problems[:EXAMPLES]]
    return result(name, rows, ["file", "column", "expected", "found"], unit="columns",
                  checked=f"{len(ctx.lake_files)} Parquet files")


def staged_json(ctx):
    name = "structure.staged_json"
    if not ctx.staged_files:
        return skipped(name, "no staged history JSON")
    rows = [(len(ctx.staged_problems), *p) for p in ctx.staged_problems[:EXAMPLES]]
    return result(name, rows, ["file", "problem"], unit="files",
                  checked=f"{len(ctx.staged_files)} staged files are JSON arrays or objects")


CHECKS = [duckdb_schema, parquet_schema, staged_json]
