"""All DDL: the established tables as gexsrv adopts them, its own tables, and additive migrations.

Rules (CONTRACT section 4): an existing gex_data.db is adopted as it is; changes are additive only (new tables,
new columns, indexes); no statement here drops, deletes, updates or rewrites an existing row.
"""

# Created only when absent, in the established layout, so a fresh database looks like an adopted one.
LEGACY_TABLES = [
    """CREATE TABLE IF NOT EXISTS gex_snapshots (
        timestamp BIGINT, ticker VARCHAR, spot_price DOUBLE, zero_gamma DOUBLE, net_gex DOUBLE,
        min_dte INTEGER, sec_min_dte INTEGER, major_pos_vol DOUBLE, major_pos_oi DOUBLE,
        major_neg_vol DOUBLE, major_neg_oi DOUBLE, sum_gex_vol DOUBLE, sum_gex_oi DOUBLE,
        delta_risk_reversal DOUBLE, max_priors VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS gex_strikes (
        timestamp BIGINT, ticker VARCHAR, strike DOUBLE, gamma DOUBLE, oi_gamma DOUBLE, priors DOUBLE[])""",
]

# (table, column, type): what gexsrv adds to the established tables. Legacy rows read NULL in them.
ADDED_COLUMNS = [
    ("gex_snapshots", "endpoint", "VARCHAR"),
    ("gex_snapshots", "received_at", "BIGINT"),  # epoch ms, the table's unit
    ("gex_snapshots", "source", "VARCHAR"),  # 'live', or 'history:<job id>'
    ("gex_strikes", "endpoint", "VARCHAR"),
    ("gex_strikes", "seq", "BIGINT"),  # insertion order for the Parquet exporter (gexsrv.lake); legacy rows NULL
    # the same for the other kinds the lake holds; rows stored before it NULL, which the lake backfills once
    ("gex_snapshots", "seq", "BIGINT"),
    ("gex_majors", "seq", "BIGINT"),
    ("gex_maxchange", "seq", "BIGINT"),
    ("gex_history_queue", "finished_at", "TIMESTAMPTZ"),
    ("gex_history_queue", "problems", "VARCHAR"),  # JSON: what the decoding rule left out, {count, examples}
]

GEX_TABLES = [
    """CREATE TABLE IF NOT EXISTS gex_majors (
        timestamp BIGINT NOT NULL, ticker VARCHAR NOT NULL, endpoint VARCHAR NOT NULL,
        spot DOUBLE, zero_gamma DOUBLE, mpos_vol DOUBLE, mpos_oi DOUBLE, mneg_vol DOUBLE, mneg_oi DOUBLE,
        net_gex_vol DOUBLE, net_gex_oi DOUBLE, received_at BIGINT, source VARCHAR,
        PRIMARY KEY (ticker, endpoint, timestamp))""",
    """CREATE TABLE IF NOT EXISTS gex_maxchange (
        timestamp BIGINT NOT NULL, ticker VARCHAR NOT NULL, endpoint VARCHAR NOT NULL,
        current_strike DOUBLE, current_value DOUBLE, one_strike DOUBLE, one_value DOUBLE,
        five_strike DOUBLE, five_value DOUBLE, ten_strike DOUBLE, ten_value DOUBLE,
        fifteen_strike DOUBLE, fifteen_value DOUBLE, thirty_strike DOUBLE, thirty_value DOUBLE,
        received_at BIGINT, source VARCHAR,
        PRIMARY KEY (ticker, endpoint, timestamp))""",
    """CREATE TABLE IF NOT EXISTS gex_history_queue (
        id BIGINT PRIMARY KEY, url VARCHAR, ticker VARCHAR, endpoint VARCHAR,
        status VARCHAR NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, last_error VARCHAR,
        bytes BIGINT, rows_imported BIGINT, snapshots_imported BIGINT, sha256 VARCHAR, file_path VARCHAR,
        created_at TIMESTAMPTZ DEFAULT current_timestamp, updated_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    # Backfilled days (gexsrv.history.days): what asking the gexbot API about each day came to, and its job.
    """CREATE TABLE IF NOT EXISTS gex_history_days (
        ticker VARCHAR NOT NULL, package VARCHAR NOT NULL, category VARCHAR NOT NULL, day DATE NOT NULL,
        status VARCHAR NOT NULL, tries INTEGER NOT NULL DEFAULT 0, job_id BIGINT, error VARCHAR,
        created_at TIMESTAMPTZ DEFAULT current_timestamp, updated_at TIMESTAMPTZ DEFAULT current_timestamp,
        PRIMARY KEY (ticker, package, category, day))""",
    """CREATE TABLE IF NOT EXISTS gex_lake_exports (
        lo BIGINT PRIMARY KEY, hi BIGINT NOT NULL, state VARCHAR NOT NULL, files INTEGER, rows BIGINT,
        created_at TIMESTAMPTZ DEFAULT current_timestamp, finished_at TIMESTAMPTZ)""",
    # The lake's backfill of the rows of a kind (gexsrv.lake.BACKFILLED) stored before they drew numbers.
    """CREATE TABLE IF NOT EXISTS gex_lake_backfills (
        kind VARCHAR PRIMARY KEY, state VARCHAR NOT NULL, files INTEGER, rows BIGINT,
        created_at TIMESTAMPTZ DEFAULT current_timestamp, finished_at TIMESTAMPTZ)""",
    # named for the strike rows, which drew from it first; every table the lake exports draws from it
    "CREATE SEQUENCE IF NOT EXISTS gex_strikes_seq",
    # How far ingest got in the journal (gexsrv.journal): updated in the transaction of every ingest, so each
    # journaled record is ingested once. One row.
    """CREATE TABLE IF NOT EXISTS gexsrv_ingest (
        id INTEGER PRIMARY KEY, segment BIGINT NOT NULL, "offset" BIGINT NOT NULL, seq BIGINT NOT NULL,
        updated_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    # Journaled records that could not be ingested on their own: the line as journaled, and why.
    """CREATE TABLE IF NOT EXISTS gexsrv_quarantine (
        seq BIGINT PRIMARY KEY, line VARCHAR NOT NULL, error VARCHAR NOT NULL,
        quarantined_at TIMESTAMPTZ DEFAULT current_timestamp)""",
    """CREATE TABLE IF NOT EXISTS gexsrv_migrations (
        name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ DEFAULT current_timestamp)""",
]

# Legacy rows have a NULL endpoint, and NULLs never collide in a unique index, so the legacy duplicates stay
# valid while every row gexsrv writes is unique on (ticker, endpoint, timestamp).
SNAPSHOT_KEY = (
    "CREATE UNIQUE INDEX IF NOT EXISTS gex_snapshots_key ON gex_snapshots (ticker, endpoint, timestamp)"
)

# /uw (CONTRACT section 3): every data frame raw in universal_webhooks, once (the content hash is unique), and
# its normalised rows in the table of its topic, each linked to the raw row by webhook_id.
UW_TABLES = [
    """CREATE TABLE IF NOT EXISTS universal_webhooks (
        id UUID PRIMARY KEY, received_at TIMESTAMPTZ NOT NULL, shape VARCHAR NOT NULL, topic VARCHAR,
        event VARCHAR, join_ref VARCHAR, ref VARCHAR, payload JSON, source_addr VARCHAR, user_agent VARCHAR,
        content_sha256 VARCHAR NOT NULL, problems VARCHAR[])""",
    "CREATE UNIQUE INDEX IF NOT EXISTS universal_webhooks_content ON universal_webhooks (content_sha256)",
    """CREATE TABLE IF NOT EXISTS option_trades_events (
        trade_id VARCHAR PRIMARY KEY, webhook_id UUID NOT NULL REFERENCES universal_webhooks (id),
        received_at TIMESTAMPTZ, executed_at TIMESTAMPTZ, option_symbol VARCHAR, underlying_symbol VARCHAR,
        root VARCHAR, expiration DATE, option_type VARCHAR, strike DOUBLE, price DOUBLE, size BIGINT,
        premium DOUBLE, volume BIGINT, open_interest BIGINT, nbbo_bid DOUBLE, nbbo_ask DOUBLE,
        underlying_price DOUBLE, implied_volatility DOUBLE, delta DOUBLE, gamma DOUBLE, theta DOUBLE,
        vega DOUBLE, rho DOUBLE, theo DOUBLE, exchange VARCHAR, tags VARCHAR[], ask_vol BIGINT, bid_vol BIGINT,
        mid_vol BIGINT, no_side_vol BIGINT, multi_vol BIGINT, stock_multi_vol BIGINT, report_flags VARCHAR[],
        is_agg BOOLEAN, trade_ids VARCHAR[],
        symbol VARCHAR, side VARCHAR, quantity DOUBLE, order_type VARCHAR, execution_status VARCHAR,
        broker VARCHAR, execution_qty DOUBLE, execution_price DOUBLE, dry_run BOOLEAN, raw_payload JSON)""",
    """CREATE TABLE IF NOT EXISTS uw_market_agg (
        webhook_id UUID NOT NULL REFERENCES universal_webhooks (id), received_at TIMESTAMPTZ, date DATE,
        call_premium DOUBLE, put_premium DOUBLE, call_volume BIGINT, put_volume BIGINT, put_call_ratio DOUBLE,
        data JSON)""",
    """CREATE TABLE IF NOT EXISTS uw_flow_alerts (
        webhook_id UUID NOT NULL REFERENCES universal_webhooks (id), received_at TIMESTAMPTZ, alert_id VARCHAR,
        rule_name VARCHAR, ticker VARCHAR, option_chain VARCHAR, expiration DATE, option_type VARCHAR,
        strike DOUBLE, executed_at TIMESTAMPTZ, price DOUBLE, underlying_price DOUBLE, total_premium DOUBLE,
        total_size BIGINT, total_ask_side_prem DOUBLE, total_bid_side_prem DOUBLE, volume BIGINT,
        open_interest BIGINT, trade_count BIGINT, has_sweep BOOLEAN, has_floor BOOLEAN, has_multileg BOOLEAN,
        all_opening_trades BOOLEAN, data JSON)""",
]


# The tables whose rows draw the lake's numbers (gexsrv.lake), one sequence for all.
NUMBERED_TABLES = ("gex_strikes", "gex_snapshots", "gex_majors", "gex_maxchange")


def columns(con):
    """{(table, column)} of the main schema, in one query: a query per added column cost a start ~10 ms of CPU."""
    return set(con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE schema_name = 'main'").fetchall())


def apply(con):
    """Bring a new or established database up to what gexsrv needs, additively, in one transaction."""
    con.begin()
    for ddl in LEGACY_TABLES + GEX_TABLES:
        con.execute(ddl)
    present = columns(con)
    for table, column, sqltype in ADDED_COLUMNS:
        if (table, column) not in present:
            con.execute(f'ALTER TABLE {table} ADD COLUMN "{column}" {sqltype}')
            con.execute("INSERT INTO gexsrv_migrations (name) VALUES (?)", [f"add {table}.{column}"])
    con.execute(SNAPSHOT_KEY)
    for ddl in UW_TABLES:
        con.execute(ddl)
    # Only rows inserted from now on draw a number; existing rows keep NULL (nothing is rewritten).
    for table in NUMBERED_TABLES:
        con.execute(f"ALTER TABLE {table} ALTER COLUMN seq SET DEFAULT nextval('gex_strikes_seq')")
    con.commit()
