"""A staged history file -> gex_snapshots and gex_strikes, parsed by DuckDB in C++ (no Python objects per row).

Runs on its own cursor, in a worker thread, in ONE transaction: a truncated or invalid file raises and nothing
of it stays. Snapshots whose (ticker, endpoint, timestamp) is already stored are skipped (ON CONFLICT DO NOTHING,
on the unique index gex_snapshots_key), and so are their strikes; existing rows are never changed.
Invalid values (non-finite numbers, strike rows of fewer than 2 numbers, impossible timestamps) raise through
DuckDB's error(), so they fail the whole file.
"""

from gexsrv.decode import EARLIEST_MS, LATEST_MS, SECONDS_BELOW


class InvalidFile(Exception):
    """The file is not a history file gexsrv can import; nothing of it was stored."""


NUMBERS = ["spot", "zero_gamma", "net_gex", "sum_gex_vol", "sum_gex_oi", "major_pos_vol", "major_pos_oi",
           "major_neg_vol", "major_neg_oi", "delta_risk_reversal"]
FIELDS = {"timestamp": "VARCHAR", "min_dte": "INTEGER", "sec_min_dte": "INTEGER", "max_priors": "JSON",
          "strikes": "JSON[]", **{name: "DOUBLE" for name in NUMBERS}}
JSON_NUMBER = "('BIGINT', 'UBIGINT', 'DOUBLE')"


def _columns_literal():
    return "{" + ", ".join(f"{name}: '{sqltype}'" for name, sqltype in FIELDS.items()) + "}"


def _struct_type():
    return "STRUCT(" + ", ".join(f"{name} {sqltype}" for name, sqltype in FIELDS.items()) + ")[]"


def _quote(text):
    return "'" + text.replace("'", "''") + "'"


def shape(path):
    """'array' for the usual [...] file, else 'data' for {"data": [...]} or 'object' for one snapshot."""
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"["):
        return "array"
    if head.startswith(b"{"):
        return "object"  # refined by the caller, which asks DuckDB whether `data` is there
    raise InvalidFile("the file is neither a JSON array nor a JSON object")


def scan(cur, path):
    """A FROM clause yielding one row per snapshot with FIELDS plus `ordinality` (its position in the file)."""
    kind = shape(path)
    if kind == "object":
        has_data = cur.execute(
            f"SELECT data IS NOT NULL FROM read_json({_quote(path)}, format='unstructured', columns={{data: 'JSON'}})"
        ).fetchone()[0]
        kind = "data" if has_data else "object"
    if kind == "array":
        return f"read_json({_quote(path)}, format='array', columns={_columns_literal()}) WITH ORDINALITY"
    if kind == "object":
        return f"read_json({_quote(path)}, format='unstructured', columns={_columns_literal()}) WITH ORDINALITY"
    return (f"(SELECT unnest(t.u), t.ordinality FROM read_json({_quote(path)}, format='unstructured', "
            f"columns={{data: '{_struct_type()}'}}) r, unnest(r.data) WITH ORDINALITY AS t(u, ordinality))")


def _finite(expr, what):
    return (f"CASE WHEN NOT isfinite({expr}) THEN error('snapshot ' || ordinality || ': {what} is not a finite "
            f"number') ELSE {expr} END")


TIMESTAMP_MS = f"""(CASE
    WHEN TRY_CAST(timestamp AS DOUBLE) IS NULL THEN epoch_ms(TRY_CAST(timestamp AS TIMESTAMPTZ))
    WHEN NOT isfinite(TRY_CAST(timestamp AS DOUBLE)) THEN NULL
    WHEN abs(TRY_CAST(timestamp AS DOUBLE)) < {SECONDS_BELOW} THEN round(TRY_CAST(timestamp AS DOUBLE) * 1000)
    ELSE round(TRY_CAST(timestamp AS DOUBLE)) END)::BIGINT"""

ROWS = f"""
    SELECT ordinality AS ord,
        CASE WHEN {TIMESTAMP_MS} BETWEEN {EARLIEST_MS} AND {LATEST_MS - 1} THEN {TIMESTAMP_MS}
             ELSE error('snapshot ' || ordinality || ': timestamp ' || coalesce(timestamp, 'null')
                        || ' is missing or outside 2000-01-01 .. 2100-01-01') END AS timestamp,
        {", ".join(f"{_finite(name, name)} AS {name}" for name in NUMBERS)},
        min_dte, sec_min_dte,
        CASE WHEN max_priors IS NULL THEN NULL
             WHEN json_type(max_priors) = 'ARRAY' AND list_bool_and(list_transform(
                  max_priors::DOUBLE[][], lambda pair: len(pair) = 2 AND list_bool_and(
                  list_transform(pair, lambda x: isfinite(x)))))
             THEN json(max_priors)::VARCHAR
             ELSE error('snapshot ' || ordinality || ': max_priors must be [strike, value] pairs') END AS max_priors
    FROM {{scan}}"""

SNAPSHOTS = """
    INSERT INTO gex_snapshots BY NAME
    SELECT timestamp, $ticker AS ticker, $endpoint AS endpoint, spot AS spot_price, zero_gamma,
        coalesce(sum_gex_vol, net_gex) AS net_gex, coalesce(sum_gex_vol, net_gex) AS sum_gex_vol, sum_gex_oi,
        min_dte, sec_min_dte, major_pos_vol, major_pos_oi, major_neg_vol, major_neg_oi, delta_risk_reversal,
        max_priors, epoch_ms(now())::BIGINT AS received_at, $source AS source
    FROM hist_rows
    WHERE ord IN (SELECT ord FROM hist_first)
    ON CONFLICT DO NOTHING
    RETURNING timestamp"""


def _strike_value(expr, what, optional):
    missing = f"WHEN {expr} IS NULL OR json_type({expr}) = 'NULL' THEN NULL " if optional else ""
    return (f"CASE {missing}WHEN json_type({expr}) IN {JSON_NUMBER} AND isfinite({expr}::DOUBLE) "
            f"THEN {expr}::DOUBLE ELSE error('snapshot ' || s.ordinality || ': strike row ' || r::VARCHAR "
            f"|| ' has no finite {what}') END")


STRIKES = f"""
    INSERT INTO gex_strikes BY NAME
    SELECT n.timestamp, $ticker AS ticker, $endpoint AS endpoint,
        {_strike_value("(r->0)", "strike", False)} AS strike,
        {_strike_value("(r->1)", "gamma", False)} AS gamma,
        {_strike_value("(r->2)", "oi_gamma", True)} AS oi_gamma,
        CASE WHEN (r->3) IS NULL OR json_type((r->3)) = 'NULL' THEN NULL
             WHEN json_type((r->3)) = 'ARRAY'
                  AND list_bool_and(list_transform(((r->3))::DOUBLE[], lambda x: isfinite(x))) IS NOT false
             THEN ((r->3))::DOUBLE[]
             ELSE error('snapshot ' || s.ordinality || ': strike row ' || r::VARCHAR
                        || ' has priors that are not finite numbers') END AS priors
    FROM {{scan}} s JOIN hist_new n ON s.ordinality = n.ord, unnest(s.strikes) AS u(r)"""


def import_file(cur, path, ticker, endpoint, source):
    """Import one staged file in one transaction; return (snapshots stored, strike rows stored)."""
    cur.execute("SET TimeZone = 'UTC'")  # a timestamp string without an offset means UTC
    cur.begin()
    try:
        source_sql = scan(cur, path)
        cur.execute(f"CREATE TEMP TABLE hist_rows AS {ROWS.format(scan=source_sql)}")
        # the first snapshot of each timestamp wins when a file repeats one
        cur.execute("CREATE TEMP TABLE hist_first AS SELECT min(ord) AS ord FROM hist_rows GROUP BY timestamp")
        stored = cur.execute(SNAPSHOTS, {"ticker": ticker, "endpoint": endpoint, "source": source}).fetchall()
        cur.execute("CREATE TEMP TABLE hist_new AS SELECT h.ord, h.timestamp FROM hist_rows h "
                    "JOIN hist_first USING (ord) SEMI JOIN (SELECT unnest($stored) AS timestamp) USING (timestamp)",
                    {"stored": [ts for (ts,) in stored]})
        keys = {"ticker": ticker, "endpoint": endpoint}
        strikes = cur.execute(STRIKES.format(scan=source_sql), keys).fetchone()[0] if stored else 0
        for table in ("hist_rows", "hist_first", "hist_new"):
            cur.execute(f"DROP TABLE {table}")
        cur.commit()
    except Exception as exc:
        cur.rollback()
        if isinstance(exc, InvalidFile):
            raise
        raise InvalidFile(_short(exc)) from exc
    return len(stored), strikes


def _short(exc):
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.removeprefix("Invalid Input Error: ")
