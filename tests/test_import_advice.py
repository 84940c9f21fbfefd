"""`python -m gexsrv import` on a data dir it cannot write: the one-line reason, then the advice that fits. A running
server takes a URL to /gex_history_url but refuses a local file, so each gets its own advice; a damaged database is
no running server's doing and gets none of it."""

from forkserver import run_gexsrv
from helpers import HISTORY_DAY, write_history

NAME = f"{HISTORY_DAY}_SPX_classic_gex_zero.json"


def gexsrv_import(source, data):
    """(exit code, what the command printed on stderr from its own line on: the store's log line goes before it)."""
    run = run_gexsrv(["import", source, "--data-dir", str(data), "--no-progress"], timeout=60)
    return run.returncode, run.stderr[run.stderr.find("gexsrv import:"):].splitlines()


def test_a_running_server_gets_the_advice_for_a_file_and_for_a_url(tmp_path, start_server, files):
    source = write_history(files.folder / NAME, n=5)
    data = tmp_path / "data"
    server = start_server(data)
    url = f"{files.url}/files/{NAME}"
    try:
        by_file, by_url = gexsrv_import(str(source), data), gexsrv_import(url, data)
    finally:
        server.stop()
    db = data / "gex_data.db"
    assert by_file[0] == by_url[0] == 2
    assert by_file[1][0].startswith(f"gexsrv import: cannot write {db}: ") and "lock" in by_file[1][0]
    assert by_file[1][1:] == [
        "Is a gexsrv server running on this data dir? Stop it first (DuckDB lets one process write a database), "
        "a running server imports URLs only, not a local file."]
    assert by_url[1][1:] == [
        "Is a gexsrv server running on this data dir? Stop it first (DuckDB lets one process write a database), "
        f'or POST {{"url": "{url}"}} to its /gex_history_url (the host must be among its history_allowed_hosts).']


def test_a_damaged_database_is_named_without_the_running_server_advice(tmp_path):
    source = write_history(tmp_path / NAME, n=5)
    data = tmp_path / "data"
    data.mkdir()
    (data / "gex_data.db").write_bytes(b"not a database" * 1000)
    code, said = gexsrv_import(str(source), data)
    assert code == 2
    assert len(said) == 1 and said[0].startswith(f"gexsrv import: cannot write {data / 'gex_data.db'}: "), said
    assert "not a valid DuckDB database" in said[0]
