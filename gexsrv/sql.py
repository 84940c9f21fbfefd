"""The query runner of GET /api/sql: one read-only query of a client's, within a time and a row limit.

It needs nothing but a DuckDB connection of its own (Store.cursor), so it can move with the database into another
process. The guards, each checked by DuckDB itself:
- one statement, a query: DuckDB's parser (extract_statements) must find exactly one, of type SELECT (which
  covers WITH, FROM-first, VALUES, DESCRIBE, SHOW and SUMMARIZE);
- it reads only the database: in its parse tree (json_serialize_sql) every table is a table or view of the
  catalog or a CTE of the query, every table function one of TABLE_FUNCTIONS. So no file reader (read_csv,
  read_parquet, read_text, glob, FROM 'file.parquet', ...), and no Python object (a replacement scan);
- it writes nothing: it runs in a READ ONLY transaction, which refuses even a sequence's nextval();
- it reaches no network: the store's connection installs and loads no extension on demand (Store.config).

`SET enable_external_access = false` would refuse files and network for every statement, but it is global to the
database instance, cannot be undone, and breaks the server's own use of DuckDB: ingest inserts its Arrow batches
by replacement scans (gexwrite, uw.writer), which it turns off, and GET /integrity's validator reads the lake and
the staged and archived files on the server's cursor.

What a slow query costs the writer: it runs for at most the time limit, then it is interrupted. DuckDB's MVCC
lets ingest commit meanwhile, but the two share the cores (gexsrv.sqlworker runs it at low priority),
DuckDB's memory limit (a query that needs much memory leaves less cache for the writer) and the WAL, which is not
checkpointed while a read transaction is open. README, GET /api/sql, has the measured cost.
"""

import threading

import duckdb
import msgspec
import pyarrow as pa

BATCH_ROWS = 2048
# Table functions that read only the database or compute rows: no file, no SQL given as text.
TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "json_each", "json_tree", "pg_timezone_names",
    "icu_calendar_names", "duckdb_columns", "duckdb_constraints", "duckdb_databases", "duckdb_functions",
    "duckdb_indexes", "duckdb_keywords", "duckdb_schemas", "duckdb_sequences", "duckdb_tables", "duckdb_types",
    "duckdb_views", "pragma_table_info", "pragma_version",
})
CATALOG = "SELECT lower(table_name) FROM duckdb_tables() UNION SELECT lower(view_name) FROM duckdb_views()"


class Refused(Exception):
    """Not a query this route runs; the message says why."""


class TimedOut(Exception):
    """The query ran past the time limit and was interrupted."""


class Result:
    """The rows of a query (an Arrow table of at most max_rows) and whether more were cut off."""

    def __init__(self, columns, types, table, truncated, max_rows):
        self.columns, self.types, self.table = columns, types, table
        self.truncated, self.max_rows = truncated, max_rows


def query_of(con, sql):
    """The one SELECT statement of sql; Refused otherwise, duckdb.ParserException when it cannot be parsed."""
    statements = con.extract_statements(sql)
    if len(statements) != 1:
        raise Refused(f"expected one SQL statement, got {len(statements)}")
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        raise Refused(f"only a query (SELECT) is run here, not {statement.type.name}")
    return statement.query


def _nodes(tree):
    """Every dict of a parse tree, however deep (a walk of its own: deep trees exceed Python's recursion)."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_sources(con, query):
    """Refused when the query reads anything but the database (see the module's docstring)."""
    serialized = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [query]).fetchone()[0]
    try:
        tree = msgspec.json.decode(serialized)
    except msgspec.DecodeError:  # nested past the decoder's depth limit
        raise Refused("the query is nested too deeply to be checked") from None
    if tree.get("error"):
        raise Refused(tree["error_message"])
    nodes = list(_nodes(tree))
    ctes = {entry["key"].lower() for node in nodes if "cte_map" in node for entry in node["cte_map"]["map"]}
    catalog = {name for (name,) in con.execute(CATALOG).fetchall()}
    for node in nodes:
        if node.get("type") == "TABLE_FUNCTION":
            name = node["function"]["function_name"]
            if name.lower() not in TABLE_FUNCTIONS:
                raise Refused(f"table function {name} is not allowed here: this route reads only the database "
                              f"(allowed: {', '.join(sorted(TABLE_FUNCTIONS))})")
        elif node.get("type") == "BASE_TABLE":
            _check_table(node["table_name"], catalog, ctes)


def _check_table(name, catalog, ctes):
    # A name that is no table, view or CTE would be read as a file (FROM 'x.csv') or a Python object; a CTE
    # named like a file does not count, since outside its scope the same name is the file.
    lower = name.lower()
    if lower in catalog or (lower in ctes and not any(c in name for c in "./\\:")):
        return
    raise Refused(f"{name!r} is not a table or view of the database: this route reads only the database "
                  "(files and URLs are refused)")


def run(con, sql, max_rows, timeout_s):
    """The Result of sql on con, a connection of the caller's own; Refused, TimedOut, or the duckdb.Error of a
    query DuckDB cannot parse, bind or run. con is left in no transaction."""
    timer = threading.Timer(timeout_s, _interrupt, [con])
    con.execute("BEGIN TRANSACTION READ ONLY")
    try:
        query = query_of(con, sql)
        check_sources(con, query)
        timer.start()
        return _fetch(con.sql(query), max_rows)
    except duckdb.InterruptException:
        raise TimedOut(f"the query ran past the time limit of {timeout_s:g} s (sql_timeout_ms) and was stopped")
    finally:
        timer.cancel()
        _end(con)


def _end(con):
    try:
        con.execute("ROLLBACK")
    except duckdb.Error:  # a connection broken under the query: its error is the one that matters
        pass


def _interrupt(con):
    try:
        con.interrupt()
    except duckdb.Error:  # the query ended, and its connection with it, as the timer went off
        pass


def _fetch(relation, max_rows):
    """At most max_rows rows of relation, read as they are made: a huge result is never computed whole."""
    columns, types = relation.columns, [str(t) for t in relation.types]
    reader = relation.to_arrow_reader(BATCH_ROWS)
    batches, rows = [], 0
    for batch in reader:
        batches.append(batch)
        rows += batch.num_rows
        if rows > max_rows:
            break
    table = pa.Table.from_batches(batches, schema=reader.schema)
    return Result(columns, types, table.slice(0, max_rows), rows > max_rows, max_rows)
