"""The server's OpenAPI description as schemathesis reads it, and the flags of a server it may fuzz: shared by
tests/test_hostile.py and tests/test_fuzz.py.

The description is read at its first use, not at import: importing schemathesis' OpenAPI support and reading the
description cost about 0.3 CPU-seconds, paid by every test process that collects test_hostile.py, whose one test
using it may run on another worker (or not at all, with -k)."""

import functools

from helpers import REPO

DOCS = REPO / "docs" / "openapi.json"
# A few minutes in all on two cores: examples per operation, and every request bounded in time.
CONFIG = {
    "generation": {"max-examples": 30, "database": "none"},
    "phases": {"stateful": {"enabled": False}},
    "checks": {
        "enabled": False,
        "not_a_server_error": {"enabled": True},
        "status_code_conformance": {"enabled": True},
        "content_type_conformance": {"enabled": True},
        "response_schema_conformance": {"enabled": True},
        "response_headers_conformance": {"enabled": True},
        "negative_data_rejection": {"enabled": True},
    },
    "suppress-health-check": ["too_slow", "filter_too_much"],
}
REQUEST_TIMEOUT_S = 15  # /integrity, the slowest route, answers in well under a second here
# Only loopback may be fetched, so a history job the fuzzing queues never leaves the machine (no host name is
# allowed: nothing is resolved). The gexbot API (poller and backfill) is a local server answering 404 to all.
FUZZ_FLAGS = ["--history-allowed-hosts", "127.0.0.1", "--history-allowed-networks", "127.0.0.1/32",
              "--history-attempts", "1", "--poll-interval", "3600"]
FUZZ_ENV = {"DASHBOARD_URL": "", "GEXBOT_API_KEY": "fuzz", "HISTORY_DOWNLOAD_COMMAND": ""}


@functools.cache
def schema():
    """docs/openapi.json as schemathesis reads it, with CONFIG."""
    import schemathesis

    return schemathesis.openapi.from_path(DOCS, config=schemathesis.Config.from_dict(CONFIG))


class Described:
    """SCHEMA[path][method] as schemathesis' schema answers it, the description read at the first lookup."""

    def __getitem__(self, path):
        return schema()[path]


SCHEMA = Described()
