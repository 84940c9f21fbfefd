"""Timestamp checks per (table, ticker, endpoint) over gex_snapshots, gex_majors and gex_maxchange (v_timeline).

Legacy rows (no endpoint) were left with exact duplicates by the earlier importer: those are a warning
(`exact_duplicates`), since readers can drop them safely. Any other repeated key is a failure.
"""

import pyarrow as pa

from gexsrv.validate import calendar
from gexsrv.validate.options import epoch_ms
from gexsrv.validate.report import EXAMPLES, WARNING, result, skipped

KEY = ["table", "ticker", "endpoint", "timestamp"]
ORDER = f"ORDER BY tbl, ticker, endpoint, timestamp LIMIT {EXAMPLES}"


def _needs_timeline(ctx, name):
    return None if ctx.has("v_timeline") else skipped(name, "no gex_snapshots, gex_majors or gex_maxchange table")


def duplicates(ctx):
    name = "timeline.duplicates"
    if gone := _needs_timeline(ctx, name):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, count(*) AS copies,
               count(DISTINCT row_hash) AS versions
        FROM v_timeline GROUP BY tbl, ticker, endpoint, timestamp
        HAVING count(*) > 1 AND (NOT bool_and(legacy) OR count(DISTINCT row_hash) > 1)
        {ORDER}""")
    return result(name, rows, KEY + ["copies", "versions"], unit="keys", checked="one row per key")


def exact_duplicates(ctx):
    name = "timeline.exact_duplicates"
    if gone := _needs_timeline(ctx, name):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, count(*) AS copies
        FROM v_timeline GROUP BY tbl, ticker, endpoint, timestamp
        HAVING count(*) > 1 AND bool_and(legacy) AND count(DISTINCT row_hash) = 1
        {ORDER}""")
    return result(name, rows, KEY + ["copies"], severity=WARNING, unit="keys", checked="legacy rows copied exactly",
                  detail="identical legacy rows (no endpoint) from the earlier importer; readers can drop copies")


def out_of_order(ctx):
    """Live rows, taken in arrival order, should move forward in time: a row older than the one before it is late."""
    name = "timeline.out_of_order"
    if gone := _needs_timeline(ctx, name):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, received_at, previous FROM (
            SELECT *, lag(timestamp) OVER (PARTITION BY tbl, ticker, endpoint ORDER BY received_at, timestamp)
                      AS previous
            FROM v_timeline WHERE source = 'live')
        WHERE timestamp < previous {ORDER}""")
    return result(name, rows, KEY + ["received_at", "previous_timestamp"],
                  checked="live rows arrive in timestamp order")


def gaps(ctx):
    """Consecutive rows of one session further apart than max_gap_s (the session edges are not judged)."""
    name = "timeline.gaps"
    if gone := _needs_timeline(ctx, name):
        return gone
    first, last = ctx.rows("SELECT min(timestamp), max(timestamp) FROM v_timeline")[0]
    if first is None:
        return result(name, [], [], checked="no rows")
    kinds, opens, closes = zip(*calendar.sessions(first, last))
    ctx.con.register("v_sessions", pa.table({"calendar": kinds, "open_ms": opens, "close_ms": closes}))
    futures = ", ".join(f"'{t}'" for t in sorted(calendar.FUTURES))
    max_gap = round(ctx.options.max_gap_s * 1000)
    try:
        rows = ctx.rows(f"""WITH t AS (
                SELECT tbl, ticker, endpoint, timestamp,
                       CASE WHEN ticker IN ({futures}) THEN 'futures' ELSE 'equity' END AS calendar,
                       lag(timestamp) OVER (PARTITION BY tbl, ticker, endpoint ORDER BY timestamp) AS previous
                FROM v_timeline)
            SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, previous,
                   (timestamp - previous) / 1000 AS gap_s
            FROM t ASOF JOIN v_sessions s ON t.calendar = s.calendar AND t.timestamp >= s.open_ms
            WHERE t.timestamp <= s.close_ms AND t.previous >= s.open_ms AND t.timestamp - t.previous > {max_gap}
            {ORDER}""")
    finally:
        ctx.con.unregister("v_sessions")
    return result(name, rows, KEY + ["previous_timestamp", "gap_s"],
                  checked=f"no pause over {ctx.options.max_gap_s:g} s inside a session (New York hours)")


def future(ctx):
    name = "timeline.future"
    if gone := _needs_timeline(ctx, name):
        return gone
    slack = round(ctx.options.future_slack_s * 1000)
    rows = ctx.rows(f"SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, received_at FROM v_timeline "
                    f"WHERE timestamp > {ctx.now_ms + slack} OR timestamp > received_at + {slack} {ORDER}")
    return result(name, rows, KEY + ["received_at"], checked="no timestamps past the clock or their arrival")


def before_start(ctx):
    name = "timeline.before_start"
    if gone := _needs_timeline(ctx, name):
        return gone
    start = epoch_ms(ctx.options.data_start)
    rows = ctx.rows(f"SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp FROM v_timeline "
                    f"WHERE timestamp < {start} {ORDER}")
    return result(name, rows, KEY, checked=f"no timestamps before {ctx.options.data_start}")


def spot_jumps(ctx):
    name = "timeline.spot_jumps"
    if gone := _needs_timeline(ctx, name):
        return gone
    jump = ctx.options.max_jump
    rows = ctx.rows(f"""SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, previous, spot FROM (
            SELECT tbl, ticker, endpoint, timestamp, spot,
                   lag(spot) OVER (PARTITION BY tbl, ticker, endpoint ORDER BY timestamp) AS previous
            FROM v_timeline WHERE spot > 0 AND isfinite(spot))
        WHERE abs(spot / previous - 1) > {jump} {ORDER}""")
    return result(name, rows, KEY + ["previous_spot", "spot"],
                  checked=f"spot moves under {jump:.0%} between rows")


CHECKS = [duplicates, exact_duplicates, out_of_order, gaps, future, before_start, spot_jumps]
