"""How GEX Records reach their tables: Arrow tables INSERTed BY NAME, a snapshot's strike rows with it. Registers
the kinds snapshot, majors and maxchange with the store."""

from gexsrv import batches, store
from gexsrv.records import MajorsRow, MaxChangeRow, SnapshotRow


def insert(con, table, batch, returning=None):
    """INSERT an Arrow table BY NAME; with `returning`, skip rows whose key exists and return the new keys.

    DuckDB reads the local `batch` by its name (a replacement scan): unlike register(), that adds no catalog
    entry, which makes a small insert about twice as fast.
    """
    if returning is None:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM batch")
        return None
    return con.execute(
        f"INSERT INTO {table} BY NAME SELECT * FROM batch ON CONFLICT DO NOTHING RETURNING {returning}"
    ).fetchall()


class Keyed:
    """The writer of a table keyed on (ticker, endpoint, timestamp); snapshots bring their strike rows along."""

    def __init__(self, table, row_type, with_strikes=False):
        self.table = table
        self.row_type = row_type
        self.with_strikes = with_strikes

    def prepare(self, records):
        first = batches.first_of_each_key(records)
        chosen = [records[i] for i in first]
        strikes = batches.strikes(chosen) if self.with_strikes else None
        return first, batches.rows(chosen, self.row_type), strikes

    def write(self, con, records, tables, careful):
        """Insert the prepared tables; return the indexes of the records stored. `careful` (the retry after a
        unique-key error) skips the keys already stored."""
        first, rows, strikes = tables
        if not careful:
            insert(con, self.table, rows)
            if strikes is not None and strikes.num_rows:
                insert(con, "gex_strikes", strikes)
            return first
        keys = set(insert(con, self.table, rows, returning="ticker, endpoint, timestamp"))
        new = [i for i in first if (records[i].ticker, records[i].endpoint, records[i].timestamp_ms) in keys]
        if self.with_strikes and new:
            strikes = batches.strikes([records[i] for i in new])
            if strikes.num_rows:
                insert(con, "gex_strikes", strikes)
        return new

    def recent_keys(self, con, kind, since_ms):
        # legacy rows have no endpoint: gexsrv never writes such a key
        rows = con.execute(f"SELECT ticker, endpoint, timestamp FROM {self.table} "
                           "WHERE timestamp >= ? AND endpoint IS NOT NULL", [since_ms]).fetchall()
        return [((kind, ticker, endpoint, ts), ts) for ticker, endpoint, ts in rows]

    def newest(self, con, kind):
        rows = con.execute(f"SELECT ticker, endpoint, max(timestamp) FROM {self.table} "
                           "WHERE endpoint IS NOT NULL GROUP BY ALL").fetchall()
        return {(kind, ticker, endpoint): ts for ticker, endpoint, ts in rows}


store.register("snapshot", Keyed("gex_snapshots", SnapshotRow, with_strikes=True))
store.register("majors", Keyed("gex_majors", MajorsRow))
store.register("maxchange", Keyed("gex_maxchange", MaxChangeRow))
