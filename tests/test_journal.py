"""The write-ahead journal and the raw archive on real files: appends and their group fsync, rotation, recovery at
open (a torn tail is cut, any other damage stops the open), failed writes; then real servers: a crash with a torn
tail, a damaged journal, and every record archived once."""

import asyncio
import datetime as dt
import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
import zstandard
from helpers import Server, eventually, snapshot
from helpers import TS as T0  # the first snapshot time posted to servers
from journalkit import append_all, header, opened, read_all

from gexsrv import archive, durable
from gexsrv.journal import (
    Journal,
    JournalCorrupt,
    JournalError,
    check_line,
    segment_name,
    seq_of,
)

BODIES = [
    b'{"a":1}',
    '{"name":"\u0394 gamma","list":[1.5,-2e-3,null,true],"s":"a\\nb"}'.encode(),
    b'{"nested":{"x":[[1,2],[3]]}}',
    b'{\r\n  "ticker": "SPX",\r\n  "spot": 7138.55\n}',
]


def stored(body):
    """A body as the journal keeps it: line breaks are spaces."""
    return body.replace(b"\r", b" ").replace(b"\n", b" ")


def write_journal(folder, bodies, segment_bytes=1 << 20):
    async def write():
        journal = await opened(folder, segment_bytes)
        await append_all(journal, bodies)
        await journal.close()
    asyncio.run(write())


def segment_files(folder):
    return sorted(folder.glob("*.ndjson"))


def lines_of(path):
    return path.read_bytes().splitlines(keepends=True)


# ---- appending ----

def test_appends_resolve_only_after_one_fsync_covering_them(tmp_path):
    async def run():
        journal = await opened(tmp_path)
        with journal.lock:  # the fsync thread needs the lock to start a sync: it waits
            appended = [journal.append(header(i), b'{"i":%d}' % i) for i in range(3)]
            await asyncio.sleep(0.2)
            assert not any(future.done() for *_, future in appended)
            assert (journal.fsyncs, journal.durable_seq) == (0, 0)
        await asyncio.gather(*(future for *_, future in appended))
        assert (journal.fsyncs, journal.durable_seq) == (1, 3)  # one group fsync for all three
        await journal.close()
        return appended

    appended = asyncio.run(run())
    assert [seq for seq, *_ in appended] == [1, 2, 3]
    ends = [end for _, _, end, _ in appended]
    assert ends == sorted(ends) and ends[-1] == os.path.getsize(tmp_path / segment_name(1))


def test_lines_read_back_are_what_was_appended(tmp_path):
    async def run():
        journal = await opened(tmp_path)
        appended = [journal.append(header(i), body) for i, body in enumerate(BODIES)]
        await asyncio.gather(*(future for *_, future in appended))
        found = read_all(journal)
        await journal.close()
        return appended, found

    appended, found = asyncio.run(run())
    assert [(segment, end) for segment, end, _ in found] == [(segment, end) for _, segment, end, _ in appended]
    assert b"".join(line for *_, line in found) == (tmp_path / segment_name(1)).read_bytes()
    for i, (body, (_, _, line)) in enumerate(zip(BODIES, found)):
        assert line.count(b"\n") == 1 and b"\r" not in line
        assert check_line(line).endswith(b',"body":' + stored(body))  # byte for byte but line breaks
        assert seq_of(line) == i + 1
        parsed = json.loads(line)
        assert (parsed["seq"], parsed["kind"], parsed["received"]) == (i + 1, "snapshot", T0 * 1000 + i)
        assert parsed["body"] == json.loads(body)


def test_segments_rotate_by_size_and_are_named_by_their_first_seq(tmp_path):
    async def run():
        journal = await opened(tmp_path, segment_bytes=300)
        await append_all(journal, [b'{"i":%d,"pad":"%s"}' % (i, b"x" * 40) for i in range(10)])
        open_fds = [s.fd >= 0 for s in journal.segments]
        found = read_all(journal)
        await journal.close()
        return open_fds, found

    open_fds, found = asyncio.run(run())
    files = segment_files(tmp_path)
    assert len(files) >= 3 and open_fds == [False] * (len(files) - 1) + [True]  # rotated segments are closed
    seqs = []
    for path in files:
        lines = lines_of(path)
        assert int(path.stem) == seq_of(lines[0])
        seqs += [seq_of(line) for line in lines]
        if path != files[-1]:  # full: past 300 bytes with its last line, not before
            assert path.stat().st_size - len(lines[-1]) < 300 <= path.stat().st_size
    assert seqs == list(range(1, 11))
    assert [(segment, seq_of(line)) for segment, _, line in found] == [
        (int(path.stem), seq_of(line)) for path in files for line in lines_of(path)]


def test_segments_rotate_by_age(tmp_path):
    async def run():
        # appended together, the first two are far younger than the age; after the sleep the segment is older
        journal = await opened(tmp_path, segment_seconds=1.0)
        await append_all(journal, [b"{}", b"{}"])
        await asyncio.sleep(1.1)
        await append_all(journal, [b"{}"])
        await journal.close()

    asyncio.run(run())
    assert [path.name for path in segment_files(tmp_path)] == [segment_name(1), segment_name(3)]
    assert [seq_of(line) for line in lines_of(tmp_path / segment_name(3))] == [3]


# ---- recovery at open ----

@pytest.mark.parametrize("tear", ["last line cut", "half a line added"])
def test_a_torn_record_at_the_end_of_the_last_segment_is_cut_off(tmp_path, caplog, tear):
    write_journal(tmp_path, BODIES)
    path = tmp_path / segment_name(1)
    whole = path.read_bytes()
    last = lines_of(path)[-1]
    if tear == "last line cut":
        path.write_bytes(whole[:-len(last) // 2])
        kept = whole[:-len(last)]
    else:
        path.write_bytes(whole + last.replace(b'{"seq":4,', b'{"seq":5,')[:len(last) // 2])
        kept = whole
    good = len(kept.splitlines())

    async def run():
        journal = await opened(tmp_path)
        assert path.read_bytes() == kept
        assert journal.next_seq == good + 1
        seqs = await append_all(journal, [b'{"after":"the cut"}'])
        found = read_all(journal)
        await journal.close()
        return seqs, found

    seqs, found = asyncio.run(run())
    assert "cutting a torn record" in caplog.text
    assert seqs == [good + 1]
    assert [seq_of(line) for *_, line in found] == list(range(1, good + 2))
    assert all(check_line(line) for *_, line in found)
    assert path.read_bytes() == kept
    assert (tmp_path / segment_name(good + 1)).read_bytes() == found[-1][2]  # appends go to a new segment


def test_a_segment_whose_first_record_was_torn_is_not_kept_beside_its_successor(tmp_path):
    """A crash while the first record of a new segment was written leaves a segment with nothing but a torn line.
    The next append makes a segment of that very name: the archive must never take it as a closed segment."""
    write_journal(tmp_path, BODIES)
    last = lines_of(tmp_path / segment_name(1))[-1]
    (tmp_path / segment_name(5)).write_bytes(last.replace(b'{"seq":4,', b'{"seq":5,')[:len(last) // 2])

    async def run():
        journal = await opened(tmp_path)
        assert await append_all(journal, [b'{"n":5}']) == [5]
        paths = [s.path for s in journal.segments]
        archivable = [(s.path, last) for s, last in journal.archivable(5)]
        await journal.close()
        return paths, archivable

    paths, archivable = asyncio.run(run())
    assert len(paths) == len(set(paths))
    assert archivable == [(str(tmp_path / segment_name(1)), 4)]


@pytest.mark.parametrize("where", ["header", "body", "crc"])
def test_a_damaged_record_in_the_middle_stops_the_open(tmp_path, where):
    write_journal(tmp_path, BODIES)
    path = tmp_path / segment_name(1)
    lines = lines_of(path)
    offset = len(lines[0])  # the second record, followed by two more
    inside = {"header": 12, "body": len(lines[1]) - 30, "crc": len(lines[1]) - 4}[where]
    damaged = bytearray(path.read_bytes())
    damaged[offset + inside] ^= 0x01
    path.write_bytes(damaged)

    with pytest.raises(JournalCorrupt) as caught:
        Journal(str(tmp_path), 1 << 20, 300).open()
    assert f"{path} at byte offset {offset}:" in str(caught.value)
    assert path.read_bytes() == damaged  # nothing cut


def test_a_torn_record_in_a_segment_that_is_not_the_last_stops_the_open(tmp_path):
    write_journal(tmp_path, BODIES * 3, segment_bytes=200)
    first, *others = segment_files(tmp_path)
    assert others
    with open(first, "ab") as f:
        f.write(lines_of(first)[-1][:20])

    with pytest.raises(JournalCorrupt, match="not the last segment") as caught:
        Journal(str(tmp_path), 1 << 20, 300).open()
    assert str(first) in str(caught.value)


def test_a_gap_in_seqs_within_a_segment_stops_the_open(tmp_path):
    write_journal(tmp_path, BODIES)
    path = tmp_path / segment_name(1)
    lines = lines_of(path)
    path.write_bytes(b"".join(lines[:2] + lines[3:]))  # every line whole, record 3 missing

    with pytest.raises(JournalCorrupt) as caught:
        Journal(str(tmp_path), 1 << 20, 300).open()
    assert f"record 4 in {path} at byte offset {len(lines[0]) + len(lines[1])} follows 2" in str(caught.value)


def test_a_missing_segment_stops_the_open(tmp_path):
    write_journal(tmp_path, BODIES * 3, segment_bytes=200)
    files = segment_files(tmp_path)
    assert len(files) >= 3
    files[1].unlink()

    with pytest.raises(JournalCorrupt) as caught:
        Journal(str(tmp_path), 1 << 20, 300).open()
    assert f"record {int(files[2].stem)} in {files[2]} at byte offset 0 follows" in str(caught.value)


def test_a_segment_a_crash_left_while_deleting_it_is_deleted_at_the_next_open(tmp_path):
    """Journal.retire renames an archived segment out of the journal before it frees its blocks in steps: a crash
    in between leaves `<name>.retiring`, whole or cut short, which no open reads as a segment."""
    write_journal(tmp_path, BODIES * 3, segment_bytes=200)
    files = segment_files(tmp_path)
    whole, cut = (f.with_name(f.name + ".retiring") for f in files[:2])
    files[0].rename(whole)
    files[1].rename(cut)
    os.truncate(cut, cut.stat().st_size // 2)

    journal = Journal(str(tmp_path), 1 << 20, 300)
    journal.open()
    assert not whole.exists() and not cut.exists()
    assert [s.path for s in journal.segments] == [str(f) for f in files[2:]]
    assert journal.next_seq == len(BODIES) * 3 + 1
    asyncio.run(journal.close())


def test_an_archived_segment_leaves_the_journal_whole_and_its_archive_reads_back(tmp_path):
    """A segment of several MiB (the archive syncs its file a MiB at a time, the journal frees a retired segment's
    blocks FREE_STEP at a time): the archive holds it byte for byte, and it leaves the journal, LAST_SEQ first."""
    bodies = [b'"%s"' % os.urandom(300_000).hex().encode() for _ in range(40)]  # 24 MB, about 12 MB compressed

    async def archive_first_segment():
        journal = await opened(tmp_path / "journal", segment_bytes=16 << 20)
        seqs = await append_all(journal, bodies)
        segment = journal.segments[0]
        last = seq_of(lines_of(Path(segment.path))[-1])
        assert segment.size > 3 * durable.FREE_STEP and last < seqs[-1]
        content = Path(segment.path).read_bytes()
        final = archive.compress(segment.path, str(tmp_path / "live"))
        await asyncio.to_thread(journal.retire, segment, last)
        names = os.listdir(tmp_path / "journal")
        await journal.close()
        return content, final, last, names

    content, final, last, names = asyncio.run(archive_first_segment())
    with open(final, "rb") as f:
        assert zstandard.ZstdDecompressor().stream_reader(f).read() == content
    assert os.path.getsize(final) > 4 * durable.SYNC_EVERY
    assert sorted(names) == sorted(["LAST_SEQ", "LOCK", segment_name(last + 1)])
    assert int((tmp_path / "journal" / "LAST_SEQ").read_text()) >= last


def test_shrink_away_deletes_files_of_any_size(tmp_path):
    sizes = [0, 1, durable.FREE_STEP, durable.FREE_STEP + 1, 3 * durable.FREE_STEP + 5]
    for size in sizes:
        path = tmp_path / f"f{size}"
        path.write_bytes(b"x" * size)
        durable.shrink_away(str(path))
        assert not path.exists()
    assert os.listdir(tmp_path) == []


# ---- failures ----

class Tmpfs:
    """A real small tmpfs: fill() takes all its room, free() gives it back."""

    def __init__(self, mount):
        self.folder = mount / "journal"
        self.filler = mount / "filler"

    def fill(self):
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(bytes(65536))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    def free(self):
        self.filler.unlink()


class RefusedWrites:
    """Without root no small disk can be mounted: os.writev refuses with ENOSPC instead (an injected fault)."""

    def __init__(self, folder, monkeypatch):
        self.folder = folder
        self.monkeypatch = monkeypatch

    def fill(self):
        def refuse(fd, buffers):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.monkeypatch.setattr(os, "writev", refuse)

    def free(self):
        self.monkeypatch.undo()


@pytest.fixture
def full_disk(tmp_path, monkeypatch):
    """A journal folder on a disk that fill() makes full: a real 256 KiB tmpfs when root may mount one."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode:
        yield RefusedWrites(mount / "journal", monkeypatch)
        return
    yield Tmpfs(mount)
    subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: a failed test may leave a file open


def test_a_failed_write_leaves_nothing_behind(full_disk, caplog):
    async def run():
        journal = await opened(full_disk.folder)
        await append_all(journal, BODIES[:2])
        path = journal.segments[-1].path
        with open(path, "rb") as f:
            before = f.read()
        full_disk.fill()
        with pytest.raises(JournalError, match="No space left on device"):
            journal.append(header(2), b'{"big":"%s"}' % (b"x" * 20000))  # more than a page: a part may land
        with open(path, "rb") as f:
            assert f.read() == before
        full_disk.free()
        seqs = await append_all(journal, [b'{"after":"the failure"}'])
        await journal.close()
        return seqs

    assert asyncio.run(run()) == [3]

    async def reopen():
        journal = await opened(full_disk.folder)
        found = read_all(journal)
        await journal.close()
        return found

    found = asyncio.run(reopen())
    assert "torn" not in caplog.text  # nothing to cut: the file was clean
    assert [seq_of(line) for *_, line in found] == [1, 2, 3]
    assert [json.loads(line)["body"] for *_, line in found] == [
        json.loads(BODIES[0]), json.loads(BODIES[1]), {"after": "the failure"}]


def test_a_failed_fdatasync_fails_the_waiting_appends_and_refuses_more(tmp_path, monkeypatch):
    real = os.fdatasync
    failed = []

    def fail_once(fd):  # an injected fault: a disk that fails a sync cannot be made in a test
        if failed:
            return real(fd)
        failed.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    async def run():
        journal = await opened(tmp_path)
        await append_all(journal, [b"{}"])
        monkeypatch.setattr(os, "fdatasync", fail_once)
        appended = [journal.append(header(i), b"{}") for i in range(3)]
        errors = []
        for *_, future in appended:
            with pytest.raises(JournalError) as caught:
                await future
            errors.append(caught.value.unknown)
        with pytest.raises(JournalError, match="fdatasync failed"):
            journal.append(header(3), b"{}")
        report = journal.report()
        await journal.close()
        return errors, report

    errors, report = asyncio.run(run())
    assert failed and errors == [True, True, True]
    assert report["durable_seq"] == 1 and "Input/output error" in report["error"]


# ---- the archive's retention ----

def test_expire_deletes_only_day_folders_older_than_the_retention(tmp_path):
    names = ["20260101", "20260506", "20260507", "20260510", "2026050", "20260506.old", "notes"]
    for name in names:
        (tmp_path / name).mkdir()
        (tmp_path / name / segment_name(1)).write_bytes(b"x")
    today = dt.date(2026, 5, 10)
    assert archive.expire(str(tmp_path / "absent"), 3, today) == []
    assert archive.expire(str(tmp_path), 0, today) == []  # 0 keeps everything
    assert archive.expire(str(tmp_path), 3, today) == ["20260101", "20260506"]
    assert sorted(os.listdir(tmp_path)) == ["2026050", "20260506.old", "20260507", "20260510", "notes"]
    assert archive.expire(str(tmp_path), 3, today) == []


# ---- real servers ----

def recorded(data):
    """{seq: body} of every record archived (as DuckDB reads the archive) or left in the journal (each line's CRC
    checked); a seq found twice fails."""
    found = []
    if list((data / "source" / "live").glob("*/*.zst")):
        with duckdb.connect() as db:
            found += [(seq, json.loads(body)) for seq, body in db.execute(
                f"SELECT seq, body FROM read_ndjson('{data}/source/live/*/*.zst', "
                "columns={seq: 'BIGINT', body: 'JSON'})").fetchall()]
    for path in segment_files(data / "journal"):
        for line in lines_of(path):
            assert check_line(line), (path, line)
            found.append((seq_of(line), json.loads(line)["body"]))
    seqs = [seq for seq, _ in found]
    assert len(seqs) == len(set(seqs)), sorted(seqs)
    return dict(found)


def assert_stored_once(server, posted):
    with server.db() as db:
        rows = db.execute("SELECT timestamp, count(*) FROM gex_snapshots GROUP BY ALL ORDER BY 1").fetchall()
        strikes = db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0]
    assert rows == [(p["timestamp"] * 1000, 1) for p in posted]
    assert strikes == sum(len(p["strikes"]) for p in posted)


def post_all(server, payloads):
    assert [server.post("/gex", p).status for p in payloads] == [202] * len(payloads)


def archived_files(server):
    return server.get("/health").json()["archive"]["files"]


@pytest.mark.slow
@pytest.mark.parametrize("tear", ["newest segment", "new segment"])
def test_a_torn_tail_after_sigkill_is_cut_and_every_acknowledged_row_stored_once(start_server, tmp_path, tear):
    data = tmp_path / "data"
    posted = [snapshot(timestamp=T0 + i, n_strikes=3) for i in range(10)]
    server = start_server(data)
    post_all(server, posted[:5])
    server.stop(signal.SIGKILL)
    newest = segment_files(data / "journal")[-1]
    last = lines_of(newest)[-1]
    torn = newest if tear == "newest segment" else data / "journal" / segment_name(6)
    with open(torn, "ab") as f:  # a crash in the middle of appending record 6
        f.write(last.replace(b'{"seq":5,', b'{"seq":6,')[:len(last) // 2])

    restarted = start_server(data)
    assert "cutting a torn record" in restarted.log_path.read_text()
    post_all(restarted, posted[5:8])
    eventually(lambda: archived_files(restarted) >= 1, "segment 1 archived")  # replayed and ingested
    post_all(restarted, posted[8:])
    restarted.stop()

    assert_stored_once(restarted, posted)
    assert recorded(data) == {i + 1: p for i, p in enumerate(posted)}


def test_a_damaged_journal_stops_the_server_with_one_clear_line(start_server, tmp_path):
    data = tmp_path / "data"
    posted = [snapshot(timestamp=T0 + i, n_strikes=3) for i in range(3)]
    server = start_server(data)
    post_all(server, posted)
    server.stop()
    path = data / "journal" / segment_name(1)
    offset = len(lines_of(path)[0])
    damaged = bytearray(path.read_bytes())
    damaged[offset + 12] ^= 0x01
    path.write_bytes(damaged)

    restarted = Server(data)
    before = len(restarted.log_path.read_text())
    with pytest.raises(RuntimeError, match="gexsrv exited"):
        restarted.start()
    restarted.stop()
    output = restarted.log_path.read_text()[before:]
    assert restarted.proc.returncode != 0
    assert len([line for line in output.splitlines() if f"{path} at byte offset {offset}:" in line]) == 1
    assert path.read_bytes() == damaged
    assert_stored_once(restarted, posted)
    assert "Traceback" not in output


@pytest.mark.slow
def test_every_record_is_archived_once_and_the_journal_holds_the_rest(start_server, tmp_path):
    data = tmp_path / "data"
    server = start_server(data, "--journal-segment-mb", "1", "--journal-segment-seconds", "1",
                          "--archive-interval-s", "0.2", "--max-strikes", "20000")
    started = dt.datetime.now(dt.timezone.utc)
    posted = [snapshot(timestamp=T0 + i, n_strikes=10_600) for i in range(2)]  # 1.2 MiB: a rotation by size
    post_all(server, posted)
    until = time.monotonic() + 2.5  # a rotation by age every second
    while time.monotonic() < until:
        posted.append(snapshot(timestamp=T0 + len(posted), n_strikes=3))
        post_all(server, posted[-1:])
        time.sleep(0.02)
    eventually(lambda: archived_files(server) >= 3, "3 segments archived")
    server.stop()

    assert recorded(data) == {i + 1: p for i, p in enumerate(posted)}
    with duckdb.connect() as db:
        files = db.execute(f"SELECT filename, min(seq), max(seq), count(*) FROM read_ndjson("
                           f"'{data}/source/live/*/*.zst', columns={{seq: 'BIGINT'}}, filename=true) "
                           "GROUP BY ALL ORDER BY 2").fetchall()
    assert len(files) >= 3
    assert files[0][1:] == (1, 2, 2)  # the two large records filled the first segment
    days = {started.strftime("%Y%m%d"), dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")}
    for filename, first, last, count in files:
        assert os.path.basename(filename) == segment_name(first) + ".zst"
        assert os.path.basename(os.path.dirname(filename)) in days
        assert count == last - first + 1
    journaled = [seq_of(lines_of(path)[0]) for path in segment_files(data / "journal")]
    assert journaled and min(journaled) == files[-1][2] + 1
    assert_stored_once(server, posted)


def segment_left_in_the_journal(start_server, data):
    """Four snapshots, the first three posted to a server now stopped; the journal segment holding them, and the
    name it will be archived under, its folder made."""
    posted = [snapshot(timestamp=T0 + i, n_strikes=3) for i in range(4)]
    server = start_server(data)
    post_all(server, posted[:3])
    server.stop()
    segment = data / "journal" / segment_name(1)
    folder = data / "source" / "live" / archive.day_of(str(segment))
    folder.mkdir(parents=True)
    return posted, segment, folder / (segment_name(1) + ".zst")


@pytest.mark.slow
def test_an_archive_name_taken_by_other_content_keeps_the_segment_until_it_holds_the_same(start_server, tmp_path):
    data = tmp_path / "data"
    posted, segment, taken = segment_left_in_the_journal(start_server, data)
    kept = segment.read_bytes()
    folder = taken.parent
    taken.write_bytes(zstandard.ZstdCompressor().compress(b'{"seq":1,"other":true}\n'))

    restarted = start_server(data, "--journal-segment-seconds", "1")
    post_all(restarted, posted[3:])  # segment 1 is closed, ingested, and no longer the newest
    error = eventually(lambda: restarted.get("/health").json()["archive"]["error"], "an archive error in /health")
    assert f"{taken} exists with other content" in error
    assert segment.read_bytes() == kept
    # As after a crash between publishing the archive and removing the segment: the archive holds the segment.
    same = folder / "same"
    same.write_bytes(zstandard.ZstdCompressor().compress(kept))
    os.replace(same, taken)
    # The error clears when the pass that removed the segment ends (Archiver._archive), a moment after the removal.
    eventually(lambda: not segment.exists() and restarted.get("/health").json()["archive"]["error"] is None,
               "the segment archived and removed, and the archive error cleared")
    restarted.stop()

    assert sorted(os.listdir(folder)) == [taken.name]  # no temporary file left behind
    assert zstandard.ZstdDecompressor().decompress(taken.read_bytes()) == kept
    assert recorded(data) == {i + 1: p for i, p in enumerate(posted)}
    assert_stored_once(restarted, posted)


@pytest.mark.slow
def test_an_archive_name_taken_by_a_file_that_is_not_zstd_is_reported_and_never_overwritten(start_server, tmp_path):
    """Such a file stopped the start with a traceback (the numbering reads the archive's newest record when the
    journal has no LAST_SEQ), and it killed the archiving pass unseen by /health. Now the start says what to do,
    and once told the last seq the server runs, reporting the file in /health and keeping the segment."""
    data = tmp_path / "data"
    posted, segment, taken = segment_left_in_the_journal(start_server, data)
    taken.write_bytes(b"not zstd at all\n")

    refused = Server(data)
    with pytest.raises(RuntimeError) as failed:
        refused.start()
    refused.log.close()
    assert refused.proc.returncode == 2 and "Traceback" not in str(failed.value)
    assert (f"gexsrv: cannot start: {taken} is not a readable zstd file (zstd decompress error: Unknown frame "
            "descriptor): the journal has no LAST_SEQ, so numbering goes on after the archive's newest record, which "
            "cannot be read; restore that file, or write the highest seq ever used into "
            f"{data / 'journal' / 'LAST_SEQ'}") in str(failed.value)
    (data / "journal" / "LAST_SEQ").write_text("3\n")
    restarted = start_server(data, "--journal-segment-seconds", "1")
    post_all(restarted, posted[3:])
    error = eventually(lambda: restarted.get("/health").json()["archive"]["error"], "an archive error in /health")
    assert error == f"Unreadable: {taken} is not a readable zstd file (zstd decompress error: Unknown frame descriptor)"
    assert restarted.stop() == 0
    assert taken.read_bytes() == b"not zstd at all\n" and segment.exists()
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT timestamp FROM gex_snapshots ORDER BY 1").fetchall() == [
            ((T0 + i) * 1000,) for i in range(4)]
