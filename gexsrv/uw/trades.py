"""Option trades (topics option_trades*) as option_trades_events rows.

Two kinds of record carry them, each bare, wrapped in {"data": ...}, or in a list: Unusual Whales trades, and
the original's orders (topic option_trades_super_algo): {"alert": {...}, "executions": [...]} or flat
{"symbol", "action", "quantity", "price"}, stored one row per execution. A record with any problem is left out
(its raw row keeps it); the problems say why.
"""

import uuid

import msgspec
from msgspec import Raw, Struct

from gexsrv.decode import decode_with
from gexsrv.payloads import NOTHING, PayloadError
from gexsrv.uw import occ
from gexsrv.uw.frames import items
from gexsrv.uw.values import count, date, first, first_of, number, option_type, texts, timestamp_us

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


class OrderAlert(Struct):
    symbol: str | None = None
    action: str | None = None
    quantity: Count = None
    price: Num = None
    strike: Num = None
    option_type: str | None = None
    optionType: str | None = None
    expiration: str | None = None
    exp: str | None = None
    order_type: str | None = None
    orderType: str | None = None


class Execution(Struct):
    dry_run: bool | None = None
    broker: str | None = None
    venue: str | None = None
    quantity: Num = None
    price: Num = None
    execution_price: Num = None


class Order(Struct):
    """The original's option_trades_super_algo record: an alert, or flat fields, and its executions."""

    alert: OrderAlert | None = None
    symbol: str | None = None
    ticker: str | None = None
    action: str | None = None
    side: str | None = None
    quantity: Count = None
    price: Num = None
    executions: list[Execution] | None = None


class Probe(Struct):
    """Enough of a record to tell the original's order shape from an Unusual Whales trade."""

    alert: Raw = NOTHING
    executions: Raw = NOTHING
    symbol: Raw = NOTHING
    ticker: Raw = NOTHING
    action: Raw = NOTHING
    side: Raw = NOTHING
    option_chain_id: Raw = NOTHING
    option_symbol: Raw = NOTHING

    def is_order(self):
        if self.alert or self.executions:
            return True
        return not (self.option_chain_id or self.option_symbol) and bool(
            self.symbol or self.ticker or self.action or self.side)


TRADE = msgspec.json.Decoder(Trade)
ORDER = msgspec.json.Decoder(Order)
PROBE = msgspec.json.Decoder(Probe)
PROPOSAL_TOPIC = "option_trades_super_algo"


def rows(frame, webhook_id, problems):
    """option_trades_events rows of a frame's payload; what cannot be read is added to problems."""
    try:
        found = items(frame.payload, frame.prefix)
    except PayloadError as exc:
        problems.add(exc.field, exc.reason)
        return []
    result = []
    for raw, path in found:
        try:
            if decode_with(PROBE, raw, path).is_order():
                result.extend(order_rows(raw, path, path[len(frame.prefix):], webhook_id, problems))
            elif (row := trade_row(raw, path, problems)) is not None:
                result.append(row)
        except PayloadError as exc:
            problems.add(exc.field, exc.reason)
    return result


def proposals(topic, rows):
    """The rows to announce as trade proposals once stored: the original's orders (the only rows with an
    execution_status) of option_trades_super_algo frames, not Unusual Whales trades."""
    if not (topic or "").startswith(PROPOSAL_TOPIC):
        return []
    return [row for row in rows if row.get("execution_status")]


def announcer(notifier):
    """An ingest observer: each stored order of an option_trades_super_algo frame goes out as a proposal."""
    def announce(record):
        if record.kind == "uw":
            for row in proposals(record.raw["topic"], record.rows):
                notifier.trade_proposal(row)
    return announce


def _occ(symbol, field, problems):
    try:
        return occ.parse(symbol)
    except ValueError as exc:
        return problems.add(field, str(exc))


def trade_row(raw, path, problems):
    """One Unusual Whales trade as a row, or None (with problems) if any of it is unreadable."""
    try:
        trade = decode_with(TRADE, raw, path)
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
        trade_ids=texts(trade.trade_ids), symbol=underlying, side=_side(trade.tags),
        quantity=None if row["size"] is None else float(row["size"]),  # a DOUBLE: the nearest one past 2**53
        raw_payload=bytes(raw).decode(),
    )
    return row


def _side(tags):
    return next((SIDES[tag] for tag in tags or () if tag in SIDES), None)


def order_rows(raw, path, where, webhook_id, problems):
    """The original's order as rows, read as it read them (CONTRACT section 6): one row per execution, or one
    row of the order alone (execution_status "unknown") when it has no executions.

    Such rows have no trade id of their own: theirs is uuid5(raw webhook id, "execution/<index>" or "alert"),
    prefixed by the record's place in the payload when it is wrapped (".data[1]/execution/0"); stable across
    replays because the raw id is derived from the body's content.
    """
    order = decode_with(ORDER, raw, path)
    alert, at = order.alert or OrderAlert(), f"{path}.alert"
    before = len(problems)
    symbol = first(alert.symbol, order.symbol, order.ticker)
    side = first(alert.action, order.action, order.side)
    if not symbol:
        problems.add(f"{at if order.alert else path}.symbol", "missing symbol (alert.symbol, symbol or ticker)")
    common = {
        "symbol": symbol, "side": side.upper() if side else None,
        "quantity": count(*first_of((alert.quantity, f"{at}.quantity"), (order.quantity, f"{path}.quantity")),
                          problems),
        "price": number(*first_of((alert.price, f"{at}.price"), (order.price, f"{path}.price")), problems),
        "strike": number(alert.strike, f"{at}.strike", problems),
        "option_type": option_type(*first_of((alert.option_type, f"{at}.option_type"),
                                             (alert.optionType, f"{at}.optionType")), problems),
        "expiration": date(*first_of((alert.expiration, f"{at}.expiration"), (alert.exp, f"{at}.exp")), problems),
        "order_type": first(alert.order_type, alert.orderType),
        "raw_payload": bytes(raw).decode(),
    }
    common.update(_contract_columns(symbol, common))
    executions = [_execution(e, f"{path}.executions[{i}]", problems) for i, e in enumerate(order.executions or ())]
    if len(problems) > before:
        return []
    base, prefix = uuid.UUID(webhook_id), f"{where}/" if where else ""
    if not executions:
        return [{**common, "execution_status": "unknown", "trade_id": str(uuid.uuid5(base, f"{prefix}alert"))}]
    return [{**common, **e, "trade_id": str(uuid.uuid5(base, f"{prefix}execution/{i}"))}
            for i, e in enumerate(executions)]


def _contract_columns(symbol, common):
    """The symbol may be an OCC symbol, whose parts fill in the strike, type and expiry the order lacks, or a
    plain ticker."""
    try:
        contract = occ.parse(symbol) if symbol else None
    except ValueError:
        contract = None
    if contract is None:
        return {"underlying_symbol": symbol.strip().upper()} if symbol else {}
    return {"option_symbol": symbol.strip(), "underlying_symbol": contract.underlying, "root": contract.root,
            "strike": common["strike"] if common["strike"] is not None else contract.strike,
            "option_type": common["option_type"] or contract.option_type,
            "expiration": common["expiration"] or contract.expiry}


def _execution(execution, field, problems):
    """One execution's columns, read as the original read its first one."""
    return {
        "execution_status": "dry_run" if execution.dry_run else "live", "dry_run": execution.dry_run,
        "broker": first(execution.broker, execution.venue),
        "execution_qty": number(execution.quantity, f"{field}.quantity", problems),
        "execution_price": number(*first_of((execution.price, f"{field}.price"),
                                            (execution.execution_price, f"{field}.execution_price")), problems),
    }
