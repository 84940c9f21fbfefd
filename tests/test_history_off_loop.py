"""The history path's disk work runs off the event loop. A download's staged file is made a FIFO, whose open()
blocks until someone reads it: a stand-in for a staging disk that hangs (an NFS mount gone away), made to happen
every time. While the download waits on it, the server answers POST /gex and the job's GET, and the thread that
waits is not the event loop's."""

import datetime as dt
import json
import os
from pathlib import Path

from helpers import TS, database_pid, eventually, snapshot, wait_job
from make_history_file import snapshots

DAY = dt.date(2025, 10, 21)
NAME = f"{DAY}_SPX_classic_gex_zero.json"
FIFO_WAIT = "wait_for_partner"  # the kernel function a FIFO's open() sleeps in (/proc/<pid>/task/<tid>/wchan)


def threads_waiting_on_a_fifo(pid):
    """The ids of the process's threads asleep in a FIFO's open()."""
    tasks = Path(f"/proc/{pid}/task")
    return [int(task.name) for task in tasks.iterdir() if (task / "wchan").read_text() == FIFO_WAIT]


def drain(fifo):
    """Read the FIFO to its end: lets the open() waiting on it go on, and ends once its writer closes it (at once
    when none has it open)."""
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    try:
        while os.read(fd, 1 << 16):
            pass
    finally:
        os.close(fd)


def test_a_download_whose_staged_file_hangs_leaves_the_server_answering(hist, files):
    (files.folder / NAME).write_text(json.dumps(list(snapshots(3, 5, "SPX", DAY))))
    server = hist()
    folder = server.data_dir / "source" / "gexbot"
    folder.mkdir(parents=True, exist_ok=True)
    fifo = folder / ".1.part"  # the temporary file job 1's download is staged in (gexsrv.history.staging.Sink)
    os.mkfifo(fifo)
    try:
        queued = server.post("/gex_history_url", {"url": f"{files.url}/files/{NAME}"})
        assert (queued.status, queued.json()["id"]) == (202, 1), queued.body
        importer = database_pid(server)
        waiting = eventually(lambda: threads_waiting_on_a_fifo(importer), "the download waiting on its file")
        posted = server.post("/gex", snapshot(timestamp=TS))
        job = server.get("/gex_history_url/1")
        jobs = server.get("/gex_history_url")
    finally:
        drain(fifo)
    assert importer not in waiting  # the main thread runs the event loop
    assert posted.status == 202, posted.body
    assert (job.status, job.json()["status"]) == (200, "downloading"), job.body
    assert [j["id"] for j in jobs.json()["jobs"]] == [1]
    # a FIFO cannot be fsynced: the job fails, naming why, and the server goes on
    failed = wait_job(server, 1)
    assert (failed["status"], failed["snapshots_imported"]) == ("failed", None), failed
    assert "Invalid argument" in failed["last_error"], failed
    assert server.post("/gex", snapshot(timestamp=TS + 1)).status == 202
