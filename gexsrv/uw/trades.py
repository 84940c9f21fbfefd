"""Option trades (topics option_trades*) as option_trades_events rows.

Two payloads carry them: Unusual Whales trades ({"data": trade}, a bare trade, or a list of either), and the
original's trade-execution shape {"alert": {...}, "executions": [...]}, stored one row per execution.
A trade with any problem is left out (its raw row keeps it); the problems say why.
"""

import uuid

import msgspec
from msgspec import Raw, Struct

from gexsrv.payloads import PayloadError
from gexsrv.uw import occ
from gexsrv.uw.frames import NOTHING, decode, is_object, items
from gexsrv.uw.values import count, date, number, option_type, text, texts, timestamp_us

Num = str | float | None
Count = str | int | float | None

DECIMALS = ["price", "premium", "underlying_price", "implied_volatility", "delta", "gamma", "theta", "vega", "rho",
            "theo"]
COUNTS = ["size", "volume", "open_interest", "ask_vol", "bid_vol", "mid_vol", "no_side_vol", "multi_vol",
          "stock_multi_vol"]
SIDES = {"ask_side": "ask", "bid_side": "bid", "mid_side": "mid", "no_side": "no_side"}


class Trade(Struct):
    id: str | int | None = None
    option_chain_id: str | None = None
    option_symbol: str | None = None
    underlying_symbol: str | None = None
    executed_at: str | int | float | None = None
    price: Num = None
    size: Count = None
    premium: Num = None
    volume: Count = None
    open_interest: Count = None
    nbbo_bid: Num = None
    nbbo_ask: Num = None
    ewma_nbbo_bid: Num = None
    ewma_nbbo_ask: Num = None
    underlying_price: Num = None
    implied_volatility: Num = None
    delta: Num = None
    gamma: Num = None
    theta: Num = None
    vega: Num = None
    rho: Num = None
    theo: Num = None
    exchange: str | None = None
    tags: list[str] | None = None
    ask_vol: Count = None
    bid_vol: Count = None
    mid_vol: Count = None
    no_side_vol: Count = None
    multi_vol: Count = None
    stock_multi_vol: Count = None
    report_flags: list[str | int] | None = None
    is_agg: bool | None = None
    trade_ids: list[str | int] | None = None


class Alert(Struct):
    symbol: str | None = None
    action: str | None = None
    quantity: Num = None
    price: Num = None
    strike: Num = None
    option_type: str | None = None
    expiration: str | None = None
    order_type: str | None = None


class Execution(Struct):
    dry_run: bool | None = None
    broker: str | None = None
    venue: str | None = None
    status: str | None = None
    quantity: Num = None
    price: Num = None
    execution_price: Num = None


class TradeExecution(Struct):
    alert: Alert
    executions: list[Execution] = []


class Probe(Struct):
    alert: Raw = NOTHING


TRADE = msgspec.json.Decoder(Trade)
TRADE_EXECUTION = msgspec.json.Decoder(TradeExecution)
PROBE = msgspec.json.Decoder(Probe)


def rows(frame, webhook_id, problems):
    """option_trades_events rows of a frame's payload; what cannot be read is added to problems."""
    try:
        if is_object(frame.payload) and decode(PROBE, frame.payload, frame.prefix).alert:
            return execution_rows(frame.payload, frame.prefix, webhook_id, problems)
        return [row for raw, path in items(frame.payload, frame.prefix)
                if (row := trade_row(raw, path, problems)) is not None]
    except PayloadError as exc:
        problems.add(exc.field, exc.reason)
        return []


def _occ(symbol, field, problems):
    try:
        return occ.parse(symbol)
    except ValueError as exc:
        return problems.add(field, str(exc))


def trade_row(raw, path, problems):
    """One Unusual Whales trade as a row, or None (with problems) if any of it is unreadable."""
    try:
        trade = decode(TRADE, raw, path)
    except PayloadError as exc:
        return problems.add(exc.field, exc.reason)
    before = len(problems)
    symbol_field = "option_chain_id" if trade.option_chain_id else "option_symbol"
    symbol = trade.option_chain_id or trade.option_symbol
    if trade.id in (None, ""):
        problems.add(f"{path}.id", "missing trade id")
    if trade.executed_at in (None, ""):
        problems.add(f"{path}.executed_at", "missing trade time")
    if not symbol:
        problems.add(f"{path}.option_chain_id", "missing option symbol (option_chain_id or option_symbol)")
    contract = _occ(symbol, f"{path}.{symbol_field}", problems) if symbol else None
    row = {name: number(getattr(trade, name), f"{path}.{name}", problems) for name in DECIMALS}
    row.update({name: count(getattr(trade, name), f"{path}.{name}", problems) for name in COUNTS})
    for side in ("bid", "ask"):
        quote, ewma = f"nbbo_{side}", f"ewma_nbbo_{side}"
        chosen = quote if getattr(trade, quote) not in (None, "") else ewma
        row[quote] = number(getattr(trade, chosen), f"{path}.{chosen}", problems)
    row["executed_at"] = timestamp_us(trade.executed_at, f"{path}.executed_at", problems)
    if len(problems) > before:
        return None
    underlying = trade.underlying_symbol or contract.underlying
    row.update(
        trade_id=str(trade.id), option_symbol=symbol.strip(), underlying_symbol=underlying, root=contract.root,
        expiration=contract.expiry, option_type=contract.option_type, strike=contract.strike,
        exchange=trade.exchange, tags=trade.tags, report_flags=texts(trade.report_flags), is_agg=trade.is_agg,
        trade_ids=texts(trade.trade_ids), symbol=underlying, side=_side(trade.tags), quantity=row["size"],
        raw_payload=bytes(raw).decode(),
    )
    return row


def _side(tags):
    return next((SIDES[tag] for tag in tags or () if tag in SIDES), None)


def execution_rows(payload, prefix, webhook_id, problems):
    """One row per execution of {"alert", "executions"}; an alert without executions gives one row of its own.

    Such rows have no trade id of their own: theirs is uuid5(raw webhook id, "execution/<index>"), stable
    across replays because the raw id is derived from the body's content.
    """
    shape = decode(TRADE_EXECUTION, payload, prefix)
    before = len(problems)
    alert, field = shape.alert, f"{prefix}.alert"
    contract = _maybe_occ(alert.symbol)
    common = {
        "symbol": alert.symbol, "side": alert.action, "order_type": alert.order_type,
        "quantity": number(alert.quantity, f"{field}.quantity", problems),
        "price": number(alert.price, f"{field}.price", problems),
        "strike": number(alert.strike, f"{field}.strike", problems),
        "option_type": option_type(alert.option_type, f"{field}.option_type", problems),
        "expiration": date(alert.expiration, f"{field}.expiration", problems),
        "raw_payload": bytes(payload).decode(),
    }
    if contract:
        common.update(option_symbol=alert.symbol.strip(), underlying_symbol=contract.underlying, root=contract.root)
        for column, value in (("strike", contract.strike), ("option_type", contract.option_type),
                              ("expiration", contract.expiry)):
            common[column] = common[column] if common[column] is not None else value
    elif alert.symbol:
        common["underlying_symbol"] = alert.symbol.strip().upper()
    executions = [_execution(e, f"{prefix}.executions[{i}]", problems) for i, e in enumerate(shape.executions)]
    if len(problems) > before:
        return []
    base = uuid.UUID(webhook_id)
    if not executions:
        return [{**common, "trade_id": str(uuid.uuid5(base, "alert"))}]
    return [{**common, **e, "trade_id": str(uuid.uuid5(base, f"execution/{i}"))} for i, e in enumerate(executions)]


def _maybe_occ(symbol):
    """The alert's symbol may be an OCC symbol or a plain ticker."""
    try:
        return occ.parse(symbol) if symbol else None
    except ValueError:
        return None


def _execution(execution, field, problems):
    price_field = "execution_price" if execution.execution_price not in (None, "") else "price"
    status = execution.status or ("dry_run" if execution.dry_run else "submitted")
    return {
        "broker": text(execution.broker or execution.venue), "dry_run": execution.dry_run,
        "execution_status": status,
        "execution_qty": number(execution.quantity, f"{field}.quantity", problems),
        "execution_price": number(getattr(execution, price_field), f"{field}.{price_field}", problems),
    }
