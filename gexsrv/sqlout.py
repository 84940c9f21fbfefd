"""The formats of GET /api/sql's reply (gexsrv.sql's Result): JSON (the default), CSV and Parquet.

JSON: {"columns", "types" (DuckDB's), "rows" (one array per row), "truncated", "max_rows"}; values as JSON
has them: timestamps and dates ISO-8601 (a TIMESTAMPTZ in UTC, with Z), decimals as numbers, NaN and infinities
null, blobs base64, intervals [months, days, nanoseconds]. CSV and Parquet carry the rows alone (what CSV cannot
hold, lists, structs, blobs and intervals, as that JSON text); X-Truncated says whether rows were cut off.
"""

import io

import msgspec
import pyarrow as pa
import pyarrow.csv
import pyarrow.parquet

FORMATS = {"json": "application/json", "csv": "text/csv; charset=utf-8",
           "parquet": "application/vnd.apache.parquet"}
JSON = msgspec.json.Encoder(decimal_format="number")


class Unencodable(Exception):
    """The result cannot be written in the format asked for; the message says why and what to do."""


def encode(result, form):
    """(body, Content-Type) of the Result in form, one of FORMATS."""
    return ENCODERS[form](result), FORMATS[form]


def _json(result):
    table = _in_utc(result.table)
    rows = list(zip(*(column.to_pylist() for column in table.columns))) if table.num_columns else []
    return JSON.encode({"columns": result.columns, "types": result.types, "rows": rows,
                        "truncated": result.truncated, "max_rows": result.max_rows})


def _in_utc(table):
    """Zoned timestamps in UTC: DuckDB hands them over in its TimeZone setting, the server's local zone."""
    for i, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp(field.type.unit, "UTC")))
    return table


def _as_json_text(table, unwritable):
    """table with each column of a type the writer cannot take replaced by the JSON text of its values."""
    for i, field in enumerate(table.schema):
        if unwritable(field.type):
            text = [None if value is None else JSON.encode(value).decode() for value in table.column(i).to_pylist()]
            table = table.set_column(i, field.name, pa.array(text, pa.string()))
    return table


def _nested(kind):
    return pa.types.is_nested(kind) or pa.types.is_interval(kind) or pa.types.is_binary(kind)


def _csv(result):
    out = io.BytesIO()
    pyarrow.csv.write_csv(_as_json_text(result.table, _nested), out)
    return out.getvalue()


def _parquet(result):
    names = result.columns
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:  # readers (Polars, DuckDB) refuse such a file
        raise Unencodable(f"column {twice[0]!r} appears more than once: name each column once (AS) for Parquet")
    out = io.BytesIO()
    pyarrow.parquet.write_table(_as_json_text(result.table, pa.types.is_interval), out, compression="zstd")
    return out.getvalue()


ENCODERS = {"json": _json, "csv": _csv, "parquet": _parquet}
