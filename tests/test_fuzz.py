"""Schemathesis fuzzes the running server from docs/openapi.json: no 5xx, no hang, every reply as described, and
what the description forbids is refused. Only slow tests here: schemathesis builds its cases while collecting
(about 2 s of CPU in each worker), so `-m "not slow"` does not collect this module (conftest.py)."""

from datetime import timedelta

import hypothesis
import pytest

from filesrv import FileServer
from helpers import Server
from openapi_cases import FUZZ_ENV, FUZZ_FLAGS, REQUEST_TIMEOUT_S, schema

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    with FileServer(folder) as api:
        srv = Server(folder / "data", *FUZZ_FLAGS, "--gexbot-api-url", f"{api.url}/status/404", env=FUZZ_ENV)
        yield srv.start()
        # Checked here, after every fuzzing case that used this server (on whichever worker they ran): whatever it
        # accepted went into DuckDB, none was refused there.
        storage = srv.get("/health").json()["storage"]
        srv.stop()
        assert (storage["state"], storage["quarantined"]) == ("writable", 0), storage


@schema().parametrize()
@hypothesis.settings(deadline=timedelta(seconds=REQUEST_TIMEOUT_S + 5))
def test_replies_are_as_described(case, fuzzed):
    """No 5xx, no hang, every reply's status, type, headers and body as described, and a request the
    description forbids is refused."""
    case.call_and_validate(base_url=fuzzed.url, timeout=REQUEST_TIMEOUT_S)
