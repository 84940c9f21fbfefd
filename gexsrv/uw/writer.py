"""The "uw" WRITERS entry (gexsrv.store): raw rows and their normalised rows, in the caller's transaction.

Runs on the writer thread. DuckDB reads the local Arrow tables by their variable names (replacement scans).
"""

from gexsrv.batches import first_of_each_key
from gexsrv.uw import batches


def _first_of_each_trade(rows):
    first = {}
    for row in rows:
        first.setdefault(row["trade_id"], row)
    return list(first.values())


def write(con, records, source, careful):
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
