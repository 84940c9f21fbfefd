"""How /uw records are written, in the caller's transaction: raw rows and their normalised rows. WRITERS
holds the kind "uw" with its writer, for the store (gexsrv.kinds).

Runs on the store's thread; the tables are built there too (/uw traffic is light). DuckDB reads the local Arrow
tables by their variable names (replacement scans).
"""

from gexsrv.batches import first_of_each_key
from gexsrv.uw import batches


def _first_of_each_trade(rows):
    first = {}
    for row in rows:
        first.setdefault(row["trade_id"], row)
    return list(first.values())


def write(con, records, careful):
    """Store the records whose raw row is new, with their rows; return their indexes.

    `careful` (the retry after a constraint error) skips raw rows already stored, and trades whose id is
    already stored (the same trade can arrive in two different frames).
    """
    first = first_of_each_key(records)
    webhooks = batches.webhooks([records[i] for i in first])
    if careful:
        new = {str(id_) for (id_,) in con.execute(
            "INSERT INTO universal_webhooks BY NAME SELECT * FROM webhooks ON CONFLICT DO NOTHING RETURNING id"
        ).fetchall()}
        first = [i for i in first if records[i].raw["id"] in new]
    else:
        con.execute("INSERT INTO universal_webhooks BY NAME SELECT * FROM webhooks")
    by_table = {}
    for i in first:
        if records[i].rows:
            by_table.setdefault(records[i].table, []).extend(records[i].rows)
    for table, rows in by_table.items():
        if table == "option_trades_events":
            rows = _first_of_each_trade(rows)
        normalized = batches.rows(table, rows)
        conflict = " ON CONFLICT DO NOTHING" if careful and table == "option_trades_events" else ""
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM normalized{conflict}")
    return first


class UwWriter:
    def prepare(self, records):
        return None

    def write(self, con, records, tables, careful):
        return write(con, records, careful)

    def recent_keys(self, con, kind, since_ms):
        """Frames are keyed by their content hash, with the time they arrived."""
        return con.execute("SELECT content_sha256, epoch_ms(received_at) FROM universal_webhooks "
                           "WHERE received_at >= make_timestamptz(? * 1000)", [since_ms]).fetchall()

    def newest(self, con, kind):
        return {}  # frames have no order to go by


WRITERS = {"uw": UwWriter()}
