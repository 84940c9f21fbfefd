"""The job runner: takes pending jobs one at a time, fetches (built-in downloader or HISTORY_DOWNLOAD_COMMAND),
stages and imports them, and marks each completed, skipped (nothing stored, and why) or failed. Jobs live in
gex_history_queue, so a restart resumes the unfinished ones."""

import asyncio
import contextlib
import errno
import inspect
import logging
import os
import threading
import uuid

import duckdb
import msgspec

from gexsrv.decode import Rules
from gexsrv.history import command, download, importer, queue, staging
from gexsrv.history.backfill import Backfill
from gexsrv.history.urls import Policy, listed, redact
from gexsrv.store import StorageError

log = logging.getLogger("gexsrv.history")

STORAGE_PAUSE_S = 2.0
# Failures of the disk rather than of the job: the job waits and is tried again, as it waits for the database.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS}


class DiskTrouble(Exception):
    pass


class Runner:
    def __init__(self, conf, store, notifier, lake=None, allow_local=False, keys=None):
        self.conf = conf
        self.keys = keys  # the live intake's duplicate index (gexsrv.keys), told what imports commit
        self.notifier = notifier
        self.allow_local = allow_local  # file:// jobs: only the CLI queues them
        self.store = store
        self.lake = lake
        self.policy = Policy.from_settings(conf)
        self.folder = os.path.abspath(staging.source_dir(conf.data_dir))
        self.progress = {}  # job id -> the Sink being written, for live byte counts
        self.imported = {}  # job id -> (snapshots, strike rows) committed so far by its running import
        self.inserted = {}  # job id -> snapshots its running import has inserted so far, not yet committed
        self.rules = Rules.from_settings(conf)
        self.wake = asyncio.Event()
        self.task = None
        self.lake_lock = lake.lock if lake else threading.Lock()
        self.backfill = Backfill(conf, self)  # asks the gexbot API for days' files and queues them here

    async def start(self):
        for name in staging.clean_leftovers(self.folder):
            log.info("removed the half-written %s left by an earlier run", name)
        await self.store.use(queue.resume_unfinished)
        self.task = asyncio.create_task(self._loop())
        await self.backfill.start()

    async def close(self):
        await self.backfill.close()
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def submit(self, url, ticker, endpoint):
        """Queue a job (StorageError while the database cannot be written)."""
        job, created = await self.store.use(queue.add, url, ticker, endpoint)
        if created:
            self.wake.set()
        return job, created

    async def submit_inline(self, url, ticker, endpoint, content):
        """Queue a job for a file the request carries: checked (importer.InvalidFile) and staged here as a download
        would be, so the job imports it without fetching its url, which only names it."""
        path, sha256, size = await asyncio.to_thread(self._stage_inline, content, ticker, endpoint)
        job, created = await self.store.use(queue.add_staged, url, ticker, endpoint, path, sha256, size)
        if created:
            self.wake.set()
        return job, created

    def _stage_inline(self, content, ticker, endpoint):
        records, _ = importer.read_records(content, ticker, endpoint, "inline", self.rules)
        if not records:
            raise importer.InvalidFile("the file holds no snapshots")
        sink = fill(staging.Sink(self.folder, f"inline-{uuid.uuid4().hex}", self.conf.history_max_bytes), [content])
        return staging.publish(sink.path, self.folder, ticker, endpoint, sink.sha256), sink.sha256, sink.size

    def job(self, job_id):
        """A job as replies show it: with its live progress, and its URL without the query string (listed). It
        reads the database: call it off the event loop."""
        job = queue.get(self.store, job_id)
        if job is None:
            return None
        # One get() each, no `in` then `[]`: GET /api/status reads these on a worker thread while the loop removes
        # the entry of a job that just finished.
        sink, imported = self.progress.get(job_id), self.imported.get(job_id)
        if sink is not None:
            job["bytes"] = sink.size
        if imported is not None:
            job["snapshots_imported"], job["rows_imported"] = imported
        return listed(job)

    def recent(self):
        """The latest jobs as replies show them (listed); off the event loop, as job()."""
        return [listed(job) for job in queue.recent(self.store)]

    async def _loop(self):
        while True:
            try:
                await self._next()
            except (StorageError, DiskTrouble) as exc:  # the job waits; it is taken up again when it can be run
                log.warning("history jobs wait: %s", exc)
                await asyncio.sleep(STORAGE_PAUSE_S)
                with contextlib.suppress(StorageError):
                    await self.store.use(queue.resume_unfinished)

    async def _next(self):
        job = await self.store.use(queue.next_pending)
        if job is None:
            self.wake.clear()
            await self.wake.wait()
            return
        try:
            await self.run_job(job)
        except (StorageError, DiskTrouble):
            raise
        except Exception as exc:  # a bug in one job must not stop the queue
            log.exception("history job %d crashed", job["id"])
            await self._update(job["id"], status="failed", last_error=f"internal error: {exc!r}")

    async def _update(self, job_id, **fields):
        await self.store.use(queue.update, job_id, fields)

    async def run_job(self, job):
        """Fetch, stage and import one job (or let HISTORY_DOWNLOAD_COMMAND do it all); return its final row."""
        job_id = job["id"]
        try:
            if self._command_imports() and not job["file_path"]:  # a file staged here (inline) is imported here
                await self._run_importing_command(job)
            else:
                await self._stage_and_import(job)
        except OSError as exc:
            if exc.errno not in DISK_ERRNOS:
                await self._fail(job, exc)
            else:
                await self._update(job_id, status="pending", last_error=f"waiting for the disk: {exc}")
                raise DiskTrouble(f"job {job_id}: {exc}") from exc
        except (command.CommandFailed, download.DownloadFailed, importer.InvalidFile, staging.TooLarge,
                staging.BadContent) as exc:
            await self._fail(job, exc)
        return await asyncio.to_thread(queue.get, self.store, job_id)

    async def _fail(self, job, exc):
        await self._update(job["id"], status="failed", last_error=str(exc))
        self.notifier.alert(f"gexsrv: history job {job['id']} failed ({redact(job['url'])}): {exc}")

    async def _stage_and_import(self, job):
        path, sha256 = await self._staged(job)
        earlier = await self.store.use(queue.completed_with_content, sha256, job["ticker"], job["endpoint"],
                                       job["id"])
        if earlier is not None:
            await self._skip(job, f"same content as job {earlier}, imported for {job['ticker']} {job['endpoint']}")
        else:
            await self._import(job, path)

    async def _skip(self, job, why):
        """The job stored nothing, for a reason that is no fault: it ends `skipped`, saying why."""
        log.info("job %d: nothing to import: %s", job["id"], why)
        await self._update(job["id"], status="skipped", snapshots_imported=0, rows_imported=0, last_error=why)

    async def _staged(self, job):
        """The job's file under its final staging name, and its sha256 (already there after a restart)."""
        if job["file_path"] and job["sha256"] and os.path.exists(job["file_path"]):
            return job["file_path"], job["sha256"]
        await self._update(job["id"], status="downloading")
        sink = await self._fetch(job)
        try:
            path = await asyncio.to_thread(staging.publish, sink.path, self.folder, job["ticker"],
                                           job["endpoint"], sink.sha256)
        finally:
            self.progress.pop(job["id"], None)
        await self._update(job["id"], bytes=sink.size, sha256=sink.sha256, file_path=path)
        return path, sink.sha256

    def _new_sink(self, job):
        sink = staging.Sink(self.folder, f"{job['id']}", self.conf.history_max_bytes)
        self.progress[job["id"]] = sink
        return sink

    async def _fetch(self, job):
        if self.conf.history_download_command:
            await self._update(job["id"], attempts=1)
            return await self._run_command(job)
        if job["url"].startswith("file://") and self.allow_local:
            await self._update(job["id"], attempts=1)
            return await asyncio.to_thread(copy_into, job["url"].removeprefix("file://"), self._new_sink(job))

        async def on_attempt(n):
            await self._update(job["id"], attempts=n)
        return await download.fetch(job["url"], lambda: self._new_sink(job), self.policy, self.conf, on_attempt)

    def _command_imports(self):
        """The original's form of HISTORY_DOWNLOAD_COMMAND: no {path}, so the command imports the file itself."""
        template = self.conf.history_download_command
        return bool(template) and not command.writes_file(template)

    def _command_values(self, job):
        return {"id": job["id"], "url": job["url"], "ticker": job["ticker"], "endpoint": job["endpoint"]}

    async def _run_importing_command(self, job):
        """Exit 0 completes the job; gexsrv counts no rows, since it did not import them."""
        await self._update(job["id"], status="downloading", attempts=1)
        tail = await command.run(self.conf.history_download_command, self._command_values(job),
                                 self.conf.history_request_timeout)
        await self._update(job["id"], status="completed")
        log.info("job %d: the download command downloaded and imported %s itself; its output ends: %s",
                 job["id"], redact(job["url"]), tail or "(no output)")

    async def _run_command(self, job):
        """HISTORY_DOWNLOAD_COMMAND with {path}: it writes the file there, gexsrv stages and imports it."""
        target = os.path.join(self.folder, f".{job['id']}.download{staging.PART_SUFFIX}")
        os.makedirs(self.folder, exist_ok=True)
        try:
            await command.run(self.conf.history_download_command, {**self._command_values(job), "path": target},
                              self.conf.history_request_timeout)
            if not os.path.isfile(target):
                raise command.CommandFailed(f"the download command exited with 0 but wrote no file at {target}")
            return await asyncio.to_thread(copy_into, target, self._new_sink(job))
        finally:
            if os.path.exists(target):
                os.unlink(target)

    async def _import(self, job, path):
        await self._update(job["id"], status="importing")
        cursor = await self.store.use(lambda con: con.cursor())
        try:
            imported = await asyncio.to_thread(self._import_file, job, path, cursor, self._hooks(job))
        except duckdb.Error as exc:  # the database failed, not the file: the job is taken up again later
            raise StorageError(f"history job {job['id']} interrupted: {exc}") from exc
        finally:
            with contextlib.suppress(duckdb.Error):
                cursor.close()
            self.imported.pop(job["id"], None)
            self.inserted.pop(job["id"], None)
        problems = importer.summary(imported.problems)
        snapshots, rows = await self._stored(job, imported)
        outcome = ({"status": "completed"} if snapshots else
                   {"status": "skipped", "last_error": nothing_new(imported.found)})
        await self._update(job["id"], **outcome, snapshots_imported=snapshots, rows_imported=rows,
                           problems=msgspec.json.encode(problems).decode() if problems["count"] else None)
        log.info("job %d: imported %d snapshots, %d strike rows from %s (%d problems)", job["id"], snapshots, rows,
                 path, problems["count"])
        if self.lake:
            self.lake.kick()

    async def _stored(self, job, imported):
        """(snapshots, strike rows) the job stored: this run's, or, when it stored nothing, an earlier run's that
        a crash cut off after its commits (the job was taken up again)."""
        if imported.snapshots:
            return imported.snapshots, imported.strike_rows
        (snapshots, rows), = await asyncio.to_thread(self.store.read, *queue.stored_by(job["id"]))
        return snapshots, rows

    def _hooks(self, job):
        """What the import's thread tells the loop: its progress, and the keys it commits to the live intake's
        duplicate index (gexsrv.keys: unknown while committing, seen once committed)."""
        loop = asyncio.get_running_loop()

        def progress(snapshots, rows):  # after each chunk
            loop.call_soon_threadsafe(self.imported.__setitem__, job["id"], (snapshots, rows))

        def inserted(snapshots):  # after each chunk's insert, before the commits
            loop.call_soon_threadsafe(self.inserted.__setitem__, job["id"], snapshots)

        def committing(records):  # before the first commit: waits until the loop has taken them
            asyncio.run_coroutine_threadsafe(_call(self.keys.committing, keys_of(records)), loop).result()

        def committed(chunk):
            loop.call_soon_threadsafe(self.keys.committed, keys_of(chunk))

        known = self.keys is not None
        return importer.Hooks(progress, committing if known else None, committed if known else None,
                              lambda: self.store.conflicted("history"), inserted)

    def _import_file(self, job, path, cursor, hooks):
        """The staged file imported on cursor (importer.InvalidFile: the job fails)."""
        with open(path, "rb") as f:
            data = f.read()
        return importer.import_data(cursor, data, job["ticker"], job["endpoint"], f"history:{job['id']}",
                                    self.rules, self.lake_lock, hooks)


async def _call(fn, *args):
    """fn(*args) on the loop, awaited when it gives an awaitable (the engine's FrontKeys.committing)."""
    result = fn(*args)
    if inspect.isawaitable(result):
        await result


def nothing_new(found):
    """Why an import of a file of `found` snapshots stored nothing."""
    return f"all {found} snapshots were already stored" if found else "the file holds no snapshots"


def keys_of(records):
    """(key, timestamp ms) of records, as the duplicate index takes them (gexsrv.keys)."""
    return [(record.key, record.timestamp_ms) for record in records]


def fill(sink, blocks):
    """Feed blocks of a file through a Sink (decompressing, hashing, size-capping) and finish it."""
    try:
        for block in blocks:
            sink.feed(block)
        sink.sha256 = sink.finish()
    except BaseException:
        sink.discard()
        raise
    return sink


def copy_into(path, sink):
    """Feed a local file through a Sink and finish it."""
    with open(path, "rb") as f:
        return fill(sink, iter(lambda: f.read(1 << 20), b""))
