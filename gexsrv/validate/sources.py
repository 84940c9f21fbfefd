"""What a data dir holds, as filtered temporary views on one read connection, so every check is one SQL query.

Views (temporary: they live and die with the connection, nothing is written to the database):
  v_snapshots, v_strikes, v_majors, v_maxchange  the DuckDB tables that exist, filtered; legacy rows (endpoint
                                                 NULL) read endpoint 'legacy' and legacy = true
  v_timeline                                     the keys, arrival and spot of all three timestamped tables
  v_lake                                         the Parquet strike rows (data/parquet/gexbot/<T>/<E>/*.strikes.parquet)
  v_lake_snapshots, v_lake_majors, v_lake_maxchange  the lake's other kinds (*.snapshots.parquet, ...)
  v_staged_snapshots, v_staged_strikes           the staged history JSON (data/source/gexbot/*_history.json)
"""

from gexsrv import lakekinds
from gexsrv.validate import files
from gexsrv.validate.options import epoch_ms

# column -> type of the views over DuckDB tables; a column missing from the table (not adopted yet) reads NULL
SNAPSHOT_COLUMNS = {
    "received_at": "BIGINT", "source": "VARCHAR", "spot_price": "DOUBLE", "zero_gamma": "DOUBLE",
    "net_gex": "DOUBLE", "sum_gex_vol": "DOUBLE", "sum_gex_oi": "DOUBLE", "min_dte": "INTEGER",
    "sec_min_dte": "INTEGER", "major_pos_vol": "DOUBLE", "major_pos_oi": "DOUBLE", "major_neg_vol": "DOUBLE",
    "major_neg_oi": "DOUBLE",
}
STRIKE_COLUMNS = {"strike": "DOUBLE", "gamma": "DOUBLE", "oi_gamma": "DOUBLE", "priors": "DOUBLE[]", "seq": "BIGINT"}
LAKE_VIEWS = {kind: "v_lake" if kind == "strikes" else f"v_lake_{kind}" for kind in lakekinds.KINDS}
TIMELINE = {  # table -> its spot column, if it has one
    "gex_snapshots": "spot_price", "gex_majors": "spot", "gex_maxchange": None,
}


def _key_columns(have):
    """The endpoint expression and the whole-row hash list of a table with columns `have`."""
    endpoint = "endpoint" if "endpoint" in have else "NULL::VARCHAR"
    return endpoint, ", ".join(f'"{c}"' for c in have)


class Context:
    """One run's connection, options and sources; `tables` maps each DuckDB table to {column: type}."""

    def __init__(self, con, data_dir, options, now_ms):
        self.con = con
        self.data_dir = str(data_dir)
        self.options = options
        self.now_ms = now_ms
        self.tables = self._tables()
        self.backfilling = self._backfilling()
        self.lake_files = files.lake_files(self.data_dir, options, con, self._ranges_being_written(),
                                           self.backfilling)
        self.lake_problems = files.lake_schema_problems(con, self.lake_files)
        self.staged_files = files.staged_files(self.data_dir, options)
        self.staged_problems = []  # (path, why) of staged files that are no history file
        self.views = set()
        self._create_views()

    def rows(self, sql, params=()):
        return self.con.execute(sql, params).fetchall()

    def has(self, *views):
        return all(v in self.views for v in views)

    def _tables(self):
        found = {}
        for table, column, sqltype in self.rows(
                "SELECT table_name, column_name, data_type FROM duckdb_columns() "
                "WHERE schema_name = 'main' AND database_name = current_database() AND NOT internal "
                "ORDER BY table_name, column_index"):
            found.setdefault(table, {})[column] = sqltype
        return found

    def _ranges_being_written(self):
        if "gex_lake_exports" not in self.tables:
            return []
        return self.rows("SELECT lo, hi FROM gex_lake_exports WHERE state <> 'done'")

    def _backfilling(self):
        """The kinds whose backfill (gexsrv.lake) has not finished: their unnumbered rows are not exported yet."""
        done = set()
        if "gex_lake_backfills" in self.tables:
            done = {kind for (kind,) in self.rows("SELECT kind FROM gex_lake_backfills WHERE state = 'done'")}
        return [kind for kind in lakekinds.BACKFILLED if kind not in done]

    def where(self, endpoint_column="endpoint"):
        """The run's filters as SQL over raw columns (names were checked by options.parse)."""
        o = self.options
        terms = ["true"]
        if o.ticker:
            terms.append(f"ticker IN ({', '.join(map(files.lit, o.ticker))})")
        if o.endpoint:
            terms.append(f"coalesce({endpoint_column}, 'legacy') IN ({', '.join(map(files.lit, o.endpoint))})")
        if o.since:
            terms.append(f"timestamp >= {epoch_ms(o.since)}")
        if o.until:
            terms.append(f"timestamp < {epoch_ms(o.until, end_of_day=True)}")
        return " AND ".join(terms)

    def _view(self, name, sql):
        self.con.execute(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
        self.views.add(name)

    def _keyed(self, table, wanted):
        """SELECT list of a DuckDB table as a view: the key (legacy NULL endpoint as 'legacy') then `wanted`."""
        have = self.tables[table]
        endpoint, every = _key_columns(have)
        picks = [f'"{c}"' if c in have else f'NULL::{t} AS "{c}"' for c, t in wanted.items()]
        return (f"SELECT rowid AS row_id, timestamp, ticker, coalesce({endpoint}, 'legacy') AS endpoint, "
                f"{endpoint} IS NULL AS legacy, {', '.join(picks)}, hash({every}) AS row_hash "
                f"FROM {table} WHERE {self.where(endpoint)}")

    def _create_views(self):
        if "gex_snapshots" in self.tables:
            self._view("v_snapshots", self._keyed("gex_snapshots", SNAPSHOT_COLUMNS))
        if "gex_strikes" in self.tables:
            self._view("v_strikes", self._keyed("gex_strikes", STRIKE_COLUMNS))
        for table in ("gex_majors", "gex_maxchange"):
            if table in self.tables:
                self._view("v_" + table[4:], self._keyed(table, {"received_at": "BIGINT", "source": "VARCHAR"}))
        timeline = [self._timeline_part(t, spot) for t, spot in TIMELINE.items() if t in self.tables]
        if timeline:
            self._view("v_timeline", " UNION ALL ".join(timeline))
        readable = sorted(set(self.lake_files) - {p[0] for p in self.lake_problems})  # bad ones: schema check
        for kind in lakekinds.KINDS:
            of_kind = [p for p in readable if files.lake_kind(p) == kind]
            if of_kind:
                self._view(LAKE_VIEWS[kind], f"SELECT * FROM read_parquet({files.sql_list(of_kind)}, "
                                             f"union_by_name = true) WHERE {self.where()}")
        staged, self.staged_problems = files.staged_snapshots_sql(self.con, self.staged_files)
        if staged:
            self._view("v_staged_snapshots", f"SELECT * FROM ({staged}) WHERE {self.where()}")
            self._view("v_staged_strikes", files.STAGED_STRIKES)

    def _timeline_part(self, table, spot):
        have = self.tables[table]
        endpoint, every = _key_columns(have)
        extra = {c: f'"{c}"' if c in have else "NULL" for c in ("received_at", "source")}
        spot_sql = f'"{spot}"' if spot and spot in have else "NULL::DOUBLE"
        return (f"SELECT {files.lit(table)} AS tbl, ticker, coalesce({endpoint}, 'legacy') AS endpoint, "
                f"{endpoint} IS NULL AS legacy, timestamp, {extra['received_at']}::BIGINT AS received_at, "
                f"{extra['source']}::VARCHAR AS source, {spot_sql} AS spot, hash({every}) AS row_hash "
                f"FROM {table} WHERE {self.where(endpoint)}")
