"""Backfill from the gexbot history API, by command (`python -m gexsrv backfill`) and by POST /gex_history_url,
against a fake of gexbot started here on 127.0.0.1: its API resolves each day to a pre-signed URL on a file host,
and a mirror host stands in for hist.gexbot.com behind hist.gex.bot."""

import datetime as dt
import gzip
import json
import os
import subprocess

import duckdb
import pytest
from filesrv import GEXBOT_KEY as KEY, FakeGexbot
from forkserver import popen_gexsrv, run_gexsrv
from helpers import REPO, eventually
from make_history_file import snapshots

SNAPS, STRIKES = 20, 3
CLOSED = dt.date(2025, 1, 9)  # NYSE closed (a national day of mourning); the calendar does not know it


@pytest.fixture
def gexbot(tmp_path):
    folder = tmp_path / "hist"
    folder.mkdir()
    with FakeGexbot(folder) as fake:
        yield fake


def add_files(fake, tickers, categories, days, gzipped=(), lines=(), package="classic", seed=0):
    """A history file per (ticker, category, day), JSON unless named in gzipped or lines; the snapshots of each.
    Another seed gives the same timestamps with other values."""
    made = {}
    for i, (ticker, category, day) in enumerate((t, c, d) for d in days for t in tickers for c in categories):
        snaps = list(snapshots(SNAPS, STRIKES, ticker, day, seed=seed + i))
        key = (ticker, category, day)
        data = (b"\n".join(json.dumps(s).encode() for s in snaps) if key in lines else json.dumps(snaps).encode())
        name = f"{day}_{ticker}_{package}_{category}.json" + (".gz" if key in gzipped else "")
        (fake.folder / name).write_bytes(gzip.compress(data) if key in gzipped else data)
        fake.files[(ticker, package, category, day.isoformat())] = name
        made[key] = snaps
    return made


def backfill(fake, data_dir, *args, key=KEY, rate=50):
    """The command, to its end: (exit code, its JSON summary or None, stdout, stderr)."""
    run = run_gexsrv(["backfill", *args, "--json", *fake.flags(data_dir, rate)], cwd=REPO,
                     env={**os.environ, "GEXBOT_API_KEY": key}, timeout=120)
    summary = json.loads(run.stdout) if run.stdout.startswith("{") else None
    return run.returncode, summary, run.stdout, run.stderr


def stored(data_dir):
    """Snapshots and strike rows as (ticker, endpoint, day, timestamp ms, values...), and each day's job id."""
    with duckdb.connect(str(data_dir / "gex_data.db"), read_only=True) as db:
        snaps = db.execute("SELECT ticker, endpoint, timestamp, spot_price, zero_gamma, source FROM gex_snapshots "
                           "ORDER BY ALL").fetchall()
        strikes = db.execute("SELECT ticker, endpoint, timestamp, strike, gamma, oi_gamma FROM gex_strikes "
                             "ORDER BY ALL").fetchall()
        jobs = dict(((t, c, d), job) for t, c, d, job in db.execute(
            "SELECT ticker, category, day, job_id FROM gex_history_days WHERE status = 'queued'").fetchall())
    return snaps, strikes, jobs


def expected(made, jobs):
    """What the files hold, as stored() reads it: each day's snapshots under the source of its day's job."""
    snaps, strikes = [], []
    for (ticker, category, day), made_snaps in made.items():
        for s in made_snaps:
            ms = s["timestamp"] * 1000
            snaps.append((ticker, category, ms, s["spot"], s["zero_gamma"], f"history:{jobs[(ticker, category, day)]}"))
            strikes += [(ticker, category, ms, row[0], row[1], row[2]) for row in s["strikes"]]
    return sorted(snaps), sorted(strikes)


def trading(*days):
    return [dt.date.fromisoformat(day) for day in days]


def test_the_command_imports_every_trading_day_and_a_second_run_imports_nothing(gexbot, tmp_path):
    days = trading("2025-01-08", "2025-01-10", "2025-01-13")  # 01-09 closed, 01-11/12 a weekend
    made = add_files(gexbot, ["SPX", "NDX"], ["gex_zero", "gex_one"], days,
                     gzipped={("SPX", "gex_zero", days[0])}, lines={("NDX", "gex_one", days[1])})
    gexbot.busy_once.add(("SPX", "classic", "gex_one", "2025-01-10"))
    outage = gexbot.files[("NDX", "classic", "gex_zero", "2025-01-13")]
    gexbot.outage.add(outage)
    data = tmp_path / "data"
    run = run_gexsrv(["backfill", "--tickers", "SPX,NDX", "--categories", "gex_zero,gex_one", "--from", "2025-01-08",
                      "--to", "2025-01-13", *gexbot.flags(data)], cwd=REPO, env={**os.environ, "GEXBOT_API_KEY": KEY},
                     timeout=120)
    assert run.returncode == 0, run.stderr
    table = [line.split() for line in run.stdout.splitlines()]
    assert table[0] == ["ticker", "category", "days", "imported", "already", "no", "data", "failed", "snapshots",
                        "strike", "rows"]
    feed = ["4", "3", "0", "1", "0", f"{3 * SNAPS}", f"{3 * SNAPS * STRIKES}"]
    assert table[1:5] == [[t, c, *feed] for t in ("NDX", "SPX") for c in ("gex_one", "gex_zero")]
    assert table[5] == ["all", "16", "12", "0", "4", "0", f"{12 * SNAPS}", f"{12 * SNAPS * STRIKES}"]
    last_bar = run.stderr.splitlines()[-1]  # text mode reads tqdm's \r as a line end
    assert "16/16" in last_bar and f"resolved 16, downloaded 12, snapshots {12 * SNAPS}" in last_bar
    assert "sig=" not in run.stdout + run.stderr  # pre-signed query strings are credentials

    # every trading day asked once (the 429 twice), the weekend never; the file host's outage served by the mirror
    asked = gexbot.asked()
    assert sorted(set(asked)) == sorted((t, "classic", c, d.isoformat()) for d in trading(
        "2025-01-08", "2025-01-09", "2025-01-10", "2025-01-13") for t in ("SPX", "NDX") for c in ("gex_zero", "gex_one"))
    assert len(asked) == 17 and asked.count(("SPX", "classic", "gex_one", "2025-01-10")) == 2
    assert [(role, code) for role, name, code in gexbot.file_log if name == outage] == [("host", 503), ("mirror", 200)]
    assert sorted(name for role, name, code in gexbot.file_log if code == 200) == sorted(gexbot.files.values())

    snaps, strikes, jobs = stored(data)
    assert (snaps, strikes) == expected(made, jobs)
    assert len(set(jobs.values())) == 12
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        assert db.execute("SELECT ticker, category, status FROM gex_history_days WHERE day = ? ORDER BY ALL",
                          [CLOSED]).fetchall() == [("NDX", "gex_one", "no data"), ("NDX", "gex_zero", "no data"),
                                                   ("SPX", "gex_one", "no data"), ("SPX", "gex_zero", "no data")]
        assert db.execute("SELECT count(*) FROM read_parquet(?)",
                          [f"{data}/parquet/gexbot/**/*.strikes.parquet"]).fetchone()[0] == 12 * SNAPS * STRIKES

    code, summary, _out, _err = backfill(gexbot, data, "--tickers", "SPX,NDX", "--categories", "gex_zero,gex_one",
                                         "--from", "2025-01-08", "--to", "2025-01-13")
    assert code == 0
    assert {k: summary[k] for k in ("days", "imported", "already", "no data", "failed", "snapshots")} == {
        "days": 16, "imported": 0, "already": 12, "no data": 4, "failed": 0, "snapshots": 0}
    assert sorted(gexbot.asked(17)) == sorted((t, "classic", c, "2025-01-09") for t in ("SPX", "NDX")
                                              for c in ("gex_zero", "gex_one"))  # only the days without data
    assert stored(data) == (snaps, strikes, jobs)


@pytest.mark.slow
def test_an_interrupted_backfill_resumes_where_it_stopped(gexbot, tmp_path):
    days = trading("2025-01-13", "2025-01-14", "2025-01-15", "2025-01-16")
    made = add_files(gexbot, ["SPX"], ["gex_zero"], days)
    stuck = gexbot.files[("SPX", "classic", "gex_zero", "2025-01-15")]
    gexbot.hang.add(stuck)
    data = tmp_path / "data"
    args = ["--tickers", "SPX", "--from", "2025-01-13", "--to", "2025-01-16"]
    proc = popen_gexsrv(["backfill", *args, *gexbot.flags(data)], REPO, {**os.environ, "GEXBOT_API_KEY": KEY},
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert gexbot.hanging.wait(60), "the third day's download never started"
    finally:
        proc.kill()  # mid-download, as a crash or a closed laptop would stop it
        proc.wait()
    gexbot.hang.clear()
    gexbot.released.set()
    gexbot.expire()  # the URLs the interrupted run had are stale now
    first_run = len(gexbot.asked())

    code, summary, _out, err = backfill(gexbot, data, *args)
    assert code == 0, err
    assert (summary["days"], summary["already"], summary["imported"], summary["failed"]) == (4, 2, 2, 0)
    again = gexbot.asked(first_run)
    assert ("SPX", "classic", "gex_zero", "2025-01-15") in again
    assert not {d for *_feed, d in again} & {"2025-01-13", "2025-01-14"}  # done days are not asked again
    served = [name for role, name, code in gexbot.file_log if code == 200]
    assert sorted(served) == sorted(gexbot.files.values())  # each file downloaded once, in all
    snaps, strikes, jobs = stored(data)
    assert (snaps, strikes) == expected(made, jobs)
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        stale = db.execute("SELECT status, last_error FROM gex_history_queue WHERE id NOT IN (SELECT job_id FROM "
                           "gex_history_days WHERE job_id IS NOT NULL) ORDER BY id").fetchall()
    assert stale and all(status == "failed" and "HTTP 403" in error for status, error in stale)


def test_the_rate_limit_spaces_api_requests_and_days_without_data_are_no_failure(gexbot, tmp_path):
    rate = 20
    code, summary, _out, err = backfill(gexbot, tmp_path / "data", "--tickers", "QQQ", "--from", "2025-01-06",
                                        "--to", "2025-01-17", rate=rate)  # ten trading days, no file for any
    assert code == 0, err
    assert (summary["days"], summary["no data"], summary["failed"]) == (10, 10, 0)
    times = [entry[0] for entry in gexbot.api_log]
    assert len(times) == 10
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    # Arrivals, not the limiter's starts: one request delayed on a loaded machine shortens the gap after it, so
    # the bounds are on the typical gap and the whole run; the shortest still rules out two sent at once.
    assert gaps[len(gaps) // 2] > 0.8 / rate and times[-1] - times[0] > 0.7 * 9 / rate and gaps[0] > 0.2 / rate, gaps


def test_a_refused_key_stops_the_backfill_with_a_clear_error(gexbot, tmp_path):
    add_files(gexbot, ["SPX"], ["gex_zero"], trading("2025-01-13", "2025-01-14"))
    code, summary, out, err = backfill(gexbot, tmp_path / "data", "--tickers", "SPX", "--from", "2025-01-13",
                                       "--to", "2025-01-14", key="wrong")
    assert code == 2, out + err
    assert summary["halted"] == "the gexbot API refused the key (HTTP 401); check GEXBOT_API_KEY"
    assert (summary["failed"], summary["not_asked"]) == (1, 1)
    assert (gexbot.refused, gexbot.api_log) == (1, [])  # no more requests once the key was refused
    assert stored(tmp_path / "data")[0] == []


def test_the_command_refuses_a_range_without_trading_days(gexbot, tmp_path):
    code, summary, _out, err = backfill(gexbot, tmp_path / "data", "--tickers", "SPX", "--from", "2025-01-18",
                                        "--to", "2025-01-20")  # a weekend, then Martin Luther King Jr. Day
    assert (code, summary) == (2, None)
    assert "--from: no trading day from 2025-01-18 to 2025-01-20" in err
    assert gexbot.api_log == [] and not (tmp_path / "data").exists()


def wait_days(server, count, timeout=60):
    """The backfill's days once there are `count` of them and each one finished."""
    def finished():
        listed = server.get("/gex_history_url/days").json()["days"]
        done = len(listed) == count and all(d["status"] in ("completed", "no data", "failed") for d in listed)
        return listed if done else None

    return eventually(finished, f"the backfill's {count} days finished", timeout)


def test_the_endpoint_backfills_a_range_and_a_day_on_a_running_server(gexbot, start_server, tmp_path):
    made = add_files(gexbot, ["SPX"], ["gex_zero"], trading("2025-01-16", "2025-01-17", "2025-01-21"),
                     gzipped={("SPX", "gex_zero", dt.date(2025, 1, 17))})
    made.update(add_files(gexbot, ["NDX"], ["gex_zero"], trading("2025-01-17"),
                          lines={("NDX", "gex_zero", dt.date(2025, 1, 17))}))
    data = tmp_path / "data"
    server = start_server(data, *gexbot.flags(data)[2:], "--poll-interval", "3600", env={"GEXBOT_API_KEY": KEY})
    body = {"ticker": "SPX", "package": "classic", "category": "gex_zero", "from": "2025-01-16", "to": "2025-01-21"}
    reply = server.post("/gex_history_url", body)
    assert (reply.status, reply.json()) == (202, {"status": "queued", "via": "local", "backfill": {
        "ticker": "SPX", "package": "classic", "category": "gex_zero", "from": "2025-01-16", "to": "2025-01-21",
        "days": 3, "already_imported": 0}})  # 01-18/19 a weekend, 01-20 Martin Luther King Jr. Day
    one = server.post("/gex_history_url", {"ticker": "ndx", "package": "classic", "category": "zero",
                                           "date": "2025-01-17"})
    assert (one.status, one.json()["backfill"]["days"]) == (202, 1)
    listed = wait_days(server, 4)
    assert [(d["ticker"], d["date"], d["status"], d["snapshots_imported"]) for d in listed] == [
        ("SPX", "2025-01-16", "completed", SNAPS), ("NDX", "2025-01-17", "completed", SNAPS),
        ("SPX", "2025-01-17", "completed", SNAPS), ("SPX", "2025-01-21", "completed", SNAPS)]
    assert "sig=" not in server.get("/gex_history_url/days").body.decode()

    locked = run_gexsrv(["backfill", "--tickers", "SPX", "--from", "2025-01-16", "--to", "2025-01-16",
                         *gexbot.flags(data)], cwd=REPO, env={**os.environ, "GEXBOT_API_KEY": KEY}, timeout=60)
    assert locked.returncode == 2 and "Is a gexsrv server running on this data dir?" in locked.stderr
    assert "or POST the range to its /gex_history_url" in locked.stderr

    again = server.post("/gex_history_url", body)
    assert (again.status, again.json()["status"], again.json()["backfill"]["already_imported"]) == (
        200, "already imported", 3)
    server.stop()
    assert sorted(d for *_feed, d in gexbot.asked()) == ["2025-01-16", "2025-01-17", "2025-01-17", "2025-01-21"]
    snaps, strikes, jobs = stored(data)
    assert (snaps, strikes) == expected(made, jobs)


def test_a_state_backfill_is_stored_apart_from_the_classic_one_of_the_same_day(gexbot, start_server, tmp_path):
    day = trading("2025-01-16")
    made = {"gex_zero": add_files(gexbot, ["SPX"], ["gex_zero"], day),
            "state_gex_zero": add_files(gexbot, ["SPX"], ["gex_zero"], day, package="state", seed=100)}
    data = tmp_path / "data"
    for package in ("classic", "state"):
        code, summary, _out, err = backfill(gexbot, data, "--tickers", "SPX", "--package", package, "--categories",
                                            "gex_zero", "--from", "2025-01-16", "--to", "2025-01-16")
        assert (code, summary["imported"], summary["snapshots"]) == (0, 1, SNAPS), err
    assert sorted(gexbot.asked()) == [("SPX", "classic", "gex_zero", "2025-01-16"),
                                      ("SPX", "state", "gex_zero", "2025-01-16")]
    with duckdb.connect(str(data / "gex_data.db"), read_only=True) as db:
        snaps = db.execute("SELECT endpoint, timestamp, spot_price, zero_gamma FROM gex_snapshots ORDER BY ALL"
                           ).fetchall()
        strikes = db.execute("SELECT endpoint, timestamp, strike, gamma, oi_gamma FROM gex_strikes ORDER BY ALL"
                             ).fetchall()
        jobs = db.execute("SELECT d.package, d.category, q.endpoint FROM gex_history_days d "
                          "JOIN gex_history_queue q ON q.id = d.job_id ORDER BY ALL").fetchall()
    files = [(endpoint, s) for endpoint, by_day in made.items() for day_snaps in by_day.values() for s in day_snaps]
    assert snaps == sorted((e, s["timestamp"] * 1000, s["spot"], s["zero_gamma"]) for e, s in files)
    assert strikes == sorted((e, s["timestamp"] * 1000, *row[:3]) for e, s in files for row in s["strikes"])
    assert jobs == [("classic", "gex_zero", "gex_zero"), ("state", "gex_zero", "state_gex_zero")]
    server = start_server(data)
    for package, endpoint in (("classic", "gex_zero"), ("state", "state_gex_zero")):
        listed = server.get(f"/gex_history_url/days?package={package}").json()["days"]
        assert [(d["package"], d["status"], d["snapshots_imported"]) for d in listed] == [(package, "completed", SNAPS)]
        job = server.get(f"/gex_history_url/{listed[0]['job_id']}").json()
        assert job["endpoint"] == endpoint


BAD_REQUESTS = [
    ({"url": "https://hist.gex.bot/x.json", "date": "2025-01-17"}, 400, "$.url", "not both"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "date": "2025-01-17", "from": "2025-01-16"},
     400, "$.date", "a date, or from (and to), not both"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "to": "2025-01-17"}, 400, "$.from", "give a url"),
    ({"ticker": "SPX"}, 400, "$.url", "give a url, or a date"),
    ({"ticker": "SPX", "package": "orderflow", "category": "gex_zero", "date": "2025-01-17"}, 400, "$.package",
     "package 'orderflow' is not one of classic, state"),
    ({"ticker": "SPX", "package": "classic", "category": "gamma_zero", "date": "2025-01-17"}, 400, "$.category",
     "category 'gamma_zero' is not one of gex_full, gex_one, gex_zero"),
    ({"ticker": "-x", "package": "classic", "category": "gex_zero", "date": "2025-01-17"}, 400, "$.ticker", "ticker"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "from": "2025-01-17", "to": "2025-01-16"},
     400, "$.to", "ends (2025-01-16) before it begins (2025-01-17)"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "date": "2999-01-04"}, 400, "$.date",
     "no file exists for it yet"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "date": "2025-01-20"}, 400, "$.date",
     "no trading day from 2025-01-20 to 2025-01-20"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "from": "2025-01-18", "to": "2025-01-19"},
     400, "$.from", "no trading day from 2025-01-18 to 2025-01-19"),
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "from": "2025-13-01"}, 400, "$.from", "date"),
    # checked last: the server fixture has no API key
    ({"ticker": "SPX", "package": "classic", "category": "gex_zero", "date": "2025-01-17"}, 503, None,
     "set GEXBOT_API_KEY for the server"),
]


def test_backfill_requests_are_checked(shared_server):
    for body, status, field, error in BAD_REQUESTS:
        reply = shared_server.post("/gex_history_url", body)
        assert reply.status == status, (body, reply.body)
        assert reply.json().get("field") == field and error in reply.json()["error"], (body, reply.body)
    assert shared_server.get("/gex_history_url/days").json() == {"days": [], "halted": None}
    bad_filter = shared_server.get("/gex_history_url/days?from=yesterday")
    assert (bad_filter.status, bad_filter.json()["field"]) == (400, "from")


def test_the_importer_takes_json_lines_and_pretty_printed_files(tmp_path):
    """Community downloaders write JSON Lines (gzipped or not, CRLF line ends); a file saved by hand may be
    pretty-printed, its first line no whole object."""
    day = dt.date(2025, 1, 14)
    made = {(ticker, "gex_zero", day): list(snapshots(SNAPS, STRIKES, ticker, day, seed=i))
            for i, ticker in enumerate(["SPX", "NDX", "QQQ"])}
    files = {"SPX": (tmp_path / "a.jsonl.gz", gzip.compress(b"\n".join(
                 json.dumps(s).encode() for s in made[("SPX", "gex_zero", day)]) + b"\n")),
             "NDX": (tmp_path / "b.json", json.dumps({"data": made[("NDX", "gex_zero", day)]}, indent=2).encode()),
             "QQQ": (tmp_path / "c.jsonl", b"\r\n\r\n".join(
                 json.dumps(s).encode() for s in made[("QQQ", "gex_zero", day)]))}
    data = tmp_path / "data"
    for ticker, (path, content) in files.items():
        path.write_bytes(content)
        run = run_gexsrv(["import", str(path), "--ticker", ticker, "--endpoint", "gex_zero", "--data-dir", str(data),
                          "--no-progress"], cwd=REPO, timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
    snaps, strikes, _days = stored(data)
    assert (snaps, strikes) == expected(made, {key: job for job, key in enumerate(made, 1)})
