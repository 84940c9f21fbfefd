"""Business rules of each snapshot (gex_snapshots with its gex_strikes rows), one SQL query per check.

Each query returns (total count, example key and values...) rows, ordered by key, at most EXAMPLES of them.
A snapshot without a valid spot is reported once, by `spot`; the spot-relative checks skip it.
"""

from gexsrv.validate.report import EXAMPLES, result, skipped

KEY = ["ticker", "endpoint", "timestamp"]
VALID_SPOT = "(spot_price > 0 AND isfinite(spot_price))"
MAJORS = ["major_pos_vol", "major_pos_oi", "major_neg_vol", "major_neg_oi"]
SUMS_ABSOLUTE = 0.01  # payload sums are rounded upstream; this covers their last digits


def _needs(ctx, name, *views):
    missing = [v[2:] for v in views if not ctx.has(v)]
    return skipped(name, f"no {', '.join(missing)} table") if missing else None


def spot(ctx):
    name = "rules.spot"
    if gone := _needs(ctx, name, "v_snapshots"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, spot_price FROM v_snapshots
        WHERE NOT coalesce({VALID_SPOT}, false) ORDER BY ALL LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["spot_price"], unit="snapshots", checked="spot is finite and positive")


def strike_order(ctx):
    """Strikes arrive sorted, so a later row with a lower strike is out of order.

    Arrival order is `seq` (drawn from a sequence on insert, kept by updates) or, for legacy rows, which have
    none and are never updated, the rowid.
    """
    name = "rules.strike_order"
    if gone := _needs(ctx, name, "v_strikes"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, pair[1], pair[2] FROM (
            SELECT ticker, endpoint, timestamp,
                   list_filter(list_zip(arrived[:-2], arrived[2:]), lambda p: p[1] > p[2])[1] AS pair
            FROM (SELECT ticker, endpoint, timestamp, list(strike ORDER BY seq, row_id) AS arrived
                  FROM v_strikes GROUP BY ticker, endpoint, timestamp)
            WHERE arrived <> list_sort(arrived))
        ORDER BY ticker, endpoint, timestamp LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["strike", "next_strike"], unit="snapshots",
                  checked="strikes increase within a snapshot")


def strike_unique(ctx):
    name = "rules.strike_unique"
    if gone := _needs(ctx, name, "v_strikes"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, strike, count(*) AS copies
        FROM v_strikes GROUP BY ticker, endpoint, timestamp, strike HAVING count(*) > 1
        ORDER BY ticker, endpoint, timestamp, strike LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["strike", "copies"], unit="strikes", checked="one row per strike")


def band(ctx):
    name = "rules.band"
    if gone := _needs(ctx, name, "v_snapshots"):
        return gone
    b = ctx.options.band
    levels = ["zero_gamma"] + MAJORS
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, spot_price, level, value FROM (
            SELECT ticker, endpoint, timestamp, spot_price, unnest({levels!r}) AS level,
                   unnest([{', '.join(levels)}]) AS value
            FROM v_snapshots WHERE {VALID_SPOT})
        WHERE abs(value / spot_price - 1) > {b} OR NOT isfinite(value)
        ORDER BY ticker, endpoint, timestamp, level LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["spot_price", "level", "value"], unit="levels",
                  checked=f"zero gamma and majors within spot +-{b:.0%}")


def majors_in_strikes(ctx):
    name = "rules.majors_in_strikes"
    if gone := _needs(ctx, name, "v_snapshots", "v_strikes"):
        return gone
    rows = ctx.rows(f"""WITH levels AS (
            SELECT ticker, endpoint, timestamp, unnest({MAJORS!r}) AS level, unnest([{', '.join(MAJORS)}]) AS value
            FROM v_snapshots),
        has_strikes AS (SELECT DISTINCT ticker, endpoint, timestamp FROM v_strikes)
        SELECT count(*) OVER (), l.ticker, l.endpoint, l.timestamp, l.level, l.value
        FROM levels l SEMI JOIN has_strikes h USING (ticker, endpoint, timestamp)
        ANTI JOIN v_strikes k ON k.ticker = l.ticker AND k.endpoint = l.endpoint AND k.timestamp = l.timestamp
                             AND k.strike = l.value
        WHERE l.value IS NOT NULL
        ORDER BY l.ticker, l.endpoint, l.timestamp, l.level LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["level", "value"], unit="levels", checked="major levels are strikes")


def net_gex(ctx):
    """Net GEX by volume (sum_gex_vol, or net_gex) and by OI must equal the sums of the strike rows."""
    name = "rules.net_gex"
    if gone := _needs(ctx, name, "v_snapshots", "v_strikes"):
        return gone
    tol = ctx.options.sum_tolerance
    rows = ctx.rows(f"""WITH sums AS (
            SELECT ticker, endpoint, timestamp, sum(gamma) AS by_vol, sum(oi_gamma) AS by_oi,
                   sum(abs(gamma)) AS abs_vol, sum(abs(oi_gamma)) AS abs_oi
            FROM v_strikes GROUP BY ticker, endpoint, timestamp)
        SELECT count(*) OVER (), p.ticker, p.endpoint, p.timestamp,
               coalesce(p.sum_gex_vol, p.net_gex) AS net_gex_vol, s.by_vol AS strikes_vol,
               p.sum_gex_oi AS net_gex_oi, s.by_oi AS strikes_oi
        FROM v_snapshots p JOIN sums s USING (ticker, endpoint, timestamp)
        WHERE abs(coalesce(p.sum_gex_vol, p.net_gex) - s.by_vol) > {SUMS_ABSOLUTE} + {tol} * s.abs_vol
           OR abs(p.sum_gex_oi - s.by_oi) > {SUMS_ABSOLUTE} + {tol} * coalesce(s.abs_oi, 0)
        ORDER BY p.ticker, p.endpoint, p.timestamp LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["net_gex_vol", "strikes_vol", "net_gex_oi", "strikes_oi"], unit="snapshots",
                  checked=f"net GEX = sum of strikes (+-{SUMS_ABSOLUTE} + {tol:g} x sum |gex|)")


def dte(ctx):
    name = "rules.dte"
    if gone := _needs(ctx, name, "v_snapshots"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, min_dte, sec_min_dte
        FROM v_snapshots WHERE min_dte > sec_min_dte ORDER BY ALL LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["min_dte", "sec_min_dte"], unit="snapshots", checked="min_dte <= sec_min_dte")


def priors(ctx):
    name = "rules.priors"
    if gone := _needs(ctx, name, "v_strikes"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, strike, len(priors) AS length
        FROM v_strikes WHERE len(priors) <> 5 ORDER BY ticker, endpoint, timestamp, strike LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["strike", "priors_length"], checked="priors hold 5 values (or none)")


def orphan_strikes(ctx):
    name = "rules.orphan_strikes"
    if gone := _needs(ctx, name, "v_snapshots", "v_strikes"):
        return gone
    rows = ctx.rows(f"""SELECT count(*) OVER (), ticker, endpoint, timestamp, count(*) AS strikes
        FROM v_strikes k ANTI JOIN v_snapshots p USING (ticker, endpoint, timestamp)
        GROUP BY ticker, endpoint, timestamp ORDER BY ticker, endpoint, timestamp LIMIT {EXAMPLES}""")
    return result(name, rows, KEY + ["strikes"], unit="snapshots", checked="every strike row has its snapshot")


CHECKS = [spot, strike_order, strike_unique, band, majors_in_strikes, net_gex, dte, priors, orphan_strikes]
