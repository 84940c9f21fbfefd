"""POST /gex_history_url queues a job (202 at once); GET /gex_history_url[/<id>] shows jobs and their progress."""

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from gexsrv.handlers import ApiError, IngestHandler
from gexsrv.history import forward, names
from gexsrv.history.urls import Refused
from gexsrv.payloads import Name, Ticker, normalize_endpoint


class HistoryRequest(Struct):
    url: Annotated[str, Meta(min_length=1, max_length=4096)]
    ticker: Ticker | None = None
    endpoint: Name | None = None
    feed: Name | None = None
    kind: Name | None = None


DECODER = msgspec.json.Decoder(HistoryRequest)


def decode(body):
    try:
        return DECODER.decode(body)
    except msgspec.ValidationError as exc:
        reason, _, path = str(exc).rpartition(" - at `")
        raise ApiError(400, reason or str(exc), field=path.rstrip("`") or None)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"invalid JSON: {exc}", field="$")


class HistoryHandler(IngestHandler):
    async def post(self):
        body = self.body()
        request = decode(body)
        if self.conf.dashboard_url:
            answer = await forward.to_dashboard(self.conf.dashboard_url, body)
            if answer is not None:  # the dashboard's own answer, passed through
                self.set_status(answer.code)
                self.finish(answer.body or None)  # a 204 must carry no body at all
                return
        inferred_ticker, inferred_endpoint = names.infer(request.url)
        ticker = (request.ticker or inferred_ticker or "").upper()
        endpoint = request.endpoint or request.feed or request.kind or inferred_endpoint
        if not ticker:
            raise ApiError(400, "no ticker given and none in the file name", field="$.ticker")
        if not endpoint:
            raise ApiError(400, "no endpoint given and none in the file name", field="$.endpoint")
        try:
            self.runner.policy.check_url(request.url)
        except Refused as exc:
            raise ApiError(400, str(exc), field="$.url")
        job, created = await self.runner.submit(request.url, ticker, normalize_endpoint(endpoint, None))
        self.reply(202, {"status": "queued", "id": job["id"], "ticker": job["ticker"], "endpoint": job["endpoint"],
                         "job_status": job["status"], "duplicate": not created})

    def get(self, job_id=None):
        if job_id is None:
            self.reply(200, {"jobs": self.runner.recent()})
            return
        job = self.runner.job(int(job_id))
        if job is None:
            raise ApiError(404, f"no history job {job_id}")
        self.reply(200, job)
