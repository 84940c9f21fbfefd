"""Every form of gexbot endpoint name a client sends (gexsrv.endpoints): the API paths with and without their
leading slash, version and ticker, majors and maxchange alike, on /gex, /uw and /gex_history_url; and the
history request's `gex_type` (the original's own name for the category). Each row is read back from DuckDB."""

import json

from helpers import TS, snapshot, wait_job


def majors(ticker, ts, **extra):
    return {"timestamp": ts, "ticker": ticker, "spot": 7100.0, "zero_gamma": 7080.0, "mpos_vol": 7105.0,
            "mpos_oi": 7110.0, "mneg_vol": 7090.0, "mneg_oi": 7085.0, "net_gex_vol": 10.0, "net_gex_oi": 4.0, **extra}


def maxchange(ticker, ts):
    return {"timestamp": ts, "ticker": ticker,
            **{w: [7105.0, 100.0 + i] for i, w in enumerate(("current", "one", "five", "ten", "fifteen", "thirty"))}}


# (endpoint as sent, payload, table it lands in, endpoint stored)
FORMS = [
    ("classic/one/majors", majors("SPX", TS), "gex_majors", "gex_one"),
    ("/classic/one/majors", majors("SPX", TS + 1), "gex_majors", "gex_one"),
    ("classic/one/maxchange", maxchange("SPX", TS + 2), "gex_maxchange", "gex_one"),
    ("/SPX/classic/zero/majors", majors("SPX", TS + 3), "gex_majors", "gex_zero"),
    ("/SPX/classic/zero/maxchange", maxchange("SPX", TS + 4), "gex_maxchange", "gex_zero"),
    ("NQ_NDX/classic/full", snapshot("NQ_NDX", TS + 5, n_strikes=2), "gex_snapshots", "gex_full"),
    ("/v2/SPX/state/gex_one/majors", majors("SPX", TS + 6), "gex_majors", "state_gex_one"),
    ("v2/SPX/state/one/maxchange/", maxchange("SPX", TS + 7), "gex_maxchange", "state_gex_one"),
    ("https://api.gex.bot/v2/SPX/classic/full/majors?key=k", majors("SPX", TS + 8), "gex_majors", "gex_full"),
    ("state/gamma_zero", snapshot("SPX", TS + 9, n_strikes=2), "gex_snapshots", "state_gamma_zero"),
    ("/classic/zero", snapshot("SPX", TS + 10, n_strikes=2), "gex_snapshots", "gex_zero"),
    ("majors", majors("SPX", TS + 11), "gex_majors", "gex_zero"),
    # the path names the kind when the payload does not show it (no mpos_* fields)
    ("classic/one/majors", {"timestamp": TS + 12, "ticker": "SPX", "spot": 7100.0, "zero_gamma": 7080.0},
     "gex_majors", "gex_one"),
]

TABLES = ("gex_snapshots", "gex_majors", "gex_maxchange")
KINDS = {"gex_snapshots": "snapshot", "gex_majors": "majors", "gex_maxchange": "maxchange"}


def stored(server):
    """(table, ticker, endpoint, timestamp s) of every row, in order."""
    with server.db() as db:
        return sorted((table, *row) for table in TABLES for row in db.execute(
            f"SELECT ticker, endpoint, timestamp // 1000 FROM {table}").fetchall())


# what is still no endpoint: a part past the kind, more than a version and a ticker before the package, two
# categories, a name no folder may have
REFUSED = ["classic/zero/majors/more", "a/b/c/classic/zero", "classic/zero/one", "gex zero"]


def test_every_api_path_form_is_stored_under_its_endpoint(server):
    replies = [server.post("/gex", {"ticker": payload["ticker"], "endpoint": name, "data": payload})
               for name, payload, _, _ in FORMS]
    via_uw = server.post("/uw", {"topic": "gex", "endpoint": "/SPX/classic/one/majors",
                                 "payload": majors("SPX", TS + 20)})
    refused = [server.post("/gex", {"ticker": "SPX", "endpoint": name, "data": majors("SPX", TS + 30)})
               for name in REFUSED]
    server.stop()
    assert [(r.status, r.json()["field"]) for r in refused] == [(400, "$.endpoint")] * len(REFUSED)
    for reply, (name, payload, table, endpoint) in zip(replies, FORMS):
        assert reply.status == 202, (name, reply.body)
        assert (reply.json()["endpoint"], reply.json()["kind"]) == (endpoint, KINDS[table]), name
    assert via_uw.status == 200 and (via_uw.json()["endpoint"], via_uw.json()["kind"]) == ("gex_one", "majors")
    assert stored(server) == sorted([(table, payload["ticker"], endpoint, payload["timestamp"])
                                     for _, payload, table, endpoint in FORMS] +
                                    [("gex_majors", "SPX", "gex_one", TS + 20)])


def test_history_requests_take_gex_type_and_api_paths(hist, files):
    """The original's own test body names the category `gex_type`, its file name carries none."""
    snaps = [snapshot("SPX", TS + i, n_strikes=2) for i in range(3)]
    (files.folder / "2025-11-14_SPX_classic.json").write_text(json.dumps(snaps))
    # other values: a file of the same bytes would count as imported already (same content as job 1)
    (files.folder / "b.json").write_text(json.dumps([{**s, "spot": 7200.0} for s in snaps]))
    server = hist()
    typed = server.post("/gex_history_url", {"url": f"{files.url}/files/2025-11-14_SPX_classic.json",
                                             "gex_type": "gex_one", "ticker": "SPX"})
    pathed = server.post("/gex_history_url", {"url": f"{files.url}/files/b.json", "ticker": "SPX",
                                              "endpoint": "/SPX/classic/full"})
    assert (typed.status, pathed.status) == (202, 202), (typed.body, pathed.body)
    assert [wait_job(server, r.json()["id"])["status"] for r in (typed, pathed)] == ["completed"] * 2
    server.stop()
    assert stored(server) == sorted([("gex_snapshots", "SPX", "gex_one", TS + i) for i in range(3)] +
                                    [("gex_snapshots", "SPX", "gex_full", TS + i) for i in range(3)])
