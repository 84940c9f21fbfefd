"""The validator's own reading of a staged history file, in SQL (DuckDB parses it in C++): one row per snapshot.

It is independent of the importer (gexsrv.history.importer, which decodes by the one rule in Python), so the
cross-checks compare the stored rows with the file as a second reader sees it. All four file shapes: a JSON array,
{"data": [...]}, one object, JSON Lines.
"""

from gexsrv.decode import SECONDS_BELOW


class Unreadable(Exception):
    """The file is no history file at all."""


NUMBERS = ["spot", "zero_gamma", "net_gex", "sum_gex_vol", "sum_gex_oi", "major_pos_vol", "major_pos_oi",
           "major_neg_vol", "major_neg_oi", "delta_risk_reversal"]
FIELDS = {"timestamp": "VARCHAR", "min_dte": "INTEGER", "sec_min_dte": "INTEGER", "max_priors": "JSON",
          "strikes": "JSON[]", **{name: "DOUBLE" for name in NUMBERS}}
COLUMNS = "{" + ", ".join(f"{name}: '{sqltype}'" for name, sqltype in FIELDS.items()) + "}"
STRUCT = "STRUCT(" + ", ".join(f"{name} {sqltype}" for name, sqltype in FIELDS.items()) + ")[]"

# epoch seconds or ms, numeric text, or ISO text (read as UTC: the session's TimeZone), as epoch ms
TIMESTAMP_MS = f"""(CASE
    WHEN TRY_CAST(timestamp AS DOUBLE) IS NULL THEN epoch_ms(TRY_CAST(timestamp AS TIMESTAMPTZ))
    WHEN NOT isfinite(TRY_CAST(timestamp AS DOUBLE)) THEN NULL
    WHEN abs(TRY_CAST(timestamp AS DOUBLE)) < {SECONDS_BELOW} THEN round(TRY_CAST(timestamp AS DOUBLE) * 1000)
    ELSE round(TRY_CAST(timestamp AS DOUBLE)) END)::BIGINT"""


def _quote(text):
    return "'" + text.replace("'", "''") + "'"


def _shape(con, path):
    """array | lines | data | object."""
    with open(path, "rb") as f:
        head = f.read(1 << 16).lstrip()
    if head.startswith(b"["):
        return "array"
    if not head.startswith(b"{"):
        raise Unreadable("the file is neither JSON (an array or an object) nor JSON Lines")
    if b"\n{" in head.replace(b"\r", b"").replace(b"\n ", b"\n"):
        return "lines"
    has_data = con.execute(
        f"SELECT data IS NOT NULL FROM read_json({_quote(path)}, format='unstructured', columns={{data: 'JSON'}})"
    ).fetchone()[0]
    return "data" if has_data else "object"


def scan(con, path):
    """A FROM clause yielding one row per snapshot with FIELDS plus `ordinality` (its position in the file)."""
    shape = _shape(con, path)
    if shape == "data":
        return (f"(SELECT unnest(t.u), t.ordinality FROM read_json({_quote(path)}, format='unstructured', "
                f"columns={{data: '{STRUCT}'}}) r, unnest(r.data) WITH ORDINALITY AS t(u, ordinality))")
    form = {"array": "array", "lines": "newline_delimited", "object": "unstructured"}[shape]
    return f"read_json({_quote(path)}, format='{form}', columns={COLUMNS}) WITH ORDINALITY"
