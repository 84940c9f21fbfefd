import pytest

from helpers import Server


@pytest.fixture
def server(tmp_path):
    """A running gexsrv over a fresh temporary data dir; stopped (SIGTERM) after the test."""
    srv = Server(tmp_path / "data").start()
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
