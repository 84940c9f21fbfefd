"""POST /gex_history_url with `raw_body`: the history file carried inline (as the original's receiver took it), so an
expired pre-signed URL loses nothing. A real gexsrv; the URL points at a local file server that answers 404."""

import json

from helpers import HISTORY_OPEN as TS
from helpers import snapshot, wait_job

NAME = "2025-10-21_SPX_classic_gex_one.json"


def inline_snapshots(ticker, n, first_ts):
    return [snapshot(ticker=ticker, timestamp=first_ts + i, n_strikes=3, spot=7000.0 + i) for i in range(n)]


def stored_rows(server):
    """(ticker, endpoint, timestamp s, spot, source) of every snapshot, and (ticker, timestamp s, strike, gamma,
    oi_gamma, priors) of every strike row, in order."""
    with server.db() as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp // 1000, spot_price, source FROM gex_snapshots "
                           "ORDER BY ticker, timestamp").fetchall()
        strikes = db.execute("SELECT ticker, timestamp // 1000, strike, gamma, oi_gamma, priors FROM gex_strikes "
                             "ORDER BY ticker, timestamp, strike").fetchall()
    return snaps, strikes


def expected_strikes(snaps):
    return sorted((s["ticker"], s["timestamp"], *row[:3], row[3]) for s in snaps for row in s["strikes"])


def test_raw_body_is_imported_and_the_dead_url_only_names_the_file(hist, files):
    as_text = inline_snapshots("SPX", 4, TS)  # the file's text in a JSON string
    as_json = inline_snapshots("NDX", 3, TS)  # the file's array itself
    server = hist()
    dead = f"{files.url}/status/404/{NAME}?sig=expired"
    text_job = server.post("/gex_history_url", {"url": dead, "raw_body": json.dumps(as_text)})
    json_job = server.post("/gex_history_url", {"url": f"{files.url}/status/404/x.json", "ticker": "ndx",
                                                "endpoint": "zero", "raw_body": as_json})
    assert (text_job.status, json_job.status) == (202, 202), (text_job.body, json_job.body)
    assert (text_job.json()["ticker"], text_job.json()["endpoint"]) == ("SPX", "gex_one")  # from the URL's name
    done = [wait_job(server, reply.json()["id"]) for reply in (text_job, json_job)]
    again = server.post("/gex_history_url", {"url": dead, "raw_body": json.dumps(as_text)})
    server.stop()
    assert [(j["status"], j["snapshots_imported"], j["rows_imported"], j["attempts"]) for j in done] == [
        ("completed", 4, 12, 0), ("completed", 3, 9, 0)], done
    assert all("/source/gexbot/" in j["file_path"] for j in done)
    assert again.status == 202 and again.json()["id"] == done[0]["id"] and again.json()["duplicate"] is True
    assert not [path for path in files.hits if path.startswith("/status/")]  # nothing was downloaded
    snaps, strikes = stored_rows(server)
    assert snaps == [("NDX", "gex_zero", s["timestamp"], s["spot"], f"history:{done[1]['id']}") for s in as_json] + [
        ("SPX", "gex_one", s["timestamp"], s["spot"], f"history:{done[0]['id']}") for s in as_text]
    assert strikes == expected_strikes(as_json) + expected_strikes(as_text)


def test_a_malformed_raw_body_gets_400_naming_it_and_queues_nothing(hist, files):
    server = hist()
    url = f"{files.url}/status/404/{NAME}"
    cases = [
        ({"url": url, "raw_body": 5}, "$.raw_body", "history file"),
        ({"url": url, "raw_body": "no json here"}, "$.raw_body", "neither JSON"),
        ({"url": url, "raw_body": "[{\"ticker\": \"SPX\"}"}, "$.raw_body", "invalid JSON"),
        ({"url": url, "raw_body": [{"ticker": "SPX", "spot": 1.0}]}, "$.raw_body", "snapshot 0: Object missing "
                                                                                   "required field `timestamp`"),
        ({"url": url, "raw_body": []}, "$.raw_body", "no snapshots"),
        ({"ticker": "SPX", "endpoint": "gex_zero", "raw_body": inline_snapshots("SPX", 1, TS)}, "$.url", "raw_body"),
        ({"url": url, "date": "2025-10-21", "raw_body": inline_snapshots("SPX", 1, TS)}, "$.raw_body", "date"),
    ]
    replies = [server.post("/gex_history_url", body) for body, _, _ in cases]
    jobs = server.get("/gex_history_url").json()["jobs"]
    server.stop()
    for reply, (body, field, reason) in zip(replies, cases):
        assert reply.status == 400, (body, reply.body)
        assert reply.json()["field"] == field and reason in reply.json()["error"], (body, reply.json())
    assert jobs == []
    assert not list((server.data_dir / "source/gexbot").glob("*.json"))
    assert stored_rows(server) == ([], [])


def test_an_inline_file_is_imported_here_even_with_a_download_command(hist, files):
    """HISTORY_DOWNLOAD_COMMAND (the original's form, which imports by itself) is for files to fetch."""
    snaps = inline_snapshots("SPX", 2, TS)
    server = hist("--history-download-command", "false {url}")
    reply = server.post("/gex_history_url", {"url": f"{files.url}/status/404/{NAME}", "raw_body": snaps})
    job = wait_job(server, reply.json()["id"])
    server.stop()
    assert (job["status"], job["snapshots_imported"], job["last_error"]) == ("completed", 2, None)
    assert stored_rows(server)[0] == [("SPX", "gex_one", s["timestamp"], s["spot"], "history:1") for s in snaps]


def test_the_same_inline_file_under_another_endpoint_is_a_job_of_its_own(hist, files):
    snaps = inline_snapshots("SPX", 3, TS)
    server = hist()
    url = f"{files.url}/status/404/x.json"
    replies = [server.post("/gex_history_url", {"url": url, "ticker": "SPX", "endpoint": endpoint, "raw_body": snaps})
               for endpoint in ("zero", "one", "zero")]
    assert [r.status for r in replies] == [202] * 3, [r.body for r in replies]
    zero, one, again = (r.json() for r in replies)
    assert (again["id"], again["duplicate"]) == (zero["id"], True) and one["id"] != zero["id"]
    done = [wait_job(server, job["id"]) for job in (zero, one)]
    server.stop()
    assert [(j["status"], j["snapshots_imported"]) for j in done] == [("completed", 3), ("completed", 3)]
    stored, strikes = stored_rows(server)
    assert sorted(stored) == sorted((s["ticker"], endpoint, s["timestamp"], s["spot"], f"history:{job['id']}")
                                    for endpoint, job in (("gex_zero", zero), ("gex_one", one)) for s in snaps)
    assert len(strikes) == 2 * len(expected_strikes(snaps))
