"""POST /gex_history_url end to end: a real gexsrv downloads from a local file server on 127.0.0.1."""

import datetime as dt
import hashlib
import json

import duckdb
import polars as pl
import pytest
from helpers import (HISTORY_DAY as DAY, HISTORY_NAME as NAME, HISTORY_SNAPS as SNAPS, HISTORY_STRIKES as STRIKES,
                     eventually, stored_rows, wait_job, write_history)
from make_history_file import snapshots

from gexsrv.history import importer

DAY_FILES = ["20251021.snapshots.parquet", "20251021.strikes.parquet"]


def name_of(ticker, endpoint="gex_zero"):
    """A history file's name, which gives its job's ticker and endpoint."""
    return f"{DAY}_{ticker}_classic_{endpoint}.json"


def submit(server, url, **extra):
    reply = server.post("/gex_history_url", {"url": url, **extra})
    assert reply.status == 202, reply.body
    return reply.json()


def lake_rows(data_dir, ticker="*"):
    with duckdb.connect() as db:
        return db.execute("SELECT count(*) FROM read_parquet(?)",
                          [f"{data_dir}/parquet/gexbot/{ticker}/**/*.strikes.parquet"]).fetchone()[0]


def day_files(data_dir, ticker, endpoint):
    folder = data_dir / "parquet/gexbot" / ticker / endpoint
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def compacted(server, ticker, endpoint):
    """Wait for the running server to compact a feed's finished day into its day files: only then does the lake
    hold its rows once (a part is deleted after the day file holding it is published)."""
    eventually(lambda: day_files(server.data_dir, ticker, endpoint) == DAY_FILES,
               f"{ticker} {endpoint}'s day compacted", timeout=60)


def test_plain_and_gzip_files_land_in_duckdb_and_parquet(shared_hist, shared_files):
    write_history(shared_files.folder / name_of("PLAIN"))
    # gzip served under a plain name: the format is found from the content
    write_history(shared_files.folder / name_of("PACKED", "gex_one"), ticker="NDX", compress=True)
    plain = submit(shared_hist, f"{shared_files.url}/files/{name_of('PLAIN')}")
    assert (plain["status"], plain["ticker"], plain["endpoint"]) == ("queued", "PLAIN", "gex_zero")
    packed = submit(shared_hist, f"{shared_files.url}/files/{name_of('PACKED', 'gex_one')}")
    assert (packed["ticker"], packed["endpoint"]) == ("PACKED", "gex_one")
    for job in (plain, packed):
        done = wait_job(shared_hist, job["id"])
        assert (done["status"], done["snapshots_imported"], done["rows_imported"]) == ("completed", SNAPS,
                                                                                       SNAPS * STRIKES)
    # every case waits for its jobs to end, so none of another is pending either
    assert shared_hist.get("/health").json()["history"]["pending_jobs"] == 0
    assert stored_rows(shared_hist, "SELECT ticker, endpoint, source, count(*) FROM gex_snapshots "
                                    "WHERE ticker IN ('PLAIN', 'PACKED') GROUP BY ALL ORDER BY 1") == [
        ("PACKED", "gex_one", f"history:{packed['id']}", SNAPS), ("PLAIN", "gex_zero", f"history:{plain['id']}", SNAPS)]
    assert stored_rows(shared_hist, "SELECT count(*) FROM gex_strikes WHERE ticker IN ('PLAIN', 'PACKED')") == [
        (2 * SNAPS * STRIKES,)]
    # a finished day is compacted into its day files, the snapshots' beside the strike rows'
    compacted(shared_hist, "PLAIN", "gex_zero")
    compacted(shared_hist, "PACKED", "gex_one")
    assert lake_rows(shared_hist.data_dir, "PLAIN") == lake_rows(shared_hist.data_dir, "PACKED") == SNAPS * STRIKES


@pytest.mark.parametrize("path, attempts, ticker", [("flaky/2", 3, "FLAKY"), ("drop/1", 2, "DROP")],
                         ids=["5xx twice", "dropped connection"])
def test_5xx_and_network_errors_are_retried(shared_hist, shared_files, path, attempts, ticker):
    write_history(shared_files.folder / name_of(ticker))
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/{path}/{name_of(ticker)}")["id"])
    assert (job["status"], job["attempts"], job["snapshots_imported"]) == ("completed", attempts, SNAPS)
    assert shared_files.hits[f"/{path}/{name_of(ticker)}"] == attempts


def test_permanent_failure_fails_the_job_and_alerts_the_webhook(shared_hist, shared_files):
    url = shared_files.url
    failed = wait_job(shared_hist, submit(shared_hist, f"{url}/status/500", ticker="FAILED", endpoint="zero")["id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 3)
    assert "HTTP 500" in failed["last_error"]
    missing = wait_job(shared_hist, submit(shared_hist, f"{url}/status/404", ticker="FAILED", endpoint="zero")["id"])
    assert (missing["status"], missing["attempts"]) == ("failed", 1)  # 4xx is not retried

    def hooks():  # the alerts of this case's jobs: the other cases' failures alert the same webhook
        return [h for h in shared_files.hooks
                if any(f"history job {job['id']} failed" in h["text"] for job in (failed, missing))]

    eventually(lambda: len(hooks()) >= 2, "both failures alerted at the webhook")
    mine = hooks()
    assert len(mine) == 2
    assert all(h["content"] and h["text"] == h["content"] for h in mine)
    assert f"history job {failed['id']} failed" in mine[0]["text"] and "HTTP 500" in mine[0]["text"]


def test_disallowed_hosts_schemes_and_addresses_are_refused(shared_hist, shared_files):
    name = name_of("REFUSED")
    write_history(shared_files.folder / name)
    port = shared_files.url.rsplit(":", 1)[1]
    direct = shared_hist.post("/gex_history_url", {"url": f"http://localhost:{port}/files/{name}"})
    assert direct.status == 400 and "not on the history_allowed_hosts list" in direct.json()["error"]
    scheme = shared_hist.post("/gex_history_url", {"url": f"file:///etc/{name}"})
    assert scheme.status == 400 and "only http and https" in scheme.json()["error"]
    hop = f"{shared_files.url}/redirect?to=http://localhost:{port}/files/{name}"
    redirected = wait_job(shared_hist, submit(shared_hist, hop, ticker="REFUSED", endpoint="gex_zero")["id"])
    assert redirected["status"] == "failed" and "'localhost' is not on the history_allowed_hosts" in \
        redirected["last_error"]
    assert f"/files/{name}" not in shared_files.hits
    # 127.0.0.2 is an allowed host name, but a loopback address outside history_allowed_networks
    private = wait_job(shared_hist, submit(shared_hist, f"http://127.0.0.2:{port}/files/{name}")["id"])
    assert private["status"] == "failed" and "not a global address" in private["last_error"]
    assert private["attempts"] == 1


def test_oversized_body_fails_counted_decompressed(hist, files):
    # small on the wire, large once inflated
    write_history(files.folder / NAME, compress=True)
    server = hist("--history-max-bytes", "100000")
    job = wait_job(server, submit(server, f"{files.url}/files/{NAME}")["id"])
    assert job["status"] == "failed" and "over the 100000-byte limit" in job["last_error"]
    assert job["attempts"] == 1
    assert not [p for p in (server.data_dir / "source/gexbot").iterdir()]


def in_last(data, old, new):
    """Spoil the last snapshot, so a reader that stops early would have stored the others."""
    at = data.rindex(old)
    return data[:at] + new + data[at + len(old):]


@pytest.mark.parametrize("name, spoil", [
    ("truncated", lambda data: data[: len(data) // 2]),
    ("nan", lambda data: in_last(data, b'"spot": ', b'"spot": NaN, "was":')),
    ("huge", lambda data: in_last(data, b'"zero_gamma": ', b'"zero_gamma": 1e999, "was":')),
    ("no timestamp", lambda data: in_last(data, b'"timestamp": ', b'"time": ')),
])
def test_invalid_file_fails_with_nothing_half_imported(shared_hist, shared_files, name, spoil):
    ticker = name.upper().replace(" ", "")
    good = write_history(shared_files.folder / f"{ticker}-good.json").read_bytes()
    (shared_files.folder / name_of(ticker)).write_bytes(spoil(good))
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/files/{name_of(ticker)}")["id"])
    assert job["status"] == "failed", job
    assert job["snapshots_imported"] is None
    assert stored_rows(shared_hist, f"SELECT count(*) FROM gex_snapshots WHERE ticker = '{ticker}'") == [(0,)]
    assert stored_rows(shared_hist, f"SELECT count(*) FROM gex_strikes WHERE ticker = '{ticker}'") == [(0,)]


def test_bad_strike_rows_are_skipped_and_reported_as_post_gex_would(shared_hist, shared_files):
    """The one decoding rule: a strike row the original skipped is skipped here too, the snapshot kept."""
    data = write_history(shared_files.folder / "BADROWS-good.json").read_bytes()
    data = in_last(data, b'"strikes": [', b'"strikes": [[1], ').replace(b'"strikes": [[', b'"strikes": [["x"], [', 1)
    (shared_files.folder / name_of("BADROWS")).write_bytes(data)
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/files/{name_of('BADROWS')}")["id"])
    assert (job["status"], job["snapshots_imported"], job["rows_imported"]) == ("completed", SNAPS, SNAPS * STRIKES)
    assert job["problems"] == {"count": 2, "examples": [
        {"field": "$.strikes[0][0]", "error": "strike row skipped: Expected `float`, got `str`", "snapshot": 0},
        {"field": "$.strikes[0]", "error": "strike row skipped: Expected `array` of at least length 2, got 1",
         "snapshot": SNAPS - 1}]}
    assert stored_rows(shared_hist, "SELECT count(*), count(DISTINCT timestamp) FROM gex_strikes "
                                    "WHERE ticker = 'BADROWS'") == [(SNAPS * STRIKES, SNAPS)]


def test_a_snapshot_refused_in_the_last_chunk_leaves_nothing_of_the_chunks_before_it(shared_hist, shared_files):
    """The chunks before it were inserted while the rest of the file was decoded, in transactions left open
    (importer.import_data): none is committed. The file put right imports whole afterwards."""
    count = 2 * importer.CHUNK + 10
    made = list(snapshots(count, 3, "SPX", dt.date.fromisoformat(DAY)))
    good_ts, made[-1]["timestamp"] = made[-1]["timestamp"], "at noon"
    (shared_files.folder / name_of("CHUNKS")).write_text(json.dumps(made))
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/files/{name_of('CHUNKS')}")["id"],
                   timeout=60)
    assert (job["status"], job["snapshots_imported"]) == ("failed", None), job
    assert job["last_error"].startswith(f"snapshot {count - 1}: expected epoch seconds"), job
    made[-1]["timestamp"] = good_ts
    (shared_files.folder / "CHUNKS-fixed.json").write_text(json.dumps(made))
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/files/CHUNKS-fixed.json", ticker="CHUNKS",
                                       endpoint="gex_zero")["id"], timeout=60)
    assert (job["status"], job["snapshots_imported"], job["rows_imported"]) == ("completed", count, count * 3), job
    compacted(shared_hist, "CHUNKS", "gex_zero")  # every export of its rows done
    assert lake_rows(shared_hist.data_dir, "CHUNKS") == count * 3
    stored = stored_rows(shared_hist, "SELECT timestamp // 1000, source FROM gex_snapshots WHERE ticker = 'CHUNKS' "
                                      "ORDER BY 1")
    strikes = stored_rows(shared_hist, "SELECT count(*), count(DISTINCT seq) FROM gex_strikes WHERE ticker = 'CHUNKS'")
    assert stored == [(s["timestamp"], f"history:{job['id']}") for s in made]
    assert strikes == [(count * 3, count * 3)]


def test_json_lines_and_more_snapshots_than_a_chunk_import_whole(shared_hist, shared_files):
    count = importer.CHUNK + 100
    made = list(snapshots(count, 3, "SPX", dt.date.fromisoformat(DAY)))
    (shared_files.folder / name_of("LINES")).write_bytes(b"\n".join(json.dumps(s).encode() for s in made) + b"\n")
    job = wait_job(shared_hist, submit(shared_hist, f"{shared_files.url}/files/{name_of('LINES')}")["id"], timeout=60)
    assert (job["status"], job["snapshots_imported"], job["rows_imported"]) == ("completed", count, count * 3)
    stored = stored_rows(shared_hist, "SELECT timestamp // 1000, spot_price, source FROM gex_snapshots "
                                      "WHERE ticker = 'LINES' ORDER BY 1")
    assert stored == [(s["timestamp"], s["spot"], f"history:{job['id']}") for s in made]


def test_same_url_or_same_content_for_the_same_feed_is_skipped_saying_why(hist, files):
    write_history(files.folder / NAME)
    write_history(files.folder / "same-times-other-values.json", seed=2)
    server = hist()
    url = f"{files.url}/files/{NAME}"
    first = wait_job(server, submit(server, url)["id"])
    again = submit(server, url)
    assert again["id"] == first["id"] and again["duplicate"] is True
    signed = wait_job(server, submit(server, url + "?sig=other")["id"])  # another URL, same bytes
    assert (signed["status"], signed["snapshots_imported"], signed["last_error"]) == (
        "skipped", 0, f"same content as job {first['id']}, imported for SPX gex_zero")
    overlap = wait_job(server, submit(server, f"{files.url}/files/same-times-other-values.json",
                                      ticker="SPX", endpoint="gex_zero")["id"])
    assert (overlap["status"], overlap["snapshots_imported"], overlap["rows_imported"], overlap["last_error"]) == (
        "skipped", 0, 0, f"all {SNAPS} snapshots were already stored")
    listed = {job["id"]: job["status"] for job in server.get("/gex_history_url").json()["jobs"]}
    health = server.get("/health").json()
    metrics = server.get("/metrics").body.decode()
    server.stop()
    assert listed == {first["id"]: "completed", signed["id"]: "skipped", overlap["id"]: "skipped"}
    assert health["history"]["pending_jobs"] == 0
    assert 'gexsrv_history_jobs{status="skipped"} 2.0' in metrics
    with server.db() as db:
        assert db.execute("SELECT count(*), count(DISTINCT source) FROM gex_snapshots").fetchone() == (SNAPS, 1)
        assert db.execute("SELECT count(*) FROM gex_strikes").fetchone()[0] == SNAPS * STRIKES
    assert lake_rows(server.data_dir) == SNAPS * STRIKES


def stored(server, ticker):
    """(endpoint, timestamp s, spot, source) of every snapshot of ticker and (endpoint, timestamp s, strike, gamma,
    oi_gamma) of every strike row of it, in order."""
    snaps = stored_rows(server, "SELECT endpoint, timestamp // 1000, spot_price, source FROM gex_snapshots "
                                f"WHERE ticker = '{ticker}' ORDER BY endpoint, timestamp")
    strikes = stored_rows(server, "SELECT endpoint, timestamp // 1000, strike, gamma, oi_gamma FROM gex_strikes "
                                  f"WHERE ticker = '{ticker}' ORDER BY endpoint, timestamp, strike")
    return snaps, strikes


def test_the_same_file_under_another_endpoint_is_imported_under_it(shared_hist, shared_files):
    """Ticker and endpoint are the job's: the same bytes queued for another endpoint (the one they should have had,
    by the same URL or another) are that endpoint's data, not a repeat of the first job."""
    write_history(shared_files.folder / name_of("ENDPOINTS"))
    made = list(snapshots(SNAPS, STRIKES, "SPX", dt.date.fromisoformat(DAY), seed=1))
    url = f"{shared_files.url}/files/{name_of('ENDPOINTS')}"
    jobs = [wait_job(shared_hist, submit(shared_hist, url)["id"]),
            wait_job(shared_hist, submit(shared_hist, url, ticker="ENDPOINTS", endpoint="gex_one")["id"]),
            wait_job(shared_hist, submit(shared_hist, url + "?sig=2", ticker="ENDPOINTS", endpoint="gex_full")["id"])]
    assert [(j["endpoint"], j["status"], j["snapshots_imported"], j["rows_imported"], j["last_error"])
            for j in jobs] == [(endpoint, "completed", SNAPS, SNAPS * STRIKES, None)
                               for endpoint in ("gex_zero", "gex_one", "gex_full")]
    assert len({j["id"] for j in jobs}) == 3 and len({j["sha256"] for j in jobs}) == 1
    by_endpoint = sorted(zip(("gex_zero", "gex_one", "gex_full"), (j["id"] for j in jobs)))
    snaps, strikes = stored(shared_hist, "ENDPOINTS")
    assert snaps == [(endpoint, s["timestamp"], s["spot"], f"history:{job_id}")
                     for endpoint, job_id in by_endpoint for s in made]
    assert strikes == [(endpoint, s["timestamp"], *row[:3]) for endpoint, _ in by_endpoint
                       for s in made for row in sorted(s["strikes"])]


def test_existing_staged_and_parquet_files_stay_byte_identical(hist, files, tmp_path):
    write_history(files.folder / NAME)
    data = tmp_path / "data"
    staged = data / "source/gexbot/SPX_gex_zero_history.json"
    staged.parent.mkdir(parents=True)
    staged.write_bytes(b"[]")
    day_file = data / "parquet/gexbot/SPX/gex_zero/20251021.strikes.parquet"
    day_file.parent.mkdir(parents=True)
    pl.DataFrame({"timestamp": [1], "strike": [1.0]}).write_parquet(day_file)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (staged, day_file)}
    server = hist()
    job = wait_job(server, submit(server, f"{files.url}/files/{NAME}")["id"])
    assert job["status"] == "completed"
    assert job["file_path"].endswith(f"SPX_gex_zero_history.{job['sha256'][:16]}.json")
    server.stop()
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (staged, day_file)} == before
    parts = [p for p in day_file.parent.glob("*.strikes.parquet") if p != day_file]
    assert len(parts) == 1 and parts[0].name.startswith("20251021.")
    assert pl.read_parquet(parts[0]).height == SNAPS * STRIKES


@pytest.mark.slow
def test_unfinished_jobs_resume_after_a_restart(hist, files, tmp_path):
    write_history(files.folder / NAME)
    write_history(files.folder / "b.json", ticker="NDX")
    server = hist()
    server.stop()
    staging = server.data_dir / "source/gexbot"
    staging.mkdir(parents=True, exist_ok=True)
    (staging / ".7.part").write_bytes(b"[{half")  # a download cut off by the crash
    with duckdb.connect(str(server.data_dir / "gex_data.db")) as db:
        db.execute("INSERT INTO gex_history_queue (id, url, ticker, endpoint, status, attempts) VALUES "
                   f"(7, '{files.url}/files/{NAME}', 'SPX', 'gex_zero', 'downloading', 1), "
                   f"(8, '{files.url}/files/b.json', 'NDX', 'gex_zero', 'pending', 0)")
    server.start()
    assert [wait_job(server, i)["snapshots_imported"] for i in (7, 8)] == [SNAPS, SNAPS]
    assert not (staging / ".7.part").exists()
    assert server.get("/gex_history_url").json()["jobs"][0]["id"] == 8


@pytest.mark.slow
def test_a_job_cut_off_after_its_commits_ends_completed_with_its_counts(hist, files):
    """A crash between an import's last commit and its job's update left the job `importing`; run again, it found
    every snapshot stored and ended `skipped`, 0 imported (test_crash's SIGKILL loop met it)."""
    write_history(files.folder / NAME)
    server = hist()
    job = wait_job(server, submit(server, f"{files.url}/files/{NAME}")["id"])
    assert (job["status"], job["snapshots_imported"], job["rows_imported"]) == ("completed", SNAPS, SNAPS * STRIKES)
    server.stop()
    with duckdb.connect(str(server.data_dir / "gex_data.db")) as db:  # what the crash left
        db.execute("UPDATE gex_history_queue SET status = 'importing', snapshots_imported = NULL, "
                   "rows_imported = NULL, finished_at = NULL WHERE id = ?", [job["id"]])
    server.start()
    again = wait_job(server, job["id"])
    assert (again["status"], again["snapshots_imported"], again["rows_imported"], again["last_error"]) == (
        "completed", SNAPS, SNAPS * STRIKES, None)


def test_pre_signed_query_strings_stay_out_of_listings_and_logs(hist, files):
    secret = "X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA"
    server = hist()
    job = wait_job(server, submit(server, f"{files.url}/status/404/{NAME}?{secret}")["id"])
    listed = [server.get(f"/gex_history_url/{job['id']}").json(), *server.get("/gex_history_url").json()["jobs"],
              *server.get("/api/status").json()["history"]["jobs"]]
    server.stop()
    assert job["status"] == "failed"
    assert [j["url"] for j in listed] == [f"{files.url}/status/404/{NAME}?…"] * 3
    assert "deadbeef" not in server.log_path.read_text()
    assert all("deadbeef" not in hook["text"] for hook in files.hooks) and files.hooks
