"""What a decoded GEX payload stores: one Record per payload, its row's fields named and typed as the columns that
hold them (gexsrv.schema), so a value that fits its field fits its column."""

import msgspec
from msgspec import Struct

from gexsrv.payloads import StrikeRow


class SnapshotRow(Struct, gc=False):
    """gex_snapshots, plus the snapshot's gex_strikes rows."""

    spot_price: float | None
    zero_gamma: float | None
    net_gex: float | None
    sum_gex_vol: float | None
    sum_gex_oi: float | None
    min_dte: int | None
    sec_min_dte: int | None
    major_pos_vol: float | None
    major_pos_oi: float | None
    major_neg_vol: float | None
    major_neg_oi: float | None
    delta_risk_reversal: float | None
    max_priors: str | None  # JSON text, as the established table keeps it
    strikes: list[StrikeRow]  # empty as decoded: decode.with_strikes makes them from Record.strikes_json


class MajorsRow(Struct, gc=False):
    """gex_majors."""

    spot: float | None
    zero_gamma: float | None
    mpos_vol: float | None
    mpos_oi: float | None
    mneg_vol: float | None
    mneg_oi: float | None
    net_gex_vol: float | None
    net_gex_oi: float | None


class MaxChangeRow(Struct, gc=False):
    """gex_maxchange: each window's [strike, value] pair as two columns."""

    current_strike: float | None
    current_value: float | None
    one_strike: float | None
    one_value: float | None
    five_strike: float | None
    five_value: float | None
    ten_strike: float | None
    ten_value: float | None
    fifteen_strike: float | None
    fifteen_value: float | None
    thirty_strike: float | None
    thirty_value: float | None


class Record(Struct, gc=False):
    """One decoded GEX payload: its key, when it arrived (epoch ms) and its row. `problems` lists what of the
    payload was not stored and why ({"field": JSON path, "error": ...}); the reply carries them.

    Ingest takes the strike rows from their own JSON text (`strikes_json`, the very bytes the decoder read),
    parsed by DuckDB off the event loop (gexsrv.gexwrite); `skipped` lists the indexes of the rows the decoder
    left out, `strike_rows` counts the rest. Decoding makes no StrikeRow objects (gexsrv.strikecheck); a record given
    them for a view (decode.with_strikes) lets go of them before ingest holds it (`held`)."""

    kind: str  # snapshot | majors | maxchange
    ticker: str
    endpoint: str
    timestamp_ms: int
    received_ms: int
    row: SnapshotRow | MajorsRow | MaxChangeRow
    problems: list
    source: str = "live"  # live (requests and the poller) | history:<job id>
    strikes_json: bytes = b""
    skipped: tuple = ()
    strike_rows: int = 0

    def held(self):
        """This record as ingest holds it: without the StrikeRow objects, whose JSON text it keeps (itself when it
        has none, as decode_gex makes it)."""
        if self.kind != "snapshot" or not self.row.strikes:
            return self
        return msgspec.structs.replace(self, row=msgspec.structs.replace(self.row, strikes=[]))

    @property
    def key(self):
        return (self.kind, self.ticker, self.endpoint, self.timestamp_ms)
