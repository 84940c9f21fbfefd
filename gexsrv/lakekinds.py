"""What the Parquet lake's files hold and how they are named (gexsrv.lake writes them, gexsrv.validate reads them
back); kept apart from the exporter so that readers need neither Polars nor the store.

A file is <YYYYMMDD>[.<first>-<last>].<kind>.parquet, <kind> the table its rows copy without `gex_` (why: see
gexsrv.lake's docstring).
"""

import os
import re
from typing import NamedTuple

PARTS_KEY = "gexsrv_parts"  # a day file's Parquet metadata: the part files it holds, as a JSON list
BACKFILL = "0-0"  # the range of the rows stored before they drew numbers (numbers start at 1)


class Kind(NamedTuple):
    """What one kind of lake file holds: its table's rows, these columns after the key, in this order."""

    table: str
    columns: str
    order: str  # within a (ticker, endpoint): the rows' key


KINDS = {
    "strikes": Kind("gex_strikes", "strike, gamma, oi_gamma, priors", "timestamp, strike"),
    "snapshots": Kind("gex_snapshots", "spot_price, zero_gamma, net_gex, min_dte, sec_min_dte, major_pos_vol, "
                      "major_pos_oi, major_neg_vol, major_neg_oi, sum_gex_vol, sum_gex_oi, delta_risk_reversal, "
                      "max_priors, received_at, source", "timestamp"),
    "majors": Kind("gex_majors", "spot, zero_gamma, mpos_vol, mpos_oi, mneg_vol, mneg_oi, net_gex_vol, "
                   "net_gex_oi, received_at, source", "timestamp"),
    "maxchange": Kind("gex_maxchange", "current_strike, current_value, one_strike, one_value, five_strike, "
                      "five_value, ten_strike, ten_value, fifteen_strike, fifteen_value, thirty_strike, "
                      "thirty_value, received_at, source", "timestamp"),
}
# The kinds whose rows drew no numbers before the lake held them; strike rows always did (legacy ones never).
BACKFILLED = ("snapshots", "majors", "maxchange")
NAMES = "|".join(KINDS)
PART = re.compile(rf"^(?P<day>\d{{8}})\.(?P<range>\d+-\d+)\.(?P<kind>{NAMES})\.parquet$")
DAY = re.compile(rf"^(?P<day>\d{{8}})\.(?P<kind>{NAMES})\.parquet$")


def lake_root(data_dir):
    return os.path.join(data_dir, "parquet", "gexbot")
