import sys

import pytest

from filesrv import FileServer
from helpers import REBOUND, Server, as_started, chromium
from run_account import RunAccount

# pytest keeps each test module's rewritten asserts as bytecode in tests/__pycache__ (ignored by git), unless
# bytecode is not written (PYTHONDONTWRITEBYTECODE, set in some environments): then every test process, the four
# workers and the controller, rewrites and compiles every test module again, about 3 CPU-seconds each per run.
# Only the test processes write it; the servers and commands they start keep the environment's setting.
sys.dont_write_bytecode = False


@pytest.fixture
def server(tmp_path):
    """A running gexsrv over a fresh temporary data dir; stopped (SIGTERM) after the test."""
    srv = Server(tmp_path / "data").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """One running gexsrv for a module's cases that neither need a fresh one nor change what the others see
    (requests that are refused, reads); a start costs about a second of CPU."""
    srv = Server(tmp_path_factory.mktemp("shared") / "data").start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(tmp_path):
    """Start servers with chosen flags; each one still running at the end is stopped."""
    started = []

    def start(data_dir=None, *flags, **kwargs):
        srv = Server(data_dir or tmp_path / "data", *flags, **kwargs).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


@pytest.fixture
def files(tmp_path):
    """A local file server (tests/filesrv.py) over a temporary folder: history files to download, a hook."""
    folder = tmp_path / "files"
    folder.mkdir()
    with FileServer(folder) as srv:
        yield srv


def hist_flags(files):
    """A server allowed to download history files from the file server `files`, with short backoffs and exports."""
    return ["--history-allowed-hosts", "127.0.0.1,127.0.0.2", "--history-allowed-networks", "127.0.0.1/32",
            "--history-backoff-seconds", "0.05", "--alert-webhook-url", f"{files.url}/hook",
            "--lake-export-interval", "0.3"]


@pytest.fixture
def hist(start_server, files):
    """Start servers with hist_flags(files) and flags of the test's own."""
    def start(*flags, data_dir=None):
        return start_server(data_dir, *hist_flags(files), *flags)
    return start


@pytest.fixture(scope="module")
def shared_files(tmp_path_factory):
    """One file server for a module's cases on shared_hist; each serves files of its own names, so the hits
    counted for its paths are its own."""
    with FileServer(tmp_path_factory.mktemp("files")) as srv:
        yield srv


@pytest.fixture(scope="module")
def shared_hist(tmp_path_factory, shared_files):
    """One server as `hist` starts them, downloading from shared_files, for a module's cases that need no fresh
    one. Each case queues its jobs for a ticker of its own: the duplicate rules (same URL, same content, snapshots
    stored already) are a feed's, so one case's jobs never meet another's. --sql-max-rows above the 12,000 strike
    rows of test_history's largest case, which /api/sql gives in one reply."""
    srv = Server(tmp_path_factory.mktemp("hist") / "data", *hist_flags(shared_files), "--sql-max-rows", "100000")
    yield srv.start()
    srv.stop()


@pytest.fixture(scope="session")
def shared_chromium():
    """One headless Chromium (helpers.chromium) for each test process's browser tests: a start costs most of a
    CPU-second."""
    driver = chromium(REBOUND[1])
    yield driver
    driver.quit()


@pytest.fixture
def browser(shared_chromium):
    """Headless Chromium as just started (helpers.as_started)."""
    return as_started(shared_chromium)


# Modules of slow tests only whose collection costs CPU in every worker (schemathesis builds its cases then).
SLOW_ONLY = {"test_fuzz.py"}


def pytest_ignore_collect(collection_path, config):
    """`make test-fast` (-m "not slow") would deselect all of such a module's tests after collecting them."""
    return True if collection_path.name in SLOW_ONLY and config.getoption("markexpr") == "not slow" else None


def pytest_collection_modifyitems(items):
    """The slow tests first, then the modules whose tests share a module-scoped fixture (a server, a built data
    dir). Under `--dist worksteal` each worker takes a block of consecutive tests and one that runs out takes the
    second half of the busiest's queue: the longest tests start at once, on the workers whose blocks hold them,
    instead of ending the run alone, and a module that shares a fixture is built on one or two workers rather than
    on each of them."""
    sharing = {item.module for item in items if uses_a_module_fixture(item)}
    items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.module not in sharing))


def uses_a_module_fixture(item):
    return any(defs[-1].scope == "module" for defs in item._fixtureinfo.name2fixturedefs.values())


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller, or a run without workers
        config.pluginmanager.register(RunAccount(), "run-account")
