"""UwRecords as Arrow tables, one per target table; names and types match the DuckDB columns (INSERT BY NAME).

UUID columns travel as text and JSON columns as text; DuckDB casts them on insert.
"""

import pyarrow as pa

F64, I64, TEXT, TEXTS = pa.float64(), pa.int64(), pa.string(), pa.list_(pa.string())
RECEIVED = pa.timestamp("ms", tz="UTC")
EXECUTED = pa.timestamp("us", tz="UTC")

WEBHOOKS = pa.schema([
    ("id", TEXT), ("received_at", RECEIVED), ("shape", TEXT), ("topic", TEXT), ("event", TEXT),
    ("join_ref", TEXT), ("ref", TEXT), ("payload", TEXT), ("source_addr", TEXT), ("user_agent", TEXT),
    ("content_sha256", TEXT), ("problems", TEXTS),
])

TRADES = pa.schema(
    [("trade_id", TEXT), ("webhook_id", TEXT), ("received_at", RECEIVED), ("executed_at", EXECUTED),
     ("option_symbol", TEXT), ("underlying_symbol", TEXT), ("root", TEXT), ("expiration", pa.date32()),
     ("option_type", TEXT), ("strike", F64), ("price", F64), ("size", I64), ("premium", F64), ("volume", I64),
     ("open_interest", I64), ("nbbo_bid", F64), ("nbbo_ask", F64), ("underlying_price", F64),
     ("implied_volatility", F64)]
    + [(greek, F64) for greek in ("delta", "gamma", "theta", "vega", "rho", "theo")]
    + [("exchange", TEXT), ("tags", TEXTS)]
    + [(side, I64) for side in ("ask_vol", "bid_vol", "mid_vol", "no_side_vol", "multi_vol", "stock_multi_vol")]
    + [("report_flags", TEXTS), ("is_agg", pa.bool_()), ("trade_ids", TEXTS),
       ("symbol", TEXT), ("side", TEXT), ("quantity", F64), ("order_type", TEXT), ("execution_status", TEXT),
       ("broker", TEXT), ("execution_qty", F64), ("execution_price", F64), ("dry_run", pa.bool_()),
       ("raw_payload", TEXT)]
)

MARKET_AGG = pa.schema([
    ("webhook_id", TEXT), ("received_at", RECEIVED), ("date", pa.date32()), ("call_premium", F64),
    ("put_premium", F64), ("call_volume", I64), ("put_volume", I64), ("put_call_ratio", F64), ("data", TEXT),
])

FLOW_ALERTS = pa.schema([
    ("webhook_id", TEXT), ("received_at", RECEIVED), ("alert_id", TEXT), ("rule_name", TEXT), ("ticker", TEXT),
    ("option_chain", TEXT), ("expiration", pa.date32()), ("option_type", TEXT), ("strike", F64),
    ("executed_at", EXECUTED), ("price", F64), ("underlying_price", F64), ("total_premium", F64),
    ("total_size", I64), ("total_ask_side_prem", F64), ("total_bid_side_prem", F64), ("volume", I64),
    ("open_interest", I64), ("trade_count", I64), ("has_sweep", pa.bool_()), ("has_floor", pa.bool_()),
    ("has_multileg", pa.bool_()), ("all_opening_trades", pa.bool_()), ("data", TEXT),
])

SCHEMAS = {"option_trades_events": TRADES, "uw_market_agg": MARKET_AGG, "uw_flow_alerts": FLOW_ALERTS}


def webhooks(records):
    return pa.Table.from_pylist([r.raw for r in records], schema=WEBHOOKS)


def rows(table, rows):
    """The normalised rows of one table; columns the rows lack are NULL."""
    return pa.Table.from_pylist(rows, schema=SCHEMAS[table])
