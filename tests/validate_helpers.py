"""Clean data for the validator's tests: a legacy database adopted by a real server, plus live posts to it.

The live data sits inside one New York session (2026-04-29, a Wednesday, 10:00-10:20 EDT), one snapshot a
minute for SPX (gex_zero and gex_one) and ES_SPX (gex_zero), with majors and maxchange for SPX.
"""

import json
import shutil

import duckdb

import make_legacy_db
from gexsrv import validate
from gexsrv.validate import options
from helpers import Server, snapshot

T0 = 1777471200  # 2026-04-29 14:00:00 UTC = 10:00 New York
MS = T0 * 1000
MINUTE = 60_000  # in ms
STEPS = 20
NOW_MS = 1780000000000  # 2026-05-28: "now" for runs in-process, after all the data
LIVE = [("SPX", "gex_zero"), ("SPX", "gex_one"), ("ES_SPX", "gex_zero")]


def live_snapshot(ticker, endpoint, i):
    body = snapshot(ticker=ticker, timestamp=T0 + 60 * i, spot=7100.0 + 0.5 * i + (30 if ticker == "ES_SPX" else 0))
    return {**body, "endpoint": endpoint}


def majors(i):
    spot = 7100.0 + 0.5 * i
    return {"timestamp": T0 + 60 * i, "ticker": "SPX", "endpoint": "gex_zero", "spot": spot, "zero_gamma": spot - 20,
            "mpos_vol": spot + 5, "mpos_oi": spot + 5, "mneg_vol": spot - 10, "mneg_oi": spot - 10,
            "net_gex_vol": 10.0, "net_gex_oi": 4.0}


def maxchange(i):
    return {"timestamp": T0 + 60 * i, "ticker": "SPX", "endpoint": "gex_maxchange",
            **{k: [7105.0, 100.0 + i] for k in ("current", "one", "five", "ten", "fifteen", "thirty")}}


TRADE_FRAME = [None, None, "option_trades_super_algo", "new_msg", {"data": {
    "id": "0d9c6f3e-4b8a-4f7e-9a51-3c2d1e0f9a11", "option_chain_id": "SPX260116C07000000",
    "executed_at": "2026-04-29T14:00:00Z", "price": "12.5", "size": 3, "premium": "3750", "underlying_price": "7100",
}}]


def build_clean(root):
    """data dir under root: legacy rows (one day, SPX and NDX) adopted by gexsrv, then the live posts."""
    data = root / "data"
    data.mkdir(parents=True)
    make_legacy_db.build(data / "gex_data.db", days=1, every=60, n_strikes=10)
    server = Server(data).start()
    try:
        for i in range(STEPS):
            for ticker, endpoint in LIVE:
                assert server.post("/gex", live_snapshot(ticker, endpoint, i)).status == 202
            assert server.post("/gex", majors(i)).status == 202
            assert server.post("/gex", maxchange(i)).status == 202
        assert server.post("/uw", TRADE_FRAME).status == 200
    finally:
        server.stop()
    return data


def copy_of(clean, tmp_path, lake=True):
    """A copy of the clean data dir, optionally without its Parquet lake (to test DuckDB on its own)."""
    target = tmp_path / "copy"
    shutil.copytree(clean, target, ignore=None if lake else shutil.ignore_patterns("parquet"))
    return target


def plant(data, *statements):
    """Run statements on the copy, read-write: planting a defect is the test's job, never the validator's."""
    with duckdb.connect(str(data / "gex_data.db")) as con:
        for sql in statements:
            con.execute(sql)


def run(data, **values):
    """The validator in-process, with a fixed clock."""
    con = validate.open_read_only(str(data))
    try:
        return validate.run(con, str(data), options.parse(values), now_ms=NOW_MS)
    finally:
        con.close()


def problems(report):
    """{check name: status} of every check that did not pass or skip."""
    return {c.name: c.status for c in report.checks if c.status not in ("passed", "skipped")}


def check(report, name):
    return next(c for c in report.checks if c.name == name)


def write_staged(data, ticker, endpoint, bodies):
    folder = data / "source" / "gexbot"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{ticker}_{endpoint}_history.json"
    path.write_text(json.dumps(bodies))
    return path
