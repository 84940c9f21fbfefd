"""Seeded, realistic request bodies for the load generator: /gex snapshots and /uw trade frames (CONTRACT 1, 3).

Encoding JSON costs far more than sending it, so each body maker encodes a small pool of bodies up front; a
request then only joins a short unique head (timestamp and ticker, or the trade id) to one pre-encoded tail.
"""
import datetime as dt
import json
import random
import uuid

START = 1777492800  # the CONTRACT example's timestamp; a fixed start keeps runs reproducible
TICKERS = ("SPX", "NDX", "SPY", "QQQ")
SPOT = {"SPX": 6800.0, "NDX": 24000.0, "SPY": 680.0, "QQQ": 590.0, "ES_SPX": 6830.0, "NQ_NDX": 24100.0}
STEP = {"SPX": 5.0, "NDX": 25.0, "SPY": 1.0, "QQQ": 1.0, "ES_SPX": 5.0, "NQ_NDX": 25.0}
POOL = 32  # distinct tails per ticker: enough variety that no two neighbouring requests carry equal data


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def gex_snapshot(rnd, ticker, timestamp, n_strikes, spot):
    """One snapshot dict of CONTRACT section 1, strikes centred on spot."""
    step = STEP[ticker]
    centre = round(spot / step) * step
    rows = []
    for k in range(n_strikes):
        strike = centre + (k - n_strikes // 2) * step
        g = round(rnd.gauss(0, 200), 3)
        priors = [round(g * rnd.uniform(0.8, 1.2), 3) for _ in range(5)]
        rows.append([strike, g, round(g * rnd.uniform(0.2, 0.6), 3), priors])
    top_vol = max(rows, key=lambda r: r[1])[0]
    return {
        "timestamp": timestamp, "ticker": ticker, "min_dte": 0, "sec_min_dte": 1,
        "spot": round(spot, 2), "zero_gamma": round(spot * rnd.uniform(0.995, 1.005), 2),
        "major_pos_vol": top_vol, "major_pos_oi": max(rows, key=lambda r: r[2])[0],
        "major_neg_vol": min(rows, key=lambda r: r[1])[0], "major_neg_oi": min(rows, key=lambda r: r[2])[0],
        "strikes": rows,
        # Summing values of 3 decimals and rounding to 3 gives the exact sum, free of float noise.
        "sum_gex_vol": round(sum(r[1] for r in rows), 3), "sum_gex_oi": round(sum(r[2] for r in rows), 3),
        "delta_risk_reversal": round(rnd.gauss(0.1, 0.05), 3),
        "max_priors": [[top_vol, round(rnd.uniform(1e5, 1e6), 3)] for _ in range(6)],
    }


def gex_tail(snapshot):
    """The encoded snapshot after its timestamp and ticker, which GexBodies writes per request."""
    rest = {k: v for k, v in snapshot.items() if k not in ("timestamp", "ticker")}
    return compact(rest)[1:]  # drop the "{": the head opens the object


class GexBodies:
    """Body i is a snapshot of tickers[i % len(tickers)] at start + i // len(tickers) seconds.

    Every i therefore has its own (ticker, timestamp), which the server's deduplication requires.
    """

    def __init__(self, n_strikes, seed=1, start=START, tickers=TICKERS):
        rnd = random.Random(seed)
        self.start = start
        self.tickers = tickers
        self.tails = {}
        for ticker in tickers:
            spot = SPOT[ticker]
            tails = []
            for k in range(POOL):
                spot *= 1 + rnd.gauss(0, 0.0002)  # a random walk, as consecutive seconds look
                tails.append(gex_tail(gex_snapshot(rnd, ticker, start + k, n_strikes, spot)))
            self.tails[ticker] = tails

    def __call__(self, i):
        ticker = self.tickers[i % len(self.tickers)]
        second = i // len(self.tickers)
        head = b'{"timestamp":%d,"ticker":"%s",' % (self.start + second, ticker.encode())
        return head + self.tails[ticker][second % POOL]


def occ_symbol(root, expiry, right, strike):
    """OCC option symbol, e.g. ARM260116C00118000."""
    return f"{root}{expiry:%y%m%d}{right}{round(strike * 1000):08d}"


def uw_trade(rnd, executed_at):
    """One option trade as the Unusual Whales browser socket sends it: decimals as strings."""
    root, spot = rnd.choice([("SPXW", 6800.0), ("SPY", 680.0), ("QQQ", 590.0), ("TSLA", 430.0), ("NVDA", 180.0)])
    right = rnd.choice("CP")
    strike = round(spot * rnd.uniform(0.95, 1.05))
    expiry = executed_at.date() + dt.timedelta(days=rnd.choice([0, 1, 7, 30]))
    price = round(rnd.uniform(0.05, 40), 2)
    size = rnd.randint(1, 500)
    bid = max(0.01, round(price - rnd.uniform(0, 0.2), 2))
    side = rnd.choice(["ask_side", "bid_side", "mid_side"])
    return {
        "option_chain_id": occ_symbol(root, expiry, right, strike),
        "executed_at": executed_at.isoformat().replace("+00:00", "Z"),
        "price": f"{price:.2f}", "size": size, "premium": f"{price * size * 100:.2f}",
        "volume": size + rnd.randint(0, 20000), "open_interest": rnd.randint(0, 50000),
        "nbbo_bid": f"{bid:.2f}", "nbbo_ask": f"{bid + 0.1:.2f}", "underlying_price": f"{spot:.2f}",
        "implied_volatility": f"{rnd.uniform(0.1, 0.8):.6f}",
        "delta": f"{rnd.uniform(0, 1) * (1 if right == 'C' else -1):.6f}", "gamma": f"{rnd.uniform(0, 0.05):.6f}",
        "theta": f"{-rnd.uniform(0, 2):.6f}", "vega": f"{rnd.uniform(0, 1):.6f}", "rho": f"{rnd.uniform(0, 0.5):.6f}",
        "theo": f"{price:.4f}", "exchange": rnd.choice(["CBOE", "PHLX", "ISE", "MIAX"]),
        "tags": [side, "bullish" if (side == "ask_side") == (right == "C") else "bearish"],
        "ask_vol": rnd.randint(0, 9000), "bid_vol": rnd.randint(0, 9000), "mid_vol": rnd.randint(0, 900),
        "no_side_vol": 0, "multi_vol": rnd.randint(0, 300), "stock_multi_vol": 0, "report_flags": [],
        "is_agg": False, "issue_type": "Index" if root == "SPXW" else "Common Stock",
    }


class UwBodies:
    """Body i is a Phoenix frame of topic option_trades_super_algo whose trade carries uuid number i."""

    OPEN = b'[null,null,"option_trades_super_algo","new_msg",{"data":{'

    def __init__(self, seed=1, start=START):
        rnd = random.Random(seed)
        # A seeded 128-bit base xor i gives distinct uuids for every i; the version and variant bits that
        # UUID(version=4) overwrites sit above bit 61, out of reach of any i a run can produce.
        self.base = rnd.getrandbits(128)
        t0 = dt.datetime.fromtimestamp(start, dt.timezone.utc)
        self.tails = []
        for k in range(POOL):
            executed_at = t0 + dt.timedelta(seconds=k, microseconds=rnd.randrange(10**6))
            frame = compact([None, None, "option_trades_super_algo", "new_msg", {"data": uw_trade(rnd, executed_at)}])
            self.tails.append(b'",' + frame[len(self.OPEN):])  # the id goes first, ahead of the trade's fields

    def __call__(self, i):
        trade_id = str(uuid.UUID(int=self.base ^ i, version=4)).encode()
        return self.OPEN + b'"id":"' + trade_id + self.tails[i % POOL]
