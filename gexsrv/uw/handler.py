"""POST /uw: decode the frame, commit it, reply 200 as the original did."""

import asyncio

from gexsrv.handlers import ApiError, IngestHandler, gex_reply
from gexsrv.payloads import PayloadError
from gexsrv.uw import trades
from gexsrv.uw.payloads import Ignored, decode_uw


class UwHandler(IngestHandler):
    async def post(self):
        try:
            record = decode_uw(self.body(), self.rules, self.received_ms(), self.request.remote_ip,
                               self.request.headers.get("User-Agent"))
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        if isinstance(record, Ignored):
            return self.reply(200, {"status": "ignored", "reason": record.reason})
        if record.gex is not None:  # stored raw as every frame is, and as POST /gex would store it
            _, stored = await asyncio.gather(self.commit(record), self.commit(record.gex))
            return self.reply(200, {"status": "received", "message": "Universal webhook processed",
                                    "id": record.raw["id"], "topic": "gex", **gex_reply(record.gex, stored)})
        stored = await self.commit(record)
        if stored:
            for row in trades.proposals(record.raw["topic"], record.rows):
                self.notifier.trade_proposal(row)
        self.reply(200, {
            "status": "received", "message": "Universal webhook processed", "id": record.raw["id"], "topic": record.raw["topic"],
            "event": record.raw["event"], "duplicate": not stored, "table": record.table,
            "rows": len(record.rows) if stored else 0, "normalized": not record.problems, "problems": record.problems,
        })
