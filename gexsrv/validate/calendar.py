"""Trading sessions in epoch ms, from New York wall-clock rules (zoneinfo), for the gap check.

Index and ETF tickers trade the NYSE regular session, 09:30-16:00 New York time, on weekdays that are not NYSE
holidays. The futures tickers (FUTURES) trade CME Globex hours: from 18:00 New York time the evening before to
17:00 on each weekday. Known limitations: NYSE early closes (13:00) are not modelled, and on NYSE holidays
futures sessions are skipped rather than modelled with CME's holiday hours, so no gaps are reported then.
"""

import datetime as dt
from zoneinfo import ZoneInfo

NEW_YORK = ZoneInfo("America/New_York")
FUTURES = frozenset({"ES_SPX", "NQ_NDX"})
EQUITY_HOURS = (dt.time(9, 30), dt.time(16, 0))
FUTURES_OPEN, FUTURES_CLOSE = dt.time(18, 0), dt.time(17, 0)


def calendar_of(ticker):
    return "futures" if ticker in FUTURES else "equity"


def _nth_weekday(year, month, weekday, n):
    """The n-th (1-based; -1 = last) given weekday of a month."""
    if n > 0:
        first = dt.date(year, month, 1)
        return first + dt.timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)
    return last - dt.timedelta(days=(last.weekday() - weekday) % 7)


def _easter(year):
    """Gregorian Easter Sunday (the Meeus/Jones/Butcher algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    m = (32 + 2 * e + 2 * i - h - k) % 7
    n = h + m - 7 * ((a + 11 * h + 22 * m) // 451) + 114
    return dt.date(year, n // 31, n % 31 + 1)


def _observed(day):
    """A Saturday holiday is taken on the Friday before, a Sunday one on the Monday after."""
    if day.weekday() == 5:
        return day - dt.timedelta(days=1)
    if day.weekday() == 6:
        return day + dt.timedelta(days=1)
    return day


def nyse_holidays(year):
    days = {
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - dt.timedelta(days=2),  # Good Friday
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _observed(dt.date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(dt.date(year, 12, 25)),
    }
    if dt.date(year, 1, 1).weekday() != 5:  # NYSE does not close the Friday before a Saturday New Year
        days.add(_observed(dt.date(year, 1, 1)))
    if year >= 2022:
        days.add(_observed(dt.date(year, 6, 19)))  # Juneteenth
    return days


def _ms(day, time):
    return int(dt.datetime.combine(day, time, NEW_YORK).timestamp() * 1000)


def trading_days(first, last):
    holidays = set().union(*(nyse_holidays(y) for y in range(first.year, last.year + 1)))
    day = first
    while day <= last:
        if day.weekday() < 5 and day not in holidays:
            yield day
        day += dt.timedelta(days=1)


def sessions(first_ms, last_ms):
    """(calendar, open_ms, close_ms) of every session that may overlap [first_ms, last_ms]."""
    first = dt.datetime.fromtimestamp(first_ms / 1000, NEW_YORK).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(last_ms / 1000, NEW_YORK).date() + dt.timedelta(days=1)
    rows = []
    for day in trading_days(first, last):
        rows.append(("equity", _ms(day, EQUITY_HOURS[0]), _ms(day, EQUITY_HOURS[1])))
        rows.append(("futures", _ms(day - dt.timedelta(days=1), FUTURES_OPEN), _ms(day, FUTURES_CLOSE)))
    return rows
