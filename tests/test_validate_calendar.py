"""Trading sessions for the gap check: NYSE holidays and hours, CME futures hours, in New York time."""

import datetime as dt

from gexsrv.validate import calendar


def test_nyse_holidays_follow_the_published_calendar():
    assert sorted(d.isoformat() for d in calendar.nyse_holidays(2026)) == [
        "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25", "2026-06-19", "2026-07-03",
        "2026-09-07", "2026-11-26", "2026-12-25"]
    assert dt.date(2024, 3, 29) in calendar.nyse_holidays(2024)  # Good Friday
    assert dt.date(2021, 12, 31) not in calendar.nyse_holidays(2022)  # a Saturday New Year is not moved


def _utc(ms):
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def test_sessions_follow_daylight_saving_and_skip_weekends_and_holidays():
    # Fri 2025-10-31 (EDT) .. Fri 2025-11-28 (EST, the day after Thanksgiving)
    rows = calendar.sessions(1761912000000, 1764331200000)
    equity = [(_utc(o), _utc(c)) for kind, o, c in rows if kind == "equity"]
    assert equity[:3] == [("2025-10-30 13:30", "2025-10-30 20:00"), ("2025-10-31 13:30", "2025-10-31 20:00"),
                          ("2025-11-03 14:30", "2025-11-03 21:00")]
    assert ("2025-11-27 14:30", "2025-11-27 21:00") not in equity
    futures = [(_utc(o), _utc(c)) for kind, o, c in rows if kind == "futures"]
    assert ("2025-11-02 23:00", "2025-11-03 22:00") in futures  # Sunday 18:00 to Monday 17:00 New York


def test_futures_tickers_use_the_futures_calendar():
    assert calendar.calendar_of("ES_SPX") == calendar.calendar_of("NQ_NDX") == "futures"
    assert calendar.calendar_of("SPY") == "equity"
