"""GET /api/latest[?ticker=SPX]: the merged latest view (gexsrv.latest), served from memory."""

from gexsrv.handlers import ApiError, BaseHandler


class LatestHandler(BaseHandler):
    def get(self):
        ticker = self.get_argument("ticker", None)
        if ticker is None:
            body = self.latest.encoded()
        else:
            ticker = ticker.strip().upper()
            if not ticker:
                raise ApiError(400, "ticker is empty (leave it out for every ticker)", field="ticker")
            body = self.latest.encoded(ticker)
            if body is None:
                known = ", ".join(sorted(self.latest.entries)) or "none yet"
                raise ApiError(404, f"no latest data for ticker {ticker!r} (tickers: {known})", field="ticker")
        self.set_status(200)
        self.finish(body)
