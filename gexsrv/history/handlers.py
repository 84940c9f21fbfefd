"""POST /gex_history_url offers the request to the dashboard or queues a job here (202 at once, `via` says which);
GET /gex_history_url[/<id>] shows jobs and their progress."""

from typing import Annotated

import msgspec
from msgspec import Meta, Struct

from gexsrv.handlers import ApiError, IngestHandler, database_or_503
from gexsrv.history import command, forward, names
from gexsrv.history.urls import Refused
from gexsrv.decode import check_ticker, normalize_endpoint
from gexsrv.payloads import PayloadError, Text


class HistoryRequest(Struct):
    url: Annotated[str, Meta(min_length=1, max_length=4096)]
    ticker: Text | None = None
    endpoint: Text | None = None
    feed: Text | None = None
    kind: Text | None = None


DECODER = msgspec.json.Decoder(HistoryRequest)


def decode(body):
    try:
        return DECODER.decode(body)
    except msgspec.ValidationError as exc:
        reason, _, path = str(exc).rpartition(" - at `")
        raise ApiError(400, reason or str(exc), field=path.rstrip("`") or None)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"invalid JSON: {exc}", field="$")


def refuse_options(values):
    """HISTORY_DOWNLOAD_COMMAND gets these as arguments: one starting with `-` would be read as an option.

    Refused whether or not a command is set today, since a queued job may run after one is configured."""
    found = command.option_like(values)
    if found:
        name, value = found
        raise ApiError(400, f"{name} {value!r} may not start with '-' (a download command would read it as an "
                            "option)", field=f"$.{name}")


class HistoryHandler(IngestHandler):
    async def post(self):
        body = self.body()
        request = decode(body)
        if self.conf.dashboard_url and await forward.to_dashboard(self.conf.dashboard_url, body):
            self.reply(202, {"status": "queued", "via": "dashboard"})
            return
        inferred_ticker, inferred_endpoint = names.infer(request.url)
        ticker = (request.ticker or inferred_ticker or "").upper()
        endpoint = request.endpoint or request.feed or request.kind or inferred_endpoint
        if not ticker:
            raise ApiError(400, "no ticker given and none in the file name", field="$.ticker")
        if not endpoint:
            raise ApiError(400, "no endpoint given and none in the file name", field="$.endpoint")
        refuse_options({"url": request.url, "ticker": ticker, "endpoint": endpoint})
        try:
            self.runner.policy.check_url(request.url)
        except Refused as exc:
            raise ApiError(400, str(exc), field="$.url")
        try:
            ticker, endpoint = check_ticker(ticker), normalize_endpoint(endpoint, None)
        except PayloadError as exc:
            raise ApiError(400, exc.reason, field=exc.field)
        with database_or_503(self.conf.retry_after_seconds):
            job, created = await self.runner.submit(request.url, ticker, endpoint)
        self.reply(202, {"status": "queued", "via": "local", "id": job["id"], "ticker": job["ticker"],
                         "endpoint": job["endpoint"], "job_status": job["status"], "duplicate": not created})

    def get(self, job_id=None):
        with database_or_503(self.conf.retry_after_seconds):
            if job_id is None:
                self.reply(200, {"jobs": self.runner.recent()})
                return
            job = self.runner.job(int(job_id))
        if job is None:
            raise ApiError(404, f"no history job {job_id}")
        self.reply(200, job)
