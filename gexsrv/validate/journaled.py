"""What the journal acknowledged against what DuckDB holds: the raw archive (data/source/live/<YYYYMMDD>/*.ndjson.zst,
gexsrv.archive) and the records ingest could not store (gexsrv_quarantine).

`archive_sample` takes a seeded sample of the archived records' keys, (kind, ticker, endpoint, ts) for GEX records
and the raw row id for /uw frames. Ingest keeps the first record of a key, so each sampled key is compared with its
first line (in seq order); later lines of the key, duplicates, may say anything. The sampled GEX lines are decoded
by ingest's own rule (gexsrv.journalline.decode_line) into the row ingest would insert (gexsrv.batches.rows), and one
query compares those rows with their tables, field by field, plus the number of strike rows. Three cases compare
the key's existence only, because the stored row was not written from that line: the first archived line is
flagged `dup` (the key was stored before, from a line no longer archived), the row came from a history import
(source 'history:<job>'), or its received_at is earlier than the line's. received_at itself is not compared:
an ISO time without a zone in a body is read in the server's configured zone, which the validator does not know.
Lines past the ingest position that the database snapshot holds (gexsrv_ingest), and quarantined lines, are left
out: the first are not ingested yet in the snapshot read, the second are reported by `quarantine`.
"""

import glob
import os

import msgspec
import pyarrow as pa

from gexsrv import archive, batches, gexwrite
from gexsrv.decode import Rules
from gexsrv.journal import SUFFIX
from gexsrv.journalline import decode_line, encode_line
from gexsrv.payloads import PayloadError
from gexsrv.validate import files
from gexsrv.validate.report import EXAMPLES, result, skipped

KINDS = gexwrite.WRITERS  # GEX kind -> its writer
HEADER = {"seq": "BIGINT", "kind": "VARCHAR", "path": "VARCHAR", "source": "VARCHAR", "ticker": "VARCHAR",
          "endpoint": "VARCHAR", "ts": "BIGINT", "received": "BIGINT", "addr": "VARCHAR", "ua": "VARCHAR",
          "id": "VARCHAR", "dup": "BOOLEAN"}
# The bodies are read as JSON, which DuckDB hands back re-serialised: same values, maybe other number spellings.
WITH_BODY = {**HEADER, "body": "JSON"}
# read_ndjson's limit of a line (its default, 16 MiB, leaves little room above max_body_bytes' 8 MiB); DuckDB's
# read buffers grow with it, so not more.
MAX_LINE_BYTES = 64 << 20
# ISO times without a zone are read in the server's local zone, as naive_time_zone's default says; only
# received_at depends on it, and that is not compared. The lines were accepted: decoded as ingest replays them.
RULES = Rules(naive_zone=None).replaying()
DIFF_COLUMNS = ["table", "ticker", "endpoint", "timestamp", "seq", "field", "duckdb", "archive"]


def archive_files(data_dir):
    return sorted(glob.glob(os.path.join(glob.escape(archive.archive_dir(data_dir)), "*", f"*{SUFFIX}.zst")))


def _read(paths, columns):
    spec = ", ".join(f"{name}: '{sqltype}'" for name, sqltype in columns.items())
    return (f"read_ndjson({files.sql_list(paths)}, columns = {{{spec}}}, records = true, filename = true, "
            f"maximum_object_size = {MAX_LINE_BYTES})")


def _first_lines(ctx, paths):
    """(keys in the archive, the sample as [(seq of the key's first line, its file)]) within the run's filters."""
    rows = ctx.rows(f"""WITH lines AS (
            SELECT seq, kind, ticker, endpoint, ts, id, filename, coalesce(ts, received) AS timestamp
            FROM {_read(paths, HEADER)}
            WHERE seq <= (SELECT max(seq) FROM gexsrv_ingest) AND seq NOT IN (SELECT seq FROM gexsrv_quarantine)),
        keys AS (
            SELECT kind, ticker, endpoint, ts, id, min(seq) AS seq, arg_min(filename, seq) AS file
            FROM lines WHERE {ctx.where()} GROUP BY kind, ticker, endpoint, ts, id)
        SELECT count(*) OVER (), seq, file FROM keys
        ORDER BY hash(kind, ticker, endpoint, ts, id, {int(ctx.options.seed)}), seq
        LIMIT {int(ctx.options.sample)}""")
    return (rows[0][0] if rows else 0), [row[1:] for row in rows]


def _lines(ctx, sample):
    """The sampled lines, each as a dict of its header fields and body (JSON text)."""
    seqs = ", ".join(str(seq) for seq, _ in sample)
    cursor = ctx.con.execute(f"SELECT * EXCLUDE (filename) FROM {_read(sorted({f for _, f in sample}), WITH_BODY)} "
                             f"WHERE seq IN ({seqs}) ORDER BY seq")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _decode(line):
    """The Record ingest made of a GEX line: the line as the journal wrote it, read back by ingest's rule."""
    header = {k: v for k, v in line.items() if k != "body" and v is not None}
    return decode_line(b"".join(encode_line(header, line["body"].encode())), RULES)


def _expected(lines):
    """{kind: Arrow table of the rows ingest would insert, with seq and dup; "uw": the frames' ids}, and the GEX
    lines that do not decode, with why."""
    decoded, undecodable = {kind: [] for kind in KINDS}, []
    for line in lines:
        if line["kind"] in KINDS:
            try:
                decoded[line["kind"]].append((line, _decode(line)))
            except (PayloadError, msgspec.MsgspecError) as exc:
                undecodable.append((line, str(exc).splitlines()[0]))
        elif line["kind"] != "uw":
            undecodable.append((line, f"unknown kind {line['kind']!r}"))
    frames = [line for line in lines if line["kind"] == "uw"]
    tables = {"uw": pa.table({"seq": pa.array([f["seq"] for f in frames], pa.int64()),
                              "received": pa.array([f["received"] for f in frames], pa.int64()),
                              "id": pa.array([f["id"] for f in frames], pa.string())})}
    for kind, pairs in decoded.items():
        table = batches.rows([record for _, record in pairs], KINDS[kind].row_type)
        table = table.append_column("seq", pa.array([line["seq"] for line, _ in pairs], pa.int64()))
        table = table.append_column("dup", pa.array([line["dup"] for line, _ in pairs], pa.bool_()))
        tables[kind] = table.append_column("strike_rows", pa.array([r.strike_rows for _, r in pairs], pa.int64()))
    return tables, undecodable


def _gex_diff(kind, writer):
    """Rows (table, key, seq, present, compared, field, duckdb, archive), one per field, of one GEX kind."""
    columns = ["source", *(name for name, _ in batches.COLUMNS[writer.row_type])]
    names = ["row", *columns]
    ours = ["CASE WHEN d.timestamp IS NULL THEN 'missing' ELSE 'present' END",
            *(f"d.{c}::VARCHAR" for c in columns)]
    theirs = ["'present'", *(f"e.{c}::VARCHAR" for c in columns)]
    strikes = ""
    if writer.with_strikes:
        names.append("strikes")
        ours.append("coalesce(s.n, 0)::VARCHAR")
        theirs.append("e.strike_rows::VARCHAR")
        strikes = (f"LEFT JOIN (SELECT ticker, endpoint, timestamp, count(*) AS n FROM gex_strikes "
                   f"SEMI JOIN expected_{kind} USING (ticker, endpoint, timestamp) GROUP BY ALL) s "
                   f"USING (ticker, endpoint, timestamp)")
    return f"""SELECT '{writer.table}' AS tbl, ticker, endpoint, timestamp, e.seq, d.timestamp IS NOT NULL AS present,
            NOT coalesce(e.dup OR d.source LIKE 'history:%' OR d.received_at < e.received_at, false) AS compared,
            unnest({names!r}) AS field, unnest([{', '.join(ours)}]) AS duckdb,
            unnest([{', '.join(theirs)}]) AS archive
        FROM expected_{kind} e LEFT JOIN {writer.table} d USING (ticker, endpoint, timestamp) {strikes}"""


UW_DIFF = """SELECT 'universal_webhooks', NULL, NULL, e.received, e.seq, w.id IS NOT NULL, false, 'row',
        CASE WHEN w.id IS NULL THEN 'missing' ELSE e.id END, e.id
    FROM expected_uw e LEFT JOIN universal_webhooks w ON w.id = TRY_CAST(e.id AS UUID)"""


def _compare(ctx, tables):
    parts = " UNION ALL ".join([*(_gex_diff(kind, w) for kind, w in KINDS.items()), UW_DIFF])
    for kind, table in tables.items():
        ctx.con.register(f"expected_{kind}", table)
    try:
        return ctx.rows(f"""SELECT count(*) OVER (), tbl, ticker, endpoint, timestamp, seq, field, duckdb, archive
            FROM ({parts})
            WHERE duckdb IS DISTINCT FROM archive AND (field = 'row' OR (present AND compared))
            ORDER BY tbl, ticker, endpoint, timestamp, seq, field LIMIT {EXAMPLES}""")
    finally:
        for kind in tables:
            ctx.con.unregister(f"expected_{kind}")


def archive_sample(ctx):
    name = "journaled.archive_sample"
    paths = archive_files(ctx.data_dir)
    if not paths:
        return skipped(name, f"no journal archive ({archive.archive_dir(ctx.data_dir)} holds no *{SUFFIX}.zst)")
    if not {"gexsrv_ingest", "gexsrv_quarantine"} <= ctx.tables.keys():
        return skipped(name, "no gexsrv_ingest table: this database was not written through the journal")
    if not ctx.options.sample:
        return skipped(name, "--sample 0")
    total, sample = _first_lines(ctx, paths)
    checked = (f"{len(sample)} of {total} archived keys (seed {ctx.options.seed}; {len(paths)} files), "
               "each key's first line against DuckDB")
    if not sample:
        return result(name, [], DIFF_COLUMNS, checked=checked)
    tables, undecodable = _expected(_lines(ctx, sample))
    rows = _compare(ctx, tables)
    count = (rows[0][0] if rows else 0) + len(undecodable)
    bad = [(None, line["ticker"], line["endpoint"], line["ts"], line["seq"], "decode", None, why)
           for line, why in undecodable]
    examples = [row[1:] for row in rows] + bad
    return result(name, [(count, *row) for row in examples[:EXAMPLES]], DIFF_COLUMNS, unit="values",
                  checked=checked)


def quarantine(ctx):
    """A quarantined record was acknowledged to its client but is in no table: each one needs a decision."""
    name = "journaled.quarantine"
    if "gexsrv_quarantine" not in ctx.tables:
        return skipped(name, "no gexsrv_quarantine table")
    rows = ctx.rows(f"""SELECT count(*) OVER (), seq, kind, ticker, endpoint, timestamp, error FROM (
            SELECT seq, error, line->>'$.kind' AS kind, line->>'$.ticker' AS ticker,
                   line->>'$.endpoint' AS endpoint,
                   coalesce((line->>'$.ts')::BIGINT, (line->>'$.received')::BIGINT) AS timestamp
            FROM gexsrv_quarantine)
        WHERE {ctx.where()} ORDER BY seq LIMIT {EXAMPLES}""")
    return result(name, rows, ["seq", "kind", "ticker", "endpoint", "timestamp", "error"],
                  checked="no journaled record left out of its table (gexsrv_quarantine is empty)")


CHECKS = [archive_sample, quarantine]
