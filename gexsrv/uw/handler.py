"""POST /uw: decode the frame, journal it, reply 200 as the original did."""

from gexsrv.handlers import ApiError, IngestHandler, gex_reply
from gexsrv.journalline import gex_header, uw_header
from gexsrv.payloads import PayloadError
from gexsrv.uw.payloads import Ignored, decode_uw


class UwHandler(IngestHandler):
    async def post(self):
        body = self.body()
        self.ack()  # a wrong ?ack is refused even where nothing is journaled (a control frame)
        try:
            record = decode_uw(body, self.rules, self.received_ms(), self.request.remote_ip,
                               self.request.headers.get("User-Agent"))
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        if isinstance(record, Ignored):
            return self.reply(200, {"status": "ignored", "reason": record.reason})
        if record.gex is not None:  # stored raw as every frame is, and as POST /gex would store it
            _, duplicate = await self.accept([(record, uw_header(record)),
                                              (record.gex, gex_header(record.gex, "/uw"))], body)
            return self.reply(200, {"status": "received", "message": "Universal webhook processed",
                                    "id": record.raw["id"], "topic": "gex", **gex_reply(record.gex, duplicate)})
        (duplicate,) = await self.accept([(record, uw_header(record))], body)
        self.reply(200, {
            "status": "received", "message": "Universal webhook processed", "id": record.raw["id"],
            "topic": record.raw["topic"], "event": record.raw["event"], "duplicate": duplicate, "table": record.table,
            "rows": 0 if duplicate else len(record.rows), "normalized": not record.problems,
            "problems": record.problems,
        })
