"""gexbot's packages are different computations of the same categories, stored apart (gexsrv.endpoints): classic
keeps its names, state and any other package get `<package>_<category>`, on POST /gex, /uw, history files and in
the validator; legacy rows stay as they were. Each row is read back from DuckDB."""

import datetime as dt
import json

import duckdb
import make_legacy_db
from forkserver import run_gexsrv
from helpers import REPO, TS, eventually, legacy_fingerprint, snapshot, wait_job
from make_history_file import snapshots
from validate_helpers import plant

SNAPSHOT_SQL = "SELECT endpoint, timestamp, spot_price, zero_gamma, sum_gex_vol, source FROM gex_snapshots"
STRIKE_SQL = "SELECT endpoint, timestamp, strike, gamma, oi_gamma, priors FROM gex_strikes"


def stored(data_dir):
    """(snapshot rows, strike rows) gexsrv wrote (legacy rows have no endpoint), in key order."""
    with duckdb.connect(str(data_dir / "gex_data.db"), read_only=True) as db:
        return (db.execute(f"{SNAPSHOT_SQL} WHERE endpoint IS NOT NULL ORDER BY ALL").fetchall(),
                db.execute(f"{STRIKE_SQL} WHERE endpoint IS NOT NULL ORDER BY ALL").fetchall())


def rows_of(endpoint, snap, source="live"):
    """(snapshot row, strike rows) a payload is stored as, as stored() reads them."""
    ms = snap["timestamp"] * 1000
    return ((endpoint, ms, snap["spot"], snap["zero_gamma"], snap["sum_gex_vol"], source),
            [(endpoint, ms, *row) for row in snap["strikes"]])


def expected(*stored_as):
    """stored()'s answer for payloads stored as (endpoint, payload[, source])."""
    made = [rows_of(*each) for each in stored_as]
    return sorted(s for s, _ in made), sorted(r for _, rows in made for r in rows)


def test_classic_and_state_snapshots_of_one_timestamp_are_both_stored(server):
    classic = snapshot("SPX", TS, n_strikes=3, spot=7100.0)
    state = snapshot("SPX", TS, n_strikes=4, spot=7200.0)
    gamma = snapshot("SPX", TS, n_strikes=2, spot=7300.0)
    flow = snapshot("SPX", TS, n_strikes=1, spot=7400.0)
    replies = [server.post("/gex", {"ticker": "SPX", "endpoint": "classic/zero", "data": classic}),
               server.post("/gex", {"ticker": "SPX", "endpoint": "/v2/SPX/state/zero", "data": state}),
               server.post("/uw", {"topic": "gex", "endpoint": "state/gamma_zero", "payload": gamma}),
               server.post("/gex", {**flow, "endpoint": "orderflow/orderflow"})]
    assert [(r.status, r.json()["endpoint"], r.json()["duplicate"]) for r in replies] == [
        (202, "gex_zero", False), (202, "state_gex_zero", False), (200, "state_gamma_zero", False),
        (202, "orderflow_orderflow", False)]
    # the same key again within one package is a duplicate: the first values stay (stored() below)
    again = server.post("/gex", {"ticker": "SPX", "endpoint": "state/gex_zero", "data": {**state, "spot": 1.0}})
    assert (again.json()["endpoint"], again.json()["duplicate"]) == ("state_gex_zero", True)

    def shown(name):  # a read names the feed in any form a write does
        reply = server.get(f"/api/strikes?ticker=SPX&endpoint={name}")
        return reply.status == 200 and reply.json()

    for name in ("state/zero", "state_gex_zero"):
        found = eventually(lambda: shown(name), f"{name} shown")
        assert (found["endpoint"], found["spot"], len(found["strikes"])) == ("state_gex_zero", 7200.0, 4)
    server.stop()
    assert stored(server.data_dir) == expected(("gex_zero", classic), ("state_gex_zero", state),
                                      ("state_gamma_zero", gamma), ("orderflow_orderflow", flow))


def test_legacy_rows_stay_as_they_were_beside_both_packages(start_server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    before = make_legacy_db.build(data / "gex_data.db", days=1, every=300, n_strikes=20)
    server = start_server(data)
    at = make_legacy_db.FIRST_MS // 1000  # a legacy row's ticker and timestamp
    classic, state = snapshot("SPX", at, n_strikes=2, spot=6000.0), snapshot("SPX", at, n_strikes=3, spot=6100.0)
    replies = [server.post("/gex", {"endpoint": "classic/zero", "data": classic}),
               server.post("/gex", {"endpoint": "state/zero", "data": state})]
    assert [(r.status, r.json()["duplicate"]) for r in replies] == [(202, False)] * 2
    server.stop()
    assert legacy_fingerprint(data / "gex_data.db", tmp_path) == before
    assert stored(server.data_dir) == expected(("gex_zero", classic), ("state_gex_zero", state))


DAY = dt.date(2025, 10, 21)


def write_file(folder, name, seed):
    snaps = list(snapshots(30, 4, "SPX", DAY, seed=seed))
    (folder / name).write_text(json.dumps(snaps))
    return snaps


def test_state_and_classic_history_files_of_one_day_are_imported_apart_and_validate(hist, files):
    classic = write_file(files.folder, f"{DAY}_SPX_classic_gex_zero.json", seed=1)
    state = write_file(files.folder, f"{DAY}_SPX_state_gex_zero.json", seed=2)
    # the endpoint sent beside a state file names no package: it is the state package's, as the file says
    state_one = write_file(files.folder, f"{DAY}_SPX_state_gex_one.json", seed=3)
    server = hist()
    jobs = [server.post("/gex_history_url", body).json() for body in (
        {"url": f"{files.url}/files/{DAY}_SPX_classic_gex_zero.json"},
        {"url": f"{files.url}/files/{DAY}_SPX_state_gex_zero.json"},
        {"url": f"{files.url}/files/{DAY}_SPX_state_gex_one.json", "ticker": "SPX", "endpoint": "gex_one"})]
    assert [job["endpoint"] for job in jobs] == ["gex_zero", "state_gex_zero", "state_gex_one"]
    done = [wait_job(server, job["id"]) for job in jobs]
    assert [(j["status"], j["snapshots_imported"], j["rows_imported"]) for j in done] == [("completed", 30, 120)] * 3
    server.stop()
    assert stored(server.data_dir) == expected(*[(e, s, f"history:{job['id']}") for e, snaps, job in (
        ("gex_zero", classic, jobs[0]), ("state_gex_zero", state, jobs[1]), ("state_gex_one", state_one, jobs[2]))
        for s in snaps])
    staged = sorted(p.name for p in (server.data_dir / "source" / "gexbot").glob("*.json"))
    assert staged == ["SPX_gex_zero_history.json", "SPX_state_gex_one_history.json", "SPX_state_gex_zero_history.json"]
    lake = sorted(p.name for p in (server.data_dir / "parquet" / "gexbot" / "SPX").iterdir())
    assert lake == ["gex_zero", "state_gex_one", "state_gex_zero"]

    # every snapshot compared with its staged file and the lake, each under its own endpoint
    code, checks = validate(server.data_dir)
    assert code == 0, checks
    for name in ("crosscheck.spot_staged_json", "crosscheck.spot_parquet", "crosscheck.parquet_counts"):
        assert (checks[name]["status"], checks[name]["count"]) == ("passed", 0), checks[name]

    # one state value off: found under the state endpoint, named as clients name it, and only there
    first = state[0]["timestamp"] * 1000
    plant(server.data_dir, "UPDATE gex_snapshots SET spot_price = spot_price + 1 "
                           f"WHERE endpoint = 'state_gex_zero' AND timestamp = {first}")
    code, checks = validate(server.data_dir, "--endpoint", "state/zero")
    found = [(e["endpoint"], e["timestamp"], e["field"]) for e in checks["crosscheck.spot_staged_json"]["examples"]]
    assert (code, found) == (1, [("state_gex_zero", first, "spot_price")])
    lake_found = [(e["kind"], e["endpoint"], e["timestamp"], e["field"])
                  for e in checks["crosscheck.parquet_rows"]["examples"]]
    assert lake_found == [("snapshots", "state_gex_zero", first, "spot_price")]  # the lake kept the value stored
    assert validate(server.data_dir, "--endpoint", "classic/zero,state/one")[0] == 0


def validate(data_dir, *args):
    """(exit code, {check name: result}) of `python -m gexsrv validate`, every snapshot in the sample."""
    run = run_gexsrv(["validate", "--data-dir", str(data_dir), "--json", "--sample", "1000", *args], cwd=REPO,
                     timeout=120)
    return run.returncode, {c["name"]: c for c in json.loads(run.stdout)["checks"]}


def test_the_import_command_keeps_a_state_file_apart_even_given_a_classic_name(tmp_path):
    classic = write_file(tmp_path, f"{DAY}_SPX_classic_gex_zero.json", seed=1)
    state = write_file(tmp_path, f"{DAY}_SPX_state_gex_zero.json", seed=2)
    data = tmp_path / "data"
    for name in (f"{DAY}_SPX_classic_gex_zero.json", f"{DAY}_SPX_state_gex_zero.json"):
        run = run_gexsrv(["import", str(tmp_path / name), "--endpoint", "gex_zero", "--data-dir", str(data),
                          "--no-progress"], cwd=REPO, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
    assert stored(data) == expected(*[("gex_zero", s, "history:1") for s in classic],
                                            *[("state_gex_zero", s, "history:2") for s in state])
