"""Replies as the README describes them: OPTIONS answered on every path (with Private Network Access for a public
site's script), every error in JSON (the page's files included), every 503 of a write saying `outcome`; and a
history job read from a worker thread while it finishes."""

import types

import pytest

from gexsrv import kinds, settings
from gexsrv.history import queue
from gexsrv.history.runner import Runner
from gexsrv.store import Store
from helpers import TS, database_held, snapshot

PREFLIGHT = {"Origin": "https://unusualwhales.com", "Access-Control-Request-Method": "POST",
             "Access-Control-Request-Private-Network": "true"}


@pytest.mark.parametrize("path", ["/", "/web/status.js", "/no/such/path"])
def test_options_on_any_path_is_204_with_cors(shared_server, path):
    reply = shared_server.request("OPTIONS", path, headers={"Origin": "https://unusualwhales.com"})
    assert reply.status == 204, (path, reply.status, reply.body)
    assert reply.headers["Access-Control-Allow-Origin"] == "https://unusualwhales.com"
    assert "POST" in reply.headers["Access-Control-Allow-Methods"]


def test_a_private_network_preflight_is_allowed_when_asked(shared_server):
    asked = shared_server.request("OPTIONS", "/uw", headers=PREFLIGHT)
    plain = shared_server.request("OPTIONS", "/uw", headers={"Origin": "https://unusualwhales.com"})
    assert asked.status == 204 and asked.headers["Access-Control-Allow-Private-Network"] == "true"
    assert plain.status == 204 and "Access-Control-Allow-Private-Network" not in plain.headers


@pytest.mark.parametrize("path, status, error", [
    ("/web/nope.js", 404, "no such file: /web/nope.js"),
    ("/web/..", 403, ".. is not in root static directory"),
])
def test_errors_of_the_page_routes_are_json(shared_server, path, status, error):
    reply = shared_server.get(path)
    assert (reply.status, reply.headers["Content-Type"]) == (status, "application/json")
    assert reply.json() == {"status": "error", "error": error}


def test_every_503_of_a_write_says_it_was_not_stored(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    with database_held(data / "gex_data.db"):
        server = start_server(data, "--backlog-max-records", "1", "--history-allowed-hosts", "127.0.0.1",
                              "--history-allowed-networks", "127.0.0.1/32")
        journaled = server.post("/gex", snapshot(timestamp=TS))
        refused = [server.post("/gex", snapshot(timestamp=TS + 1)),
                   server.post("/uw", {"topic": "gex", "payload": snapshot(timestamp=TS + 2)}),
                   server.post("/uw", [None, None, "option_trades", "new_msg", {"data": []}]),
                   # Never fetched: the job cannot even be queued while the database is away.
                   server.post("/gex_history_url", {"url": "http://127.0.0.1:9/2025-10-21_SPX_classic_gex_zero.json"})]
    assert journaled.status == 202
    assert [(r.status, r.headers.get("Retry-After"), r.json()["outcome"]) for r in refused] == [
        (503, "1", "not stored")] * 4, [r.body for r in refused]


class VanishingDict(dict):
    """The event loop's pop() landing between a reader thread's `in` and its `[]`."""

    def __contains__(self, key):
        found = super().__contains__(key)
        self.pop(key, None)
        return found


def test_a_job_read_while_its_progress_is_removed_is_shown(tmp_path):
    """GET /api/status reads jobs on a worker thread (reads.jobs_with_progress) while the loop removes a finished
    job's progress: the old Runner.job looked (`in`), lost the entry, then raised KeyError reading it (a 500)."""
    conf = settings.load(types.SimpleNamespace(config=None), environ={"GEXSRV_DATA_DIR": str(tmp_path)},
                         cwd=tmp_path)
    store = Store(str(tmp_path), kinds.WRITERS)
    store.open()
    try:
        job, _ = queue.add(store.con, "https://hist.gex.bot/2025-10-21_SPX_classic_gex_zero.json", "SPX", "gex_zero")
        runner = Runner(conf, store, notifier=None)
        runner.progress = VanishingDict({job["id"]: types.SimpleNamespace(size=1234)})
        runner.imported = VanishingDict({job["id"]: (10, 300)})
        shown = runner.job(job["id"])
    finally:
        store.close()
    assert shown["id"] == job["id"] and shown["status"] == "pending"
    assert (shown["bytes"], shown["snapshots_imported"], shown["rows_imported"]) == (1234, 10, 300)  # read once
