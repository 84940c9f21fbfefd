"""Checks across sources: DuckDB against the Parquet lake and the staged history JSON, and table links.

Every DuckDB row is compared with each other source by exactly one check, so one bad value is reported once:
  Parquet: `spot_parquet` compares a seeded sample of snapshots' strike rows (all sources but legacy) field by
           field, on the days the lake holds; `parquet_counts` compares strike row counts per (ticker, endpoint,
           UTC day); `parquet_rows` compares every exported snapshot, majors and maxchange row, whole (they are
           few: one per payload).
  JSON:    `live_vs_history` compares every live snapshot that the staged history also holds;
           `spot_staged_json` compares a seeded sample of the other (history-imported) snapshots.
Legacy rows (no endpoint) have no counterpart in either and are left out. Values are copied, never recomputed,
between the sources, so they must be equal exactly.
"""

from gexsrv import lakekinds
from gexsrv.validate import files
from gexsrv.validate.sources import LAKE_VIEWS
from gexsrv.validate.report import EXAMPLES, result, skipped

KEY = ["ticker", "endpoint", "timestamp"]
STRIKE_FIELDS = ["gamma", "oi_gamma", "priors"]
SNAPSHOT_FIELDS = {  # DuckDB column -> the staged JSON's value (j: v_staged_snapshots)
    "spot_price": "j.spot", "zero_gamma": "j.zero_gamma", "sum_gex_vol": "coalesce(j.sum_gex_vol, j.net_gex)",
    "sum_gex_oi": "j.sum_gex_oi", "min_dte": "j.min_dte", "sec_min_dte": "j.sec_min_dte",
    "major_pos_vol": "j.major_pos_vol", "major_pos_oi": "j.major_pos_oi", "major_neg_vol": "j.major_neg_vol",
    "major_neg_oi": "j.major_neg_oi",
}
DIFF_COLUMNS = KEY + ["strike", "field", "duckdb", "other"]


def _sample(ctx, where):
    o = ctx.options
    return (f"SELECT ticker, endpoint, timestamp FROM v_snapshots WHERE NOT legacy AND {where} "
            f"ORDER BY hash(ticker, endpoint, timestamp, {int(o.seed)}), ticker, endpoint, timestamp "
            f"LIMIT {int(o.sample)}")


def _strike_diff(keys, other):
    """Rows of v_strikes and of `other` at `keys` that differ, one row per (strike, field), as text."""
    fields = " ".join(f"WHEN d.{f} IS DISTINCT FROM o.{f} THEN '{f}'" for f in STRIKE_FIELDS)
    return f"""WITH keys AS ({keys}),
        d AS (SELECT ticker, endpoint, timestamp, strike, {', '.join(STRIKE_FIELDS)} FROM v_strikes
              SEMI JOIN keys USING (ticker, endpoint, timestamp)),
        o AS (SELECT ticker, endpoint, timestamp, strike, {', '.join(STRIKE_FIELDS)} FROM {other}
              SEMI JOIN keys USING (ticker, endpoint, timestamp)),
        diff AS (
            SELECT ticker, endpoint, timestamp, strike,
                   CASE WHEN d.strike IS NULL OR o.strike IS NULL THEN 'row' {fields} END AS field,
                   CASE WHEN d.strike IS NULL THEN 'missing'
                        ELSE concat_ws(' ', d.gamma, d.oi_gamma, d.priors::VARCHAR) END AS duckdb,
                   CASE WHEN o.strike IS NULL THEN 'missing'
                        ELSE concat_ws(' ', o.gamma, o.oi_gamma, o.priors::VARCHAR) END AS other
            FROM d FULL JOIN o USING (ticker, endpoint, timestamp, strike))
        SELECT count(*) OVER (), ticker, endpoint, timestamp, strike, field, duckdb, other FROM diff
        WHERE field IS NOT NULL ORDER BY ticker, endpoint, timestamp, strike LIMIT {EXAMPLES}"""


def _snapshot_diff(keys):
    """Snapshot fields of v_snapshots and the staged JSON at `keys` that differ, one row per field, as text."""
    names = ", ".join(f"'{c}'" for c in SNAPSHOT_FIELDS)
    ours = ", ".join(f"d.{c}::VARCHAR" for c in SNAPSHOT_FIELDS)
    theirs = ", ".join(f"({j})::VARCHAR" for j in SNAPSHOT_FIELDS.values())
    return f"""WITH keys AS ({keys})
        SELECT count(*) OVER (), ticker, endpoint, timestamp, NULL, field, duckdb, other FROM (
            SELECT d.ticker, d.endpoint, d.timestamp, unnest([{names}]) AS field,
                   unnest([{ours}]) AS duckdb, unnest([{theirs}]) AS other
            FROM v_snapshots d SEMI JOIN keys USING (ticker, endpoint, timestamp)
            JOIN v_staged_snapshots j USING (ticker, endpoint, timestamp))
        WHERE duckdb IS DISTINCT FROM other ORDER BY ticker, endpoint, timestamp, field LIMIT {EXAMPLES}"""


def _merge(name, parts, checked, columns=DIFF_COLUMNS, detail=""):
    """One CheckResult from several diff queries' rows (a check comparing both snapshots and strikes)."""
    count = sum(rows[0][0] for rows in parts if rows)
    examples = [row[1:] for rows in parts for row in rows][:EXAMPLES]
    return result(name, [(count, *row) for row in examples], columns, checked=checked, detail=detail)


def spot_parquet(ctx):
    name = "crosscheck.spot_parquet"
    if not ctx.has("v_strikes", "v_lake"):
        return skipped(name, "needs gex_strikes and Parquet files")
    if not ctx.options.sample:
        return skipped(name, "--sample 0")
    covered = ("(ticker, endpoint, timestamp // 86400000) IN "
               "(SELECT (ticker, endpoint, timestamp // 86400000) FROM v_lake)")
    rows = ctx.rows(_strike_diff(_sample(ctx, covered), "v_lake"))
    return result(name, rows, DIFF_COLUMNS,
                  checked=f"{ctx.options.sample} sampled snapshots (seed {ctx.options.seed}) against Parquet")


def spot_staged_json(ctx):
    name = "crosscheck.spot_staged_json"
    if not ctx.has("v_snapshots", "v_strikes", "v_staged_snapshots"):
        return skipped(name, "needs gex_snapshots, gex_strikes and staged history JSON")
    if not ctx.options.sample:
        return skipped(name, "--sample 0")
    keys = _sample(ctx, "source IS DISTINCT FROM 'live' AND (ticker, endpoint, timestamp) IN "
                        "(SELECT (ticker, endpoint, timestamp) FROM v_staged_snapshots)")
    parts = [ctx.rows(_snapshot_diff(keys)), ctx.rows(_strike_diff(keys, "v_staged_strikes"))]
    return _merge(name, parts, f"{ctx.options.sample} sampled history snapshots (seed {ctx.options.seed}) "
                               "against the staged JSON")


def live_vs_history(ctx):
    name = "crosscheck.live_vs_history"
    if not ctx.has("v_snapshots", "v_strikes", "v_staged_snapshots"):
        return skipped(name, "needs gex_snapshots, gex_strikes and staged history JSON")
    keys = ("SELECT ticker, endpoint, timestamp FROM v_snapshots WHERE source = 'live' "
            "INTERSECT SELECT ticker, endpoint, timestamp FROM v_staged_snapshots")
    parts = [ctx.rows(_snapshot_diff(keys)), ctx.rows(_strike_diff(keys, "v_staged_strikes"))]
    return _merge(name, parts, "every live snapshot the staged history JSON also holds")


def parquet_counts(ctx):
    """The rows an export has finished (gex_lake_exports 'done' ranges of seq) against the lake, on every day.

    Without that table (a lake written by something else) only the days the lake holds are compared.
    """
    name = "crosscheck.parquet_counts"
    if not ctx.has("v_strikes", "v_lake"):
        return skipped(name, "needs gex_strikes and Parquet files")
    if "gex_lake_exports" in ctx.tables:
        exported = ("EXISTS (SELECT 1 FROM gex_lake_exports e WHERE e.state = 'done' "
                    "AND v_strikes.seq > e.lo AND v_strikes.seq <= e.hi)")
        days, checked = "true", "strike rows exported (gex_lake_exports) per (ticker, endpoint, UTC day)"
    else:
        exported, days = "true", "lake.n IS NOT NULL"
        checked = "strike rows per (ticker, endpoint, UTC day) on the days the lake holds"
    rows = ctx.rows(f"""WITH lake AS (
            SELECT ticker, endpoint, timestamp // 86400000 AS day, count(*) AS n FROM v_lake GROUP BY ALL),
        db AS (SELECT ticker, endpoint, timestamp // 86400000 AS day, count(*) AS n FROM v_strikes
               WHERE NOT legacy AND {exported} GROUP BY ALL)
        SELECT count(*) OVER (), ticker, endpoint, strftime(epoch_ms(day * 86400000), '%Y-%m-%d') AS day,
               coalesce(db.n, 0) AS duckdb_rows, coalesce(lake.n, 0) AS parquet_rows
        FROM lake FULL JOIN db USING (ticker, endpoint, day)
        WHERE coalesce(db.n, 0) <> coalesce(lake.n, 0) AND {days} AND {_not_unreadable(ctx)}
        ORDER BY ticker, endpoint, day LIMIT {EXAMPLES}""")
    return result(name, rows, ["ticker", "endpoint", "day", "duckdb_rows", "parquet_rows"], unit="days",
                  checked=checked)


def _not_unreadable(ctx, kind="strikes", day="day"):
    """Days with a lake file of `kind` the schema check rejected are not compared: that check reports them."""
    days = {found[:3] for p in ctx.lake_problems if (found := files.lake_day_of(p[0])) and found[3] == kind}
    if not days:
        return "true"
    listed = ", ".join(f"({files.lit(t)}, {files.lit(e)}, {d})" for t, e, d in sorted(days))
    return f"(ticker, endpoint, {day}) NOT IN (SELECT (t, e, d) FROM (VALUES {listed}) v(t, e, d))"


ROW_COLUMNS = ["kind", "ticker", "endpoint", "timestamp", "field", "duckdb", "parquet"]
ROWS_DETAIL = ("field `row`: the row is missing from DuckDB or from the lake (its files of that kind and day); "
               "`copies`: the lake holds the row that many times; any other field: its value on each side")


def _exported(ctx, kind):
    """Which rows of kind's table an export has finished, as SQL over the table; None without export records
    (a lake written by something else: then the days the lake holds are compared)."""
    if "gex_lake_exports" not in ctx.tables:
        return None
    if "seq" not in ctx.tables[lakekinds.KINDS[kind].table]:
        return "false"  # never numbered, so never exported
    backfilled = "false" if kind in ctx.backfilling else "seq IS NULL"
    return (f"({backfilled} OR EXISTS (SELECT 1 FROM gex_lake_exports e WHERE e.state = 'done' "
            "AND seq > e.lo AND seq <= e.hi))")


def _as_text(side, fields):
    """The list of a side's fields as text, to compare and show them in one column."""
    return "[" + ", ".join(f"{side}.{f}::VARCHAR" for f in fields) + "]"


def _row_diff(ctx, kind):
    """Rows of kind's table and of its lake files that differ: one row per field, a row missing from either
    side as field 'row', a row the lake holds more than once as field 'copies'."""
    k = lakekinds.KINDS[kind]
    fields = k.columns.split(", ")
    day = "timestamp // 86400000"
    exported = _exported(ctx, kind)
    days = "true" if exported else f"(ticker, endpoint, {day}) IN (SELECT (ticker, endpoint, {day}) FROM p)"
    lake_rows = LAKE_VIEWS[kind] if ctx.has(LAKE_VIEWS[kind]) else "d WHERE false"  # no file of the kind left
    names = ", ".join(files.lit(f) for f in fields)
    return f"""WITH
        d AS (SELECT ticker, endpoint, timestamp, {k.columns} FROM {k.table}
              WHERE endpoint IS NOT NULL AND {ctx.where()} AND {exported or 'true'}),
        p AS (SELECT ticker, endpoint, timestamp, {k.columns} FROM {lake_rows}),
        joined AS (SELECT ticker, endpoint, timestamp, d.timestamp IS NOT NULL AS in_d,
                          p.timestamp IS NOT NULL AS in_p, {_as_text('d', fields)} AS dv, {_as_text('p', fields)} AS pv
                   FROM d FULL JOIN p USING (ticker, endpoint, timestamp)),
        diff AS (
            SELECT ticker, endpoint, timestamp, 'row' AS field,
                   CASE WHEN in_d THEN 'present' ELSE 'missing' END AS duckdb,
                   CASE WHEN in_p THEN 'present' ELSE 'missing' END AS parquet
            FROM joined WHERE NOT (in_d AND in_p)
            UNION ALL
            SELECT ticker, endpoint, timestamp, unnest([{names}]), unnest(dv), unnest(pv)
            FROM joined WHERE in_d AND in_p
            UNION ALL
            SELECT ticker, endpoint, timestamp, 'copies', '1', count(*)::VARCHAR FROM p GROUP BY ALL
            HAVING count(*) > 1)
        SELECT count(*) OVER (), {files.lit(kind)}, ticker, endpoint, timestamp, field, duckdb, parquet FROM diff
        WHERE duckdb IS DISTINCT FROM parquet AND {days} AND {_not_unreadable(ctx, kind, day)}
        ORDER BY ticker, endpoint, timestamp, field LIMIT {EXAMPLES}"""


def parquet_rows(ctx):
    name = "crosscheck.parquet_rows"
    kinds = [kind for kind in lakekinds.BACKFILLED
             if lakekinds.KINDS[kind].table in ctx.tables and (ctx.has(LAKE_VIEWS[kind]) or _exported(ctx, kind))]
    if not kinds or not ctx.lake_files:  # no lake at all, as parquet_counts: a lake missing a kind is compared
        return skipped(name, "needs gex_snapshots, gex_majors or gex_maxchange and Parquet files")
    return _merge(name, [ctx.rows(_row_diff(ctx, kind)) for kind in kinds],
                  f"every exported row of {', '.join(kinds)} against the lake, field by field", ROW_COLUMNS,
                  ROWS_DETAIL)


CHECKS = [spot_parquet, spot_staged_json, live_vs_history, parquet_counts, parquet_rows]
