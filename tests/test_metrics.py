"""GET /metrics, /api/status, /api/snapshots and /api/strikes against a real server: the counters match what was
posted and what landed in DuckDB, the read API returns the posted snapshots row by row (from memory and, after a
restart, from DuckDB), bad parameters get 400 naming the field, and with authentication on the reads need it."""

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helpers import FRAME, TOKEN, TS, envelope, majors, snapshot


def scrape(server, headers=None):
    """{(sample name, frozenset of its labels): value} of one scrape."""
    reply = server.request("GET", "/metrics", headers=headers)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(reply.body.decode()) for sample in family.samples}


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


def logged(samples, level):
    """The messages logged at level, by whichever process logged them (with --processes 2 a `proc` label says)."""
    return sum(found for (name, labels), found in samples.items()
               if name == "gexsrv_log_messages_total" and ("level", level) in labels)


def requests_counted(samples, endpoint, method, status):
    return value(samples, "gexsrv_request_duration_seconds_count", endpoint=endpoint, method=method, status=status)


def posted_snapshots():
    """Three snapshots of SPX gex_zero (5, 6 and 7 strike rows) and one of gex_one (4)."""
    return [("gex_zero", snapshot(timestamp=TS, n_strikes=5)),
            ("gex_zero", snapshot(timestamp=TS + 1, n_strikes=6, spot=7140.0)),
            ("gex_zero", snapshot(timestamp=TS + 2, n_strikes=7, spot=7141.25)),
            ("gex_one", snapshot(timestamp=TS + 1, n_strikes=4, spot=7139.0))]


def post_all(server, posted):
    for endpoint, payload in posted:
        reply = server.post("/gex?ack=ingested", envelope(payload, TS + 5, endpoint=endpoint))
        assert reply.status == 202, reply.body


def test_metrics_count_what_was_posted_and_what_landed_in_duckdb(server):
    posted = posted_snapshots()
    post_all(server, posted)
    replays = [server.post("/gex?ack=ingested", envelope(posted[0][1], TS + 5, endpoint="gex_zero"))
               for _ in range(2)]
    assert [r.json()["duplicate"] for r in replays] == [True, True]
    assert server.post("/gex?ack=ingested", envelope(majors("SPX", TS + 60, 7140.0), TS + 61, endpoint="gex_zero",
                                                     kind="majors")).status == 202
    frames = [[*FRAME[:4], {"title": f"news {i}"}] for i in range(3)]
    assert [server.post("/uw?ack=ingested", frame).status for frame in frames] == [200] * 3
    assert server.post("/gex", {"ticker": "SPX"}).status == 400
    assert server.get("/api/status").status == 200

    samples = scrape(server)
    stored = {table: value(samples, "gexsrv_rows_stored_total", table=table) for table in
              ("gex_snapshots", "gex_strikes", "gex_majors", "gex_maxchange", "universal_webhooks")}
    assert stored == {"gex_snapshots": 4, "gex_strikes": 5 + 6 + 7 + 4, "gex_majors": 1, "gex_maxchange": 0,
                      "universal_webhooks": 3}
    assert requests_counted(samples, "/gex", "POST", "202") == 4 + 2 + 1
    assert requests_counted(samples, "/gex", "POST", "400") == 1
    assert requests_counted(samples, "/uw", "POST", "200") == 3
    assert requests_counted(samples, "/api/status", "GET", "200") == 1
    assert value(samples, "gexsrv_feed_records_total", ticker="SPX", endpoint="gex_zero", kind="snapshot") == 3
    assert value(samples, "gexsrv_feed_records_total", ticker="SPX", endpoint="gex_one", kind="snapshot") == 1
    assert value(samples, "gexsrv_feed_records_total", ticker="SPX", endpoint="gex_zero", kind="majors") == 1
    assert value(samples, "gexsrv_feed_timestamp_seconds", ticker="SPX", endpoint="gex_zero", kind="snapshot") == TS + 2
    # Every record journaled was ingested, duplicates included: 4 snapshots, 2 replays, 1 majors, 3 frames.
    assert value(samples, "gexsrv_ingest_batch_records_sum") == 10
    assert value(samples, "gexsrv_ingest_seconds_count") == value(samples, "gexsrv_ingest_batch_records_count") >= 1
    assert value(samples, "gexsrv_ingest_duplicates_total") == 2
    assert value(samples, "gexsrv_journal_records_waiting") == 0
    assert value(samples, "gexsrv_storage_state", state="writable") == 1
    assert value(samples, "gexsrv_storage_quarantined_records") == 0
    assert value(samples, "gexsrv_history_jobs", status="pending") == 0
    assert value(samples, "gexsrv_latest_tickers") == 1
    assert value(samples, "gexsrv_poller_enabled") == 0
    assert logged(samples, "WARNING") >= 1  # the 400 was logged
    # A second scrape counts the first.
    assert requests_counted(scrape(server), "/metrics", "GET", "200") == 1

    openmetrics = server.request("GET", "/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.body.endswith(b"# EOF\n")

    server.stop()
    with server.db() as db:
        counted = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in stored}
        strikes = db.execute("SELECT endpoint, timestamp, count(*) FROM gex_strikes GROUP BY ALL ORDER BY ALL")
        assert strikes.fetchall() == [("gex_one", (TS + 1) * 1000, 4), ("gex_zero", TS * 1000, 5),
                                      ("gex_zero", (TS + 1) * 1000, 6), ("gex_zero", (TS + 2) * 1000, 7)]
    assert counted == stored


def snapshot_fields(payload, endpoint):
    """A posted payload as /api/snapshots shows it (times in epoch ms, no strike rows)."""
    names = ("spot", "zero_gamma", "min_dte", "sec_min_dte", "major_pos_vol", "major_pos_oi", "major_neg_vol",
             "major_neg_oi", "sum_gex_vol", "sum_gex_oi", "delta_risk_reversal")
    return {"timestamp": payload["timestamp"] * 1000, "endpoint": endpoint, "source": "live",
            **{name: payload[name] for name in names}}


def listed(reply):
    assert reply.status == 200, reply.body
    found = reply.json()
    for row in found["snapshots"]:
        assert row.pop("received_at") == (TS + 5) * 1000  # the envelope's
    return found


def strikes_of(server, query):
    reply = server.get(f"/api/strikes?{query}")
    assert reply.status == 200, reply.body
    found = reply.json()
    assert found.pop("received_at") == (TS + 5) * 1000
    return found


def test_snapshots_and_strikes_return_the_posted_rows_from_memory_and_from_duckdb(start_server, tmp_path):
    server = start_server()
    posted = posted_snapshots()
    post_all(server, posted)
    zero = [snapshot_fields(payload, endpoint) for endpoint, payload in posted if endpoint == "gex_zero"]

    found = listed(server.get("/api/snapshots?ticker=SPX&endpoint=gex_zero"))
    assert found == {"ticker": "SPX", "endpoint": "gex_zero", "since": 946684800000, "until": 4102444800000,
                     "limit": 500, "more": False, "snapshots": zero[::-1]}
    every = listed(server.get("/api/snapshots?ticker=spx"))["snapshots"]
    assert [(row["timestamp"], row["endpoint"]) for row in every] == [
        ((TS + 2) * 1000, "gex_zero"), ((TS + 1) * 1000, "gex_one"), ((TS + 1) * 1000, "gex_zero"),
        (TS * 1000, "gex_zero")]
    ranged = listed(server.get(f"/api/snapshots?ticker=SPX&endpoint=gex_zero&since={TS + 1}"
                               "&until=2026-04-29T20:00:02&limit=1"))
    assert (ranged["since"], ranged["until"], ranged["more"]) == ((TS + 1) * 1000, (TS + 2) * 1000, False)
    assert ranged["snapshots"] == [zero[1]]
    first = listed(server.get(f"/api/snapshots?ticker=SPX&endpoint=gex_zero&until={(TS + 3) * 1000}&limit=2"))
    assert (first["more"], first["snapshots"]) == (True, zero[:0:-1])
    assert listed(server.get("/api/snapshots?ticker=NDX"))["snapshots"] == []

    def expected(endpoint, payload):
        return {"ticker": "SPX", **snapshot_fields(payload, endpoint), "strikes": payload["strikes"]}

    newest = strikes_of(server, "ticker=SPX&endpoint=gex_zero")  # held in memory
    older = strikes_of(server, f"ticker=SPX&endpoint=gex_zero&timestamp={TS}")  # read from DuckDB
    one = strikes_of(server, "ticker=SPX&endpoint=gex_one")
    assert newest == expected(*posted[2])
    assert older == expected(*posted[0])
    assert one == expected(*posted[3])
    missing = server.get(f"/api/strikes?ticker=SPX&endpoint=gex_zero&timestamp={TS + 9}")
    assert missing.status == 404 and missing.json()["field"] == "timestamp"
    assert server.get("/api/strikes?ticker=SPX&endpoint=gex_full").status == 404

    server.stop()
    server.start()  # nothing held in memory now: every snapshot comes from DuckDB
    assert strikes_of(server, "ticker=SPX&endpoint=gex_zero") == newest
    assert strikes_of(server, f"ticker=SPX&endpoint=gex_zero&timestamp={TS}") == older
    assert listed(server.get("/api/snapshots?ticker=SPX&endpoint=gex_zero"))["snapshots"] == zero[::-1]


def test_status_reports_feeds_and_recent_warnings(server):
    post_all(server, posted_snapshots()[:1])
    assert server.post("/gex", {"ticker": "SPX"}).status == 400
    status = server.get("/api/status").json()
    assert abs(status["now"] - time.time() * 1000) < 60_000
    assert status["health"]["status"] == "ok"
    assert status["history"] == {"jobs": [], "error": None}
    [feed] = status["feeds"]
    assert feed.pop("age_s") == pytest.approx((status["now"] - TS * 1000) / 1000)
    assert feed.pop("received_age_s") == pytest.approx((status["now"] - (TS + 5) * 1000) / 1000)
    assert feed == {"ticker": "SPX", "endpoint": "gex_zero", "kind": "snapshot", "timestamp": TS * 1000,
                    "received_at": (TS + 5) * 1000, "records": 1}
    warning = status["errors"][0]
    assert (warning["level"], warning["logger"]) == ("WARNING", "tornado.access")
    assert "400 POST /gex" in warning["message"]


@pytest.mark.parametrize("query, field", [
    ("/api/snapshots", "ticker"),
    ("/api/snapshots?ticker=", "ticker"),
    ("/api/snapshots?ticker=S%20PX", "ticker"),
    ("/api/snapshots?ticker=SPX&endpoint=gex-zero!", "endpoint"),
    ("/api/snapshots?ticker=SPX&endpoint=a/b/c", "endpoint"),
    ("/api/strikes?ticker=SPX&endpoint=maxchange", "endpoint"),
    ("/api/snapshots?ticker=SPX&since=yesterday", "since"),
    ("/api/snapshots?ticker=SPX&until=99999999999999999999999", "until"),
    ("/api/snapshots?ticker=SPX&since=1777492800&until=1777492800", "since"),
    ("/api/snapshots?ticker=SPX&limit=0", "limit"),
    ("/api/snapshots?ticker=SPX&limit=5001", "limit"),
    ("/api/snapshots?ticker=SPX&limit=ten", "limit"),
    ("/api/snapshots?ticker=SPX&tickr=NDX", "tickr"),
    ("/api/strikes?ticker=SPX", "endpoint"),
    ("/api/strikes?endpoint=gex_zero", "ticker"),
    ("/api/strikes?ticker=SPX&endpoint=gex_zero&timestamp=noon", "timestamp"),
    ("/api/status?verbose=1", "verbose"),
    ("/metrics?name=x", "name"),
])
def test_bad_parameters_get_400_naming_the_field(shared_server, query, field):
    reply = shared_server.get(query)
    assert reply.status == 400, reply.body
    found = reply.json()
    assert found["field"] == field
    assert field in found["error"] or "must" in found["error"] or "expected" in found["error"], found


def test_reads_need_the_credentials_of_writes_and_the_page_does_not(start_server):
    server = start_server(None, env={"GEXSRV_AUTH_TOKEN": TOKEN})
    token = {"Authorization": f"Bearer {TOKEN}"}
    assert server.post("/gex?ack=ingested", snapshot(), token).status == 202
    for path in ("/api/status", "/api/snapshots?ticker=SPX", "/api/strikes?ticker=SPX&endpoint=gex_zero",
                 "/metrics"):
        refused = server.get(path)
        assert refused.status == 401, path
        assert refused.json()["error"].startswith("missing bearer token")
        assert server.request("GET", path, headers={"Authorization": "Bearer wrong"}).status == 401, path
        assert server.request("GET", path, headers=token).status == 200, path
    assert value(scrape(server, token), "gexsrv_rows_stored_total", table="gex_strikes") == 5
    for path in ("/", "/web/status.js", "/web/chart.js", "/web/base.css", "/web/status.css"):  # the page's files hold no data
        assert server.get(path).status == 200, path
    assert server.get("/web/../server.py").status == 403  # nothing outside gexsrv/web is served
