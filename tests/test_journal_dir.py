"""The `journal_dir` setting: the journal in a folder of its own, and a start that would leave journaled records
behind in the folder used before refused, with the way to move them."""

import pytest

from helpers import TS, Server, database_held, snapshot

from gexsrv import journal_home


def segments(folder):
    return sorted(path.name for path in folder.glob("*.ndjson"))


def stored_spots(server):
    with server.db() as db:
        return db.execute("SELECT timestamp // 1000, spot_price FROM gex_snapshots ORDER BY 1").fetchall()


def test_the_journal_goes_to_its_own_folder_and_a_restart_finds_it(start_server, tmp_path):
    data, journal = tmp_path / "data", tmp_path / "fast-disk" / "journal"
    server = start_server(data, "--journal-dir", str(journal))
    assert server.post("/gex?ack=ingested", snapshot(timestamp=TS, spot=101.0)).status == 202
    assert segments(journal) and not (data / "journal").exists()
    assert server.get("/health").json()["journal"]["folder"] == str(journal.resolve())
    assert (data / journal_home.REMEMBERED).read_text() == str(journal.resolve())
    server.stop()
    server.start()  # the same flags: the folder remembered is the folder named
    assert server.post("/gex?ack=ingested", snapshot(timestamp=TS + 1, spot=102.0)).status == 202
    server.stop()
    assert stored_spots(server) == [(TS, 101.0), (TS + 1, 102.0)]


@pytest.mark.parametrize("moved_to", ["another folder", "the default folder"])
def test_a_start_on_another_folder_while_the_old_one_holds_records_is_refused(start_server, tmp_path, moved_to):
    """Started on an empty journal folder, ingest would never read the records acknowledged into the old one."""
    data = tmp_path / "data"
    old, new = tmp_path / "journal-a", tmp_path / "journal-b"
    first_flags, second_flags = ("--journal-dir", str(old)), ("--journal-dir", str(new))
    if moved_to == "the default folder":
        old, new, second_flags = new, data / "journal", ()
        first_flags = ("--journal-dir", str(old))
    with database_held(data / "gex_data.db"):  # journaled, never ingested
        server = start_server(data, *first_flags)
        assert server.post("/gex", snapshot(timestamp=TS, spot=101.0)).status == 202
        server.stop()
    held = segments(old)
    assert held
    refused = Server(data, *second_flags)
    with pytest.raises(RuntimeError) as failed:
        refused.start()
    refused.log.close()
    log = str(failed.value)
    assert refused.proc.returncode == 2 and "Traceback" not in log
    assert (f"cannot start: the journal in {old.resolve()} still holds {len(held)} segments that this start, using "
            f"{new.resolve()}, would never ingest: stop every server on this data dir and move them there "
            f"(mv {old.resolve()}/*.ndjson {new.resolve()}/), or start with --journal-dir {old.resolve()}") in log
    assert segments(old) == held  # nothing touched

    new.mkdir(parents=True, exist_ok=True)
    for name in held:  # the advice, followed
        (old / name).rename(new / name)
    server = start_server(data, *second_flags)
    server.stop()
    assert stored_spots(server) == [(TS, 101.0)]
