"""market_agg_socket snapshots (uw_market_agg) and flow-alerts records (uw_flow_alerts) as rows.

Each row keeps its whole record as JSON in `data`, so fields not typed here are not lost.
"""

import msgspec
from msgspec import Struct

from gexsrv.decode import decode_with
from gexsrv.payloads import PayloadError
from gexsrv.uw import occ
from gexsrv.uw.frames import items
from gexsrv.uw.values import count, date, number, option_type, timestamp_us

Num = str | float | None
Count = str | int | float | None


class MarketAgg(Struct):
    date: str | None = None
    call_premium: Num = None
    put_premium: Num = None
    call_volume: Count = None
    put_volume: Count = None
    put_call_ratio: Num = None


class FlowAlert(Struct):
    id: str | int | None = None
    rule_name: str | None = None
    ticker: str | None = None
    option_chain: str | None = None
    expiry: str | None = None
    type: str | None = None
    strike: Num = None
    executed_at: str | int | float | None = None
    price: Num = None
    underlying_price: Num = None
    total_premium: Num = None
    total_size: Count = None
    total_ask_side_prem: Num = None
    total_bid_side_prem: Num = None
    volume: Count = None
    open_interest: Count = None
    trade_count: Count = None
    has_sweep: bool | None = None
    has_floor: bool | None = None
    has_multileg: bool | None = None
    all_opening_trades: bool | None = None


MARKET_AGG = msgspec.json.Decoder(MarketAgg)
FLOW_ALERT = msgspec.json.Decoder(FlowAlert)
ALERT_DECIMALS = ["price", "underlying_price", "total_premium", "total_ask_side_prem", "total_bid_side_prem"]
ALERT_COUNTS = ["total_size", "volume", "open_interest", "trade_count"]
ALERT_FLAGS = ["has_sweep", "has_floor", "has_multileg", "all_opening_trades"]


def _each(frame, decoder, to_row, problems):
    """to_row(record, raw, path, problems) for every record of the payload; a record with problems is left out."""
    rows = []
    try:
        found = items(frame.payload, frame.prefix)
    except PayloadError as exc:
        problems.add(exc.field, exc.reason)
        return []
    for raw, path in found:
        before = len(problems)
        try:
            row = to_row(decode_with(decoder, raw, path), path, problems)
        except PayloadError as exc:
            problems.add(exc.field, exc.reason)
            continue
        if len(problems) == before:
            rows.append({**row, "data": bytes(raw).decode()})
    return rows


def market_agg_rows(frame, webhook_id, problems):
    return _each(frame, MARKET_AGG, _market_agg, problems)


def flow_alert_rows(frame, webhook_id, problems):
    return _each(frame, FLOW_ALERT, _flow_alert, problems)


def _market_agg(agg, path, problems):
    return {
        "date": date(agg.date, f"{path}.date", problems),
        "call_premium": number(agg.call_premium, f"{path}.call_premium", problems),
        "put_premium": number(agg.put_premium, f"{path}.put_premium", problems),
        "call_volume": count(agg.call_volume, f"{path}.call_volume", problems),
        "put_volume": count(agg.put_volume, f"{path}.put_volume", problems),
        "put_call_ratio": number(agg.put_call_ratio, f"{path}.put_call_ratio", problems),
    }


def _flow_alert(alert, path, problems):
    row = {name: number(getattr(alert, name), f"{path}.{name}", problems) for name in ALERT_DECIMALS}
    row.update({name: count(getattr(alert, name), f"{path}.{name}", problems) for name in ALERT_COUNTS})
    row.update({name: getattr(alert, name) for name in ALERT_FLAGS})
    row.update(
        alert_id=None if alert.id is None else str(alert.id), rule_name=alert.rule_name, ticker=alert.ticker,
        option_chain=alert.option_chain, executed_at=timestamp_us(alert.executed_at, f"{path}.executed_at", problems),
        expiration=date(alert.expiry, f"{path}.expiry", problems),
        option_type=option_type(alert.type, f"{path}.type", problems),
        strike=number(alert.strike, f"{path}.strike", problems),
    )
    if alert.option_chain:
        try:
            contract = occ.parse(alert.option_chain)
        except ValueError as exc:
            problems.add(f"{path}.option_chain", str(exc))
            return row
        row.update(expiration=row["expiration"] or contract.expiry, strike=row["strike"] or contract.strike,
                   option_type=row["option_type"] or contract.option_type, ticker=alert.ticker or contract.underlying)
    return row
