"""How GEX Records reach their tables: Arrow tables INSERTed BY NAME, a snapshot's strike rows with it. WRITERS
holds the kinds snapshot, majors and maxchange with their writers, for the store (gexsrv.kinds).

A snapshot's strike rows are read from their JSON text by DuckDB (C++, without the GIL): on the event loop their
Python objects would cost as much again as decoding them. The text is the very bytes the decoder read, and its
verdict rides along (`skipped`: the rows it left out); tests/test_gexwrite.py holds both readings to identical rows.
"""

import pyarrow as pa

from gexsrv import batches
from gexsrv.records import MajorsRow, MaxChangeRow, SnapshotRow

# One row per strike of the bodies in `strike_source` (batches.strike_source): [strike, gamma, oi_gamma, priors].
# Read twice, as numbers and as lists, so that each row's priors line up with its numbers.
STRIKES = """
    INSERT INTO gex_strikes BY NAME
    SELECT timestamp, ticker, endpoint, r1[1] AS strike, r1[2] AS gamma, r1[3] AS oi_gamma, r2[4] AS priors
    FROM (SELECT timestamp, ticker, endpoint, skip, unnest(s1) AS r1, unnest(s2) AS r2,
                 generate_subscripts(s1, 1) AS i
          FROM (SELECT timestamp, ticker, endpoint, skip, json_transform(strikes, '[["DOUBLE"]]') AS s1,
                       json_transform(strikes, '[[["DOUBLE"]]]') AS s2
                FROM strike_source{only}))
    WHERE NOT list_contains(skip, i - 1)"""
NEW_ONLY = " SEMI JOIN new_keys USING (ticker, endpoint, timestamp)"


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
        strikes = batches.strike_source(chosen) if self.with_strikes else None
        return first, batches.rows(chosen, self.row_type), strikes

    def write(self, con, records, tables, careful):
        """Insert the prepared tables; return the indexes of the records stored. `careful` (the retry after a
        unique-key error) skips the keys already stored."""
        first, rows, strike_source = tables
        if not careful:
            insert(con, self.table, rows)
            if strike_source is not None:
                con.execute(STRIKES.format(only=""))
            return first
        keys = insert(con, self.table, rows, returning="ticker, endpoint, timestamp")
        if strike_source is not None and keys:
            new_keys = pa.table(dict(zip(("ticker", "endpoint", "timestamp"), map(list, zip(*keys)))))
            con.execute(STRIKES.format(only=NEW_ONLY))
        keys = set(keys)
        return [i for i in first if (records[i].ticker, records[i].endpoint, records[i].timestamp_ms) in keys]

    def recent_keys(self, con, kind, since_ms):
        # legacy rows have no endpoint: gexsrv never writes such a key
        rows = con.execute(f"SELECT ticker, endpoint, timestamp FROM {self.table} "
                           "WHERE timestamp >= ? AND endpoint IS NOT NULL", [since_ms]).fetchall()
        return [((kind, ticker, endpoint, ts), ts) for ticker, endpoint, ts in rows]

    def newest(self, con, kind):
        rows = con.execute(f"SELECT ticker, endpoint, max(timestamp) FROM {self.table} "
                           "WHERE endpoint IS NOT NULL GROUP BY ALL").fetchall()
        return {(kind, ticker, endpoint): ts for ticker, endpoint, ts in rows}


WRITERS = {"snapshot": Keyed("gex_snapshots", SnapshotRow, with_strikes=True),
           "majors": Keyed("gex_majors", MajorsRow),
           "maxchange": Keyed("gex_maxchange", MaxChangeRow)}
