"""POST /uw: decode the frame, commit it, reply 200 as the original did."""

import time

from gexsrv.handlers import ApiError, IngestHandler
from gexsrv.payloads import PayloadError
from gexsrv.uw.payloads import Ignored, UwRecord, decode_uw


class UwHandler(IngestHandler):
    async def post(self):
        try:
            record = decode_uw(self.body(), self.conf.default_endpoint, round(time.time() * 1000),
                               self.request.remote_ip, self.request.headers.get("User-Agent"))
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        if isinstance(record, Ignored):
            return self.reply(200, {"status": "ignored", "reason": record.reason})
        stored = await self.commit(record)
        if not isinstance(record, UwRecord):  # topic "gex": stored as POST /gex would, answered 200 as /uw is
            return self.reply(200, {
                "status": "ok", "topic": "gex", "ticker": record.ticker, "endpoint": record.endpoint,
                "kind": record.kind, "timestamp": record.timestamp_ms, "duplicate": not stored,
            })
        self.reply(200, {
            "status": "received", "id": record.raw["id"], "topic": record.raw["topic"],
            "event": record.raw["event"], "duplicate": not stored, "table": record.table,
            "rows": len(record.rows) if stored else 0, "normalized": not record.problems, "problems": record.problems,
        })
