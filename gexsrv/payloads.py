"""msgspec Structs for every GEX wire shape, as clients send them (CONTRACT sections 1 and 6).

One `GexPayload` lists every field a gexbot snapshot, majors or maxchange object may carry, under every name the
original accepted; `Envelope` adds the original's envelope fields around it. What gets stored is decided by
gexsrv.decode and described by gexsrv.records.
"""

from typing import Annotated, Literal

from msgspec import Meta, Raw, Struct

# JSON numbers like 1e999 decode to inf; the bounds turn that into a validation error.
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]
Int32 = Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)]  # min_dte and sec_min_dte are INTEGER columns
Text = Annotated[str, Meta(max_length=200)]
Kind = Literal["snapshot", "majors", "maxchange"]

NOTHING = Raw()  # an absent field; msgspec allows no `Raw | None`


class PayloadError(ValueError):
    """A rejected body: `field` is the JSON path of the problem, `reason` says what is wrong with it."""

    def __init__(self, field, reason):
        super().__init__(f"{reason} - at `{field}`")
        self.field = field
        self.reason = reason


# gc=False: a payload holds no reference cycles, and hundreds of thousands of tracked objects in flight would
# make every garbage collection walk them all. Tuples of floats are untracked by the collector too, lists are not.
class StrikeRow(Struct, array_like=True, gc=False):
    """[strike, gex_by_volume, gex_by_oi, [priors 1m, 5m, 10m, 15m, 30m]]; the last two may be missing."""

    strike: Finite
    gamma: Finite
    oi_gamma: Finite | None = None
    priors: tuple[Finite | None, ...] | None = None


class Pair(Struct, array_like=True, gc=False):
    strike: Finite
    value: Finite


class GexPayload(Struct, gc=False):
    """Every field of a GEX payload of any kind. Aliases of one value sit side by side (CONTRACT section 6)."""

    timestamp: Finite | Text | None = None
    ticker: Text | None = None
    endpoint: Text | None = None
    kind: Kind | None = None
    received_at: Finite | Text | None = None
    spot: Finite | None = None
    zero_gamma: Finite | None = None
    net_gex: Finite | None = None
    net_gex_vol: Finite | None = None
    sum_gex_vol: Finite | None = None
    net_gex_oi: Finite | None = None
    sum_gex_oi: Finite | None = None
    min_dte: Int32 | None = None
    sec_min_dte: Int32 | None = None
    major_pos_vol: Finite | None = None
    major_pos_oi: Finite | None = None
    major_neg_vol: Finite | None = None
    major_neg_oi: Finite | None = None
    mpos_vol: Finite | None = None
    mpos_oi: Finite | None = None
    mneg_vol: Finite | None = None
    mneg_oi: Finite | None = None
    delta_risk_reversal: Finite | None = None
    max_priors: list[list[Finite | None]] | None = None
    strikes: Raw = NOTHING  # list[StrikeRow], decoded on its own so that one bad row can be skipped
    current: Pair | None = None
    one: Pair | None = None
    five: Pair | None = None
    ten: Pair | None = None
    fifteen: Pair | None = None
    thirty: Pair | None = None


class Envelope(GexPayload):
    """The original's envelope {"ticker", "endpoint"|"feed", "kind", "received_at", "data"|"payload": {...}}, or
    a bare payload (then `data` and `payload` are absent)."""

    feed: Text | None = None
    data: Raw = NOTHING
    payload: Raw = NOTHING
