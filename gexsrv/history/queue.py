"""The gex_history_queue table: one row per job. Writers run on the store's thread (Store.run) with its
connection; readers go through Store.read. Status: pending -> downloading -> importing -> completed | skipped |
failed; skipped: nothing was stored, and last_error says why (the same content was imported for the same ticker
and endpoint by an earlier job, or every snapshot was stored already)."""

import json

FIELDS = ["id", "url", "ticker", "endpoint", "status", "attempts", "last_error", "bytes", "snapshots_imported",
          "rows_imported", "sha256", "file_path", "created_at", "updated_at", "finished_at", "problems"]
SELECT = "SELECT " + ", ".join(FIELDS) + " FROM gex_history_queue"
UNFINISHED = ("pending", "downloading", "importing")
DONE = ("completed", "skipped")  # finished without a fault
FINISHED = (*DONE, "failed")


def _as_dict(row):
    job = dict(zip(FIELDS, row))
    job["problems"] = json.loads(job["problems"]) if job["problems"] else None
    for name in ("created_at", "updated_at", "finished_at"):
        if job[name] is not None:
            job[name] = job[name].isoformat()
    return job


def add(con, url, ticker, endpoint):
    """Queue a job, or return the live one for the same URL, ticker and endpoint: (job, created). The same URL
    under another endpoint is another job: ticker and endpoint are the job's, not the file's."""
    same = con.execute(SELECT + " WHERE url = ? AND ticker = ? AND endpoint = ? AND status <> 'failed' "
                       "ORDER BY id LIMIT 1", [url, ticker, endpoint]).fetchall()
    if same:
        return _as_dict(same[0]), False
    (job_id,) = con.execute(
        "INSERT INTO gex_history_queue (id, url, ticker, endpoint, status) "
        "SELECT coalesce(max(id), 0) + 1, ?, ?, ?, 'pending' FROM gex_history_queue RETURNING id",
        [url, ticker, endpoint]).fetchone()
    return _as_dict(con.execute(SELECT + " WHERE id = ?", [job_id]).fetchall()[0]), True


def add_staged(con, url, ticker, endpoint, file_path, sha256, size):
    """Queue a job whose file is staged already (it came inline), or return the live one with the same content,
    ticker and endpoint: (job, created). The same URL does not make it the same job: its download may be the one
    that failed."""
    same = con.execute(SELECT + " WHERE sha256 = ? AND ticker = ? AND endpoint = ? AND status <> 'failed' "
                       "ORDER BY id LIMIT 1", [sha256, ticker, endpoint]).fetchall()
    if same:
        return _as_dict(same[0]), False
    (job_id,) = con.execute(
        "INSERT INTO gex_history_queue (id, url, ticker, endpoint, status, bytes, sha256, file_path) "
        "SELECT coalesce(max(id), 0) + 1, ?, ?, ?, 'pending', ?, ?, ? FROM gex_history_queue RETURNING id",
        [url, ticker, endpoint, size, sha256, file_path]).fetchone()
    return _as_dict(con.execute(SELECT + " WHERE id = ?", [job_id]).fetchall()[0]), True


def update(con, job_id, fields):
    assignments = ", ".join(f"{name} = ?" for name in fields)
    finished = ", finished_at = current_timestamp" if fields.get("status") in FINISHED else ""
    con.execute(f"UPDATE gex_history_queue SET {assignments}, updated_at = current_timestamp{finished} WHERE id = ?",
                [*fields.values(), job_id])


def resume_unfinished(con):
    """After a restart: jobs cut off mid-way start over (an import's transaction was rolled back by the crash)."""
    con.execute("UPDATE gex_history_queue SET status = 'pending', updated_at = current_timestamp "
                "WHERE status IN ('downloading', 'importing')")


# What a job's import stored, whichever of its runs did: a run cut off after its commits leaves them, and the run
# that takes the job up again finds every key stored.
STORED_BY = """
    WITH mine AS (SELECT ticker, endpoint, timestamp FROM gex_snapshots WHERE source = ?)
    SELECT (SELECT count(*) FROM mine),
           (SELECT count(*) FROM gex_strikes SEMI JOIN mine USING (ticker, endpoint, timestamp))"""


def stored_by(job_id):
    """(the query, its parameters) of the (snapshots, strike rows) stored from job job_id's file."""
    return STORED_BY, [f"history:{job_id}"]


def next_pending(con):
    rows = con.execute(SELECT + " WHERE status = 'pending' ORDER BY id LIMIT 1").fetchall()
    return _as_dict(rows[0]) if rows else None


def completed_with_content(con, sha256, ticker, endpoint, job_id):
    """The first other job that imported the same content for the same ticker and endpoint, or None."""
    rows = con.execute("SELECT id FROM gex_history_queue WHERE sha256 = ? AND ticker = ? AND endpoint = ? "
                       "AND status = 'completed' AND id <> ? ORDER BY id LIMIT 1",
                       [sha256, ticker, endpoint, job_id]).fetchall()
    return rows[0][0] if rows else None


def get(store, job_id):
    rows = store.read(SELECT + " WHERE id = ?", [job_id])
    return _as_dict(rows[0]) if rows else None


def recent(store, limit=100):
    return [_as_dict(row) for row in store.read(SELECT + " ORDER BY id DESC LIMIT ?", [limit])]
