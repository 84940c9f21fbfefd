"""GET /api/latest, the original's latest.json view (CONTRACT section 6), and the --outputs-dir files, against a real
server: what the original's clients send goes in, the merged view comes out exactly, newest by timestamp, loaded
back from DuckDB after a restart; latest.json and spot_series.jsonl are checked after a concurrent burst."""

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import duckdb
import pytest

import make_legacy_db
from helpers import (NEW_YORK, TS, envelope, eventually, latest, majors, poller_maxchange, poller_snapshot,
                     snapshot, wait_loaded)


MAXCHANGE = {"Now": {"strike": 7140, "net_gex": 170979.742}, "1 min": {"strike": 7135, "net_gex": 1145886.722},
             "5 min": {"strike": 7135, "net_gex": 997473.336}, "10 min": {"strike": 7135, "net_gex": 1106210.715},
             "15 min": {"strike": 7135, "net_gex": 1128504.809}, "30 min": {"strike": 7135, "net_gex": 1131150.488}}


def test_snapshot_majors_and_maxchange_of_two_tickers_merge_into_the_view(start_server):
    server = start_server(None, *NEW_YORK)
    assert wait_loaded(server)["latest"] == {"tickers": 0, "load": "done", "feeds": 0, "snapshots": 0,
                                             "max_feeds": 1000, "evicted": 0, "outputs": None}
    assert latest(server) == {}
    snap = snapshot(ticker="SPX", timestamp=TS, n_strikes=3)
    del snap["major_neg_oi"]  # the majors' mneg_oi fills it in `combined`
    spx_majors = majors("SPX", TS + 60, 7140.0)
    ndx_majors = majors("NDX", TS + 120, 25000.0)
    sent = [
        ("/gex", envelope(snap, TS + 1, endpoint="classic/one")),
        ("/gex", envelope(spx_majors, TS + 61, endpoint="gex_zero", kind="majors")),
        ("/uw", poller_maxchange("SPX")),  # received 16:00:01 New York = TS + 1
        ("/gex", envelope(ndx_majors, TS + 121, endpoint="gex_full")),
        ("/uw", poller_maxchange("NDX")),
    ]
    assert [server.post(path + "?ack=ingested", body).status for path, body in sent] == [202, 202, 200, 202, 200]

    view = latest(server)
    assert list(view) == ["NDX", "SPX"]
    maxchange_payload = poller_maxchange("SPX")["payload"]
    assert view["SPX"] == {
        "ticker": "SPX",
        "updated_at": "2026-04-29T20:01:01.000+00:00",  # the newest received_at: the majors'
        "majors": {**spx_majors, "endpoint": "gex_zero"},
        "maxchange": {**maxchange_payload, "timestamp": TS, "endpoint": "gex_zero"},
        "snapshot": {
            "timestamp": TS, "ticker": "SPX", "endpoint": "gex_one", "spot": snap["spot"],
            "zero_gamma": snap["zero_gamma"], "min_dte": 0, "sec_min_dte": 1, "major_pos_vol": snap["major_pos_vol"],
            "major_pos_oi": snap["major_pos_oi"], "major_neg_vol": snap["major_neg_vol"], "major_neg_oi": None,
            "sum_gex_vol": snap["sum_gex_vol"], "sum_gex_oi": snap["sum_gex_oi"], "delta_risk_reversal": 0.118,
            "max_priors": snap["max_priors"], "strikes": snap["strikes"],
        },
        "metadata": {"last_endpoint": "gex_zero", "last_payload_kind": "maxchange",
                     "received_at": "2026-04-29T20:00:01.000+00:00"},
        "combined": {
            "spot": snap["spot"], "zero_gamma": snap["zero_gamma"], "net_gex_vol": snap["sum_gex_vol"],
            "net_gex_oi": snap["sum_gex_oi"], "major_pos_vol": snap["major_pos_vol"],
            "major_neg_vol": snap["major_neg_vol"], "major_pos_oi": snap["major_pos_oi"],
            "major_neg_oi": spx_majors["mneg_oi"], "timestamp": TS, "delta_risk_reversal": 0.118,
            "strikes": snap["strikes"], "max_priors": snap["max_priors"], "max_change": MAXCHANGE,
            "source_endpoint": "gex_one", "has_snapshot": True,
        },
    }
    assert view["NDX"]["snapshot"] is None and view["NDX"]["metadata"] == {
        "last_endpoint": "gex_zero", "last_payload_kind": "maxchange", "received_at": "2026-04-29T20:00:01.000+00:00"}
    assert view["NDX"]["combined"] == {
        "spot": 25000.0, "zero_gamma": 24970.0, "net_gex_vol": 1000.5, "net_gex_oi": -20.25, "major_pos_vol": 25010.0,
        "major_neg_vol": 24960.0, "major_pos_oi": 25060.0, "major_neg_oi": 24910.0, "timestamp": TS + 120,
        "delta_risk_reversal": None, "strikes": [], "max_priors": [], "max_change": MAXCHANGE,
        "source_endpoint": "gex_full", "has_snapshot": False,
    }
    assert latest(server, "?ticker=spx") == view["SPX"]
    assert server.get("/api/latest/?ticker=NDX").json() == view["NDX"]
    assert wait_loaded(server)["latest"] | {"feeds": None} == {"tickers": 2, "load": "done", "feeds": None,
                                                               "snapshots": 1, "max_feeds": 1000, "evicted": 0,
                                                               "outputs": None}


def test_unknown_or_empty_ticker_is_refused_with_json(server):
    assert server.post("/gex?ack=ingested", snapshot(ticker="SPX", n_strikes=1)).status == 202
    missing = server.get("/api/latest?ticker=QQQ")
    assert (missing.status, missing.json()) == (404, {
        "status": "error", "error": "no latest data for ticker 'QQQ' (tickers: SPX)", "field": "ticker"})
    empty = server.get("/api/latest?ticker=%20")
    assert (empty.status, empty.json()["field"]) == (400, "ticker")


def test_an_older_timestamp_does_not_replace_a_newer_one(start_server):
    server = start_server(None, *NEW_YORK)
    newer = snapshot(ticker="SPX", timestamp=TS + 120, n_strikes=2, spot=7150.0)
    older = snapshot(ticker="SPX", timestamp=TS + 60, n_strikes=2, spot=7100.0)
    replies = [server.post("/gex?ack=ingested", envelope(newer, TS + 121, endpoint="gex_zero")),
               server.post("/gex?ack=ingested", envelope(older, TS + 122, endpoint="gex_one")),
               server.post("/uw?ack=ingested", poller_snapshot("SPX"))]  # timestamp TS, stored under gex_zero
    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(202, False), (202, False), (200, False)]
    view = latest(server, "?ticker=SPX")
    assert (view["snapshot"]["timestamp"], view["snapshot"]["endpoint"], view["combined"]["spot"]) == (
        TS + 120, "gex_zero", 7150.0)
    assert view["metadata"] == {"last_endpoint": "gex_zero", "last_payload_kind": "snapshot",
                                "received_at": "2026-04-29T20:02:01.000+00:00"}

    same_time = snapshot(ticker="SPX", timestamp=TS + 120, n_strikes=2, spot=7160.0)
    assert server.post("/gex?ack=ingested", envelope(same_time, TS + 123, endpoint="gex_full")).status == 202
    view = latest(server, "?ticker=SPX")  # of equal timestamps, the one stored last
    assert (view["snapshot"]["endpoint"], view["combined"]["spot"], view["metadata"]["last_endpoint"]) == (
        "gex_full", 7160.0, "gex_full")
    server.stop()
    with server.db() as db:  # all four were stored: only the view skipped the older ones
        assert db.execute("SELECT endpoint, timestamp // 1000 FROM gex_snapshots ORDER BY timestamp, endpoint"
                          ).fetchall() == [("gex_zero", TS), ("gex_one", TS + 60), ("gex_full", TS + 120),
                                           ("gex_zero", TS + 120)]


def test_the_view_is_loaded_back_from_duckdb_after_a_restart(start_server, tmp_path):
    server = start_server(None, *NEW_YORK)
    for ticker, spot in (("SPX", 7138.55), ("NDX", 25000.0)):  # posted in the order received
        assert server.post("/gex?ack=ingested", envelope(snapshot(ticker=ticker, timestamp=TS - 60, n_strikes=4, spot=spot),
                                            TS - 59, endpoint="gex_one")).status == 202
        assert server.post("/uw?ack=ingested", poller_maxchange(ticker)).status == 200  # TS, received TS + 1
        assert server.post("/gex?ack=ingested", envelope(majors(ticker, TS + 60, spot), TS + 61, endpoint="gex_zero")).status == 202
    assert server.post("/gex?ack=ingested", envelope(snapshot(ticker="SPX", timestamp=TS - 120, n_strikes=2), TS + 62,
                                        endpoint="gex_full")).status == 202  # older: stored, not in the view
    before = latest(server)
    assert before["SPX"]["snapshot"]["endpoint"] == "gex_one" and len(before["SPX"]["combined"]["strikes"]) == 4
    server.stop()

    restarted = start_server(tmp_path / "data", *NEW_YORK)
    assert wait_loaded(restarted)["latest"] | {"feeds": None} == {"tickers": 2, "load": "done", "feeds": None,
                                                                  "snapshots": 0, "max_feeds": 1000, "evicted": 0,
                                                                  "outputs": None}
    assert latest(restarted) == before


def test_a_legacy_database_fills_the_view_and_live_data_replaces_only_older(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    make_legacy_db.build(data / "gex_data.db", days=1, tickers=("SPX", "NDX"), every=1800, n_strikes=5)
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        newest = {ticker: (ts, spot) for ticker, ts, spot in db.execute(
            "SELECT ticker, timestamp, spot_price FROM gex_snapshots QUALIFY row_number() OVER "
            "(PARTITION BY ticker ORDER BY timestamp DESC) = 1").fetchall()}
        strikes = {ticker: db.execute("SELECT strike, gamma, oi_gamma, priors FROM gex_strikes WHERE ticker = ? "
                                      "AND timestamp = ? ORDER BY rowid", [ticker, ts]).fetchall()
                   for ticker, (ts, _) in newest.items()}
    server = start_server(data)
    assert wait_loaded(server)["latest"]["load"] == "done"
    view = latest(server)
    assert sorted(view) == ["NDX", "SPX"]
    for ticker, (ts, spot) in newest.items():
        snap = view[ticker]["snapshot"]
        assert (snap["timestamp"], snap["endpoint"], snap["spot"]) == (ts // 1000, None, spot)
        assert [tuple(row) for row in snap["strikes"]] == strikes[ticker] and len(strikes[ticker]) == 5
        assert view[ticker]["metadata"] == {"last_endpoint": None, "last_payload_kind": "snapshot",
                                            "received_at": view[ticker]["updated_at"]}
        assert view[ticker]["combined"]["strikes"] == snap["strikes"] and view[ticker]["majors"] is None

    spx_ts = newest["SPX"][0] // 1000
    assert server.post("/gex?ack=ingested", snapshot(ticker="SPX", timestamp=spx_ts - 1800, n_strikes=2)).status == 202
    assert latest(server, "?ticker=SPX") == view["SPX"]
    assert server.post("/gex?ack=ingested", snapshot(ticker="SPX", timestamp=spx_ts + 1, n_strikes=2, spot=1.5)).status == 202
    assert latest(server, "?ticker=SPX")["combined"]["spot"] == 1.5


def post_all(server, bodies, threads=8):
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(lambda body: server.post("/gex?ack=ingested", body), bodies))


def burst(seed=11):
    """200 bodies for two tickers: snapshots, majors and maxchange at distinct times, and 20 repeats."""
    rnd = random.Random(seed)
    print(f"burst seed {seed}")
    bodies = []
    for i in range(180):
        ticker, ts, spot = rnd.choice(["SPX", "NDX"]), TS + i, round(rnd.uniform(7000, 7200), 2)
        kind = ("snapshot", "majors", "maxchange")[i % 3]
        if kind == "snapshot":
            bodies.append(snapshot(ticker=ticker, timestamp=ts, n_strikes=3, spot=spot))
        elif kind == "majors":
            bodies.append(majors(ticker, ts, spot))
        else:
            bodies.append({**poller_maxchange(ticker)["payload"], "timestamp": ts})
    bodies += rnd.sample(bodies, 20)
    rnd.shuffle(bodies)
    return bodies


class Reader(threading.Thread):
    """Reads a file over and over until stopped: every read must parse as JSON."""

    def __init__(self, path):
        super().__init__(daemon=True)
        self.path = path
        self.stopped = threading.Event()
        self.reads = 0
        self.seen = set()
        self.broken = []

    def run(self):
        while not self.stopped.is_set():
            text = self.path.read_bytes()
            try:
                json.loads(text)
            except ValueError:
                self.broken.append(text)
            self.reads += 1
            self.seen.add(text)


def matching(path, view):
    """The file's bytes if they hold `view`."""
    text = path.read_bytes()
    return text if json.loads(text) == view else None


def spot_lines_appended(server):
    """/health's outputs section once no spot line waits to be appended."""
    outputs = server.get("/health").json()["latest"]["outputs"]
    return None if outputs["pending_lines"] else outputs


@pytest.mark.slow
def test_outputs_dir_keeps_latest_json_and_spot_series_through_a_burst(start_server, tmp_path):
    folder = tmp_path / "outputs" / "data" / "raw" / "gex"
    server = start_server(None, "--outputs-dir", str(folder))
    first = snapshot(ticker="SPX", timestamp=TS - 1, n_strikes=3)
    assert server.post("/gex?ack=ingested", first).status == 202
    eventually((folder / "latest.json").exists, "latest.json written")
    reader = Reader(folder / "latest.json")
    reader.start()
    bodies = burst()
    replies = post_all(server, bodies)
    view = latest(server)
    final = eventually(lambda: matching(folder / "latest.json", view), "latest.json matching /api/latest")
    eventually(lambda: final in reader.seen, "the reader seeing the last latest.json")  # it saw the first one too
    reader.stopped.set()
    reader.join()
    # payloads older than the view's leave it unchanged, but their spot lines follow within a second
    health = eventually(lambda: spot_lines_appended(server), "spot lines appended")
    server.stop()

    assert [r.status for r in replies] == [202] * 200
    assert sum(r.json()["duplicate"] for r in replies) == 20
    assert reader.broken == [] and reader.reads > 10 and len(reader.seen) >= 2
    assert health == {"dir": str(folder), "pending_lines": 0, "dropped_lines": 0, "error": None}
    assert json.loads((folder / "latest.json").read_bytes()) == view
    stored_with_spot = [(body["ticker"], body["timestamp"], body["spot"])
                        for body, reply in zip([first, *bodies], [None, *replies])
                        if (reply is None or not reply.json()["duplicate"]) and "spot" in body]
    lines = [json.loads(line) for line in (folder / "spot_series.jsonl").read_text().splitlines()]
    assert sorted((line["ticker"], line["timestamp"], line["spot"]) for line in lines) == sorted(stored_with_spot)
    assert len(lines) == 1 + 120 and all(list(line) == ["timestamp", "spot", "ticker"] for line in lines)
    assert sorted(path.name for path in folder.iterdir()) == ["latest.json", "spot_series.jsonl"]


def test_past_max_feeds_the_least_recently_updated_is_let_go_of_and_stays_in_duckdb(start_server, tmp_path):
    server = start_server(None, "--max-feeds", "2")
    sent = {}
    for i, ticker in enumerate(["SPX", "NDX", "QQQ", "NDX", "IWM"]):  # NDX updated again: QQQ is the oldest then
        sent[ticker] = snapshot(ticker=ticker, timestamp=TS + i, n_strikes=3, spot=100.0 + i)
        assert server.post("/gex?ack=ingested", envelope(sent[ticker], TS + 100 + i)).status == 202
    assert sorted(latest(server)) == ["IWM", "NDX"]
    assert latest(server, "?ticker=NDX")["snapshot"]["timestamp"] == TS + 3
    gone = server.get("/api/latest?ticker=QQQ")
    assert (gone.status, gone.json()["field"]) == (404, "ticker")
    assert "no latest data in memory" in gone.json()["error"] and "(max_feeds)" in gone.json()["error"]
    health = server.get("/health").json()["latest"]
    assert (health["tickers"], health["feeds"], health["snapshots"], health["max_feeds"]) == (2, 2, 2, 2)
    assert health["evicted"] == 6  # SPX and QQQ, from the tickers, the feeds and the snapshots
    feeds = server.get("/api/status").json()["feeds"]
    assert [(f["ticker"], f["timestamp"]) for f in feeds] == [("IWM", (TS + 4) * 1000), ("NDX", (TS + 3) * 1000)]
    from_duckdb = server.get("/api/strikes?ticker=QQQ&endpoint=gex_zero")  # not held: read from DuckDB
    assert from_duckdb.status == 200 and from_duckdb.json()["strikes"] == sent["QQQ"]["strikes"]
    server.stop()
    with server.db() as db:
        assert db.execute("SELECT ticker, timestamp, spot_price, (SELECT count(*) FROM gex_strikes k WHERE "
                          "k.ticker = s.ticker AND k.timestamp = s.timestamp) FROM gex_snapshots s ORDER BY timestamp"
                          ).fetchall() == [(t, (TS + i) * 1000, 100.0 + i, 3) for i, t in
                                           enumerate(["SPX", "NDX", "QQQ", "NDX", "IWM"])]

    restarted = start_server(tmp_path / "data", "--max-feeds", "2")  # loaded back: the two received last
    assert wait_loaded(restarted)["latest"]["tickers"] == 2
    assert sorted(latest(restarted)) == ["IWM", "NDX"]
