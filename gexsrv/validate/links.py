"""Links between tables: every row of a /uw table (option_trades_events and the others that carry webhook_id)
must point at an existing universal_webhooks row.

The gexsrv tables declare the link as a foreign key, but a database adopted from the original server may hold
these tables without one; the check finds the linked tables by their webhook_id column, and is skipped while
there are none.
"""

from gexsrv.validate.report import EXAMPLES, result, skipped

LINK = "webhook_id"


def uw_links(ctx):
    name = "links.uw_links"
    linked = sorted(t for t, columns in ctx.tables.items() if LINK in columns and t != "universal_webhooks")
    if "universal_webhooks" not in ctx.tables or not linked:
        return skipped(name, "no universal_webhooks table, or no table linking to it")
    parts = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, rowid AS row_id, {LINK}::VARCHAR AS link FROM {t} t "
        f"WHERE {LINK} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM universal_webhooks w WHERE w.id = t.{LINK})"
        for t in linked)
    rows = ctx.rows(f"SELECT count(*) OVER (), tbl, row_id, link FROM ({parts}) ORDER BY ALL LIMIT {EXAMPLES}")
    return result(name, rows, ["table", "rowid", LINK],
                  checked=f"{', '.join(linked)}.{LINK} -> universal_webhooks.id")


CHECKS = [uw_links]
