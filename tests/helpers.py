"""Test support: a real gexsrv process on an ephemeral port over a temporary data dir, and a tiny HTTP client."""

import contextlib
import datetime
import gzip
import http.client
import io
import itertools
import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow.parquet

from forkserver import popen_gexsrv

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
# The fixture builders (make_legacy_db, make_history_file) live in bench/, whose scripts use them too. bench/ holds
# scripts, not a package, so it goes on the path; conftest.py imports this module before any test module.
sys.path.append(str(BENCH))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
LISTENING = re.compile(r"listening on (http://[\d.]+:\d+)")
TS = 1777492800  # 2026-04-29 20:00:00 UTC = 16:00 in New York (EDT): the snapshots' usual time
NEW_YORK = ("--naive-time-zone", "America/New_York")  # the zone of the original's naive local times
TOKEN = "s3cret-token"  # an --auth-token
FRAME = [None, None, "news", "new_msg", {"title": "hello"}]  # a /uw frame
HISTORY_DAY = "2025-10-21"
HISTORY_OPEN = 1761053400  # 2025-10-21 13:30 UTC: HISTORY_DAY's open, 9:30 in New York
HISTORY_NAME = f"{HISTORY_DAY}_SPX_classic_gex_zero.json"
HISTORY_SNAPS, HISTORY_STRIKES = 200, 20


class Server:
    """`python -m gexsrv` as a subprocess (forked by tests/forkserver.py); its log goes to a file under the data
    dir's parent."""

    def __init__(self, data_dir, *flags, env=None, cwd=None, rlimits=None):
        self.data_dir = Path(data_dir)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-server.log"
        self.flags = ["--port", "0", "--data-dir", str(data_dir), *flags]
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.cwd = cwd or REPO
        self.rlimits = rlimits  # set in the child before gexsrv starts (e.g. a lower open-file limit)
        self.proc = None
        self.url = None

    def start(self, timeout=20):
        self.log = open(self.log_path, "a")
        offset = self.log.tell()  # a restart appends to the same log: read only what this start wrote
        self.proc = popen_gexsrv(self.flags, self.cwd, self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                 rlimits=self.rlimits)
        self.url = eventually(lambda: self._listening(offset), f"gexsrv listening (log {self.log_path})", timeout)
        return self

    def _listening(self, offset):
        """The URL once this start logged it; an exit before that fails at once, with the log."""
        found = LISTENING.search(self.log_path.read_text()[offset:])
        if found:
            return found.group(1)
        if self.proc.poll() is not None:
            raise RuntimeError(f"gexsrv exited with {self.proc.returncode}:\n{self.log_path.read_text()}")
        return None

    def stop(self, sig=signal.SIGTERM):
        """Signal the server; its exit code once every process of its tree ended (with --processes 2 the engine
        too, whose end frees the database's lock). SIGKILL is a crash of the server: its whole tree is killed, as
        one process is; the front alone (the engine would go on to ingest what is durable) is proc.kill()."""
        if self.proc and self.proc.poll() is None:
            others = self._kill_tree() if sig == signal.SIGKILL else self._signal(sig)
            self.proc.wait(timeout=20)
            wait_ended(others, timeout=20)
        self.log.close()
        return self.proc.returncode

    def _signal(self, sig):
        others = descendants(self.proc.pid)
        self.proc.send_signal(sig)
        return others

    def _kill_tree(self):
        """SIGKILL the front and every descendant, each stopped first: none forks, or ingests, meanwhile."""
        self.proc.send_signal(signal.SIGSTOP)
        others = descendants(self.proc.pid, signal.SIGSTOP)
        for pidfd in others:
            send(pidfd, signal.SIGKILL)
        self.proc.send_signal(signal.SIGKILL)
        return others

    def request(self, method, path, body=None, headers=None):
        return request(method, self.url + path, body, headers)

    def post(self, path, payload, headers=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        return self.request("POST", path, body, {"Content-Type": "application/json", **(headers or {})})

    def get(self, path):
        return self.request("GET", path)

    def db(self):
        """A read-only view of the database; the server must be stopped (DuckDB locks the file)."""
        return duckdb.connect(str(self.data_dir / "gex_data.db"), read_only=True)


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


def request(method, url, body=None, headers=None):
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        chunked = body is not None and not isinstance(body, bytes)
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers or {},
                     encode_chunked=chunked)
        resp = conn.getresponse()
        return Reply(resp.status, dict(resp.getheaders()), resp.read())
    finally:
        conn.close()


def snapshot(ticker="SPX", timestamp=TS, n_strikes=5, spot=7138.55, **extra):
    """A gexbot snapshot (CONTRACT section 1) whose sums match its strikes."""
    strikes = [[spot - 10 + 5 * i, 10.0 * i - 20, 4.0 * i - 8, [1.0 * i, 2.0, 3.0, 4.0, 5.0]] for i in range(n_strikes)]
    body = {
        "timestamp": timestamp, "ticker": ticker, "min_dte": 0, "sec_min_dte": 1, "spot": spot,
        "zero_gamma": spot - 20, "major_pos_vol": strikes[-1][0], "major_pos_oi": strikes[-1][0],
        "major_neg_vol": strikes[0][0], "major_neg_oi": strikes[0][0], "strikes": strikes,
        "sum_gex_vol": sum(s[1] for s in strikes), "sum_gex_oi": sum(s[2] for s in strikes),
        "delta_risk_reversal": 0.118, "max_priors": [[strikes[-1][0], 1000.0 + i] for i in range(6)],
    }
    body.update(extra)
    return body


def majors(ticker, timestamp, spot):
    """A majors payload as the original's clients send it."""
    return {"timestamp": timestamp, "ticker": ticker, "spot": spot, "zero_gamma": spot - 30, "mpos_vol": spot + 10,
            "mpos_oi": spot + 60, "mneg_vol": spot - 40, "mneg_oi": spot - 90, "net_gex_vol": 1000.5,
            "net_gex_oi": -20.25}


def envelope(payload, received_at, **fields):
    """The original's envelope around a payload; received_at in epoch seconds."""
    return {"ticker": payload["ticker"], "received_at": received_at, **fields, "data": payload}


def phoenix(topic, payload, event="new_msg"):
    """A Phoenix channel frame, as /uw takes them: [join ref, ref, topic, event, payload]."""
    return [None, None, topic, event, payload]


def poller_snapshot(ticker="SPX"):
    """The original's poller posted this to its own /uw: no strikes, `net_gex_*` and `major_*`, naive local ISO."""
    return {"topic": "gex", "ticker": ticker, "endpoint": "gex_zero", "kind": "snapshot",
            "received_at": "2026-04-29T16:00:01.500000",
            "payload": {"ticker": ticker, "spot": 7138.55, "zero_gamma": 7112.95, "net_gex_oi": 51521.105,
                        "net_gex_vol": 1712585.519, "major_pos_oi": 7200, "major_neg_oi": 6900,
                        "major_pos_vol": 7135, "major_neg_vol": 7100, "timestamp": "2026-04-29T16:00:00"}}


def poller_maxchange(ticker="SPX"):
    return {"topic": "gex", "ticker": ticker, "endpoint": "gex_maxchange", "kind": "maxchange",
            "received_at": "2026-04-29T16:00:01",
            "payload": {"ticker": ticker, "timestamp": "2026-04-29T16:00:00", "current": [7140, 170979.742],
                        "one": [7135, 1145886.722], "five": [7135, 997473.336], "ten": [7135, 1106210.715],
                        "fifteen": [7135, 1128504.809], "thirty": [7135, 1131150.488]}}


def write_history(path, n=HISTORY_SNAPS, seed=1, ticker="SPX", compress=False):
    """A history file of one snapshot a second from HISTORY_DAY's open; json.dumps' spacing, which test_history's
    spoilers match."""
    from make_history_file import snapshots  # from bench/, which the path holds only once the lines above ran
    day = datetime.date.fromisoformat(HISTORY_DAY)
    data = json.dumps(list(snapshots(n, HISTORY_STRIKES, ticker, day, seed=seed))).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def legacy_fingerprint(path, scratch):
    """make_legacy_db's fingerprint of the legacy rows only: taken on a scratch copy without gexsrv's rows."""
    import make_legacy_db  # from bench/, which the path holds only once the lines above ran
    copy = scratch / "fingerprint-copy.db"
    shutil.copyfile(path, copy)
    with duckdb.connect(str(copy)) as db:
        db.execute("DELETE FROM gex_snapshots WHERE endpoint IS NOT NULL")
        db.execute("DELETE FROM gex_strikes WHERE endpoint IS NOT NULL")
    return make_legacy_db.fingerprint(copy)


@contextlib.contextmanager
def database_held(path):
    """Another process holding a DuckDB file's lock (a notebook, a duckdb shell) while the block runs: the server
    journals, and ingests nothing."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, time\n"
                               f"con = duckdb.connect({str(path)!r})\n"
                               "print('locked', flush=True)\ntime.sleep(300)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()


def eventually(check, what, timeout=30, step=0.05):
    """check()'s first truthy value; fails the test, saying what did not happen and the last value seen, when none
    comes within timeout seconds (generous: a loaded machine is slow, and a pass returns as soon as it can)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {found!r})")
        time.sleep(step)


def lake_health(server, done, timeout=30):
    """/health's lake section once done(it) holds."""
    def lake_if_done():
        health = server.get("/health").json()["lake"]
        return health if done(health) else None

    return eventually(lake_if_done, "/health's lake section as waited for", timeout)


README = (REPO / "README.md").read_text()


def quick_start_body():
    """The body of the README's quick start POST /gex, as written there."""
    found = re.search(r"curl -s -XPOST localhost:8877/gex -d '(.+?)'\n", README, re.S)
    return found.group(1).encode()


def post_fillers_until(server, done, first_ts, timeout=30, **fields):
    """Post a QQQ filler snapshot now and then (a journal segment is archived once a newer one exists) until the
    archive holds files and done() is true; fails the test after timeout seconds."""
    fillers = itertools.count(first_ts + 1)

    def archived():
        assert server.post("/gex", snapshot(ticker="QQQ", timestamp=next(fillers), **fields)).status == 202
        return server.get("/health").json()["archive"]["files"] and done()

    eventually(archived, "the fillers' segments archived", timeout, step=0.4)


def wait_job(server, job_id, timeout=30, done=lambda job: job["status"] in ("completed", "skipped", "failed")):
    """The history job once done(job): by default once it finished (completed, skipped or failed)."""
    def job_if_done():
        job = server.get(f"/gex_history_url/{job_id}").json()
        return job if done(job) else None

    return eventually(job_if_done, f"history job {job_id} done", timeout)


def latest(server, query=""):
    reply = server.get(f"/api/latest{query}")
    assert reply.status == 200, reply.body
    return reply.json()


def wait_loaded(server, timeout=30):
    """The health report once the latest view has been loaded from the database."""
    def loaded():
        health = server.get("/health").json()
        return health if health["latest"]["load"] not in ("pending", "loading") else None

    return eventually(loaded, "the latest view loaded from the database", timeout)


WINDOW = (1280, 1500)  # chromium()'s window, in CSS pixels
# test_origins' page whose name resolves to the server (DNS rebinding); a name no other page visits.
REBOUND = ("rebound.test", "--host-resolver-rules=MAP rebound.test 127.0.0.1")


def chromium(*arguments, page_load_timeout=10):
    """Headless Chromium driven by selenium (Debian's chromium and chromium-driver), its console logged."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size={},{}".format(*WINDOW), "--hide-scrollbars", "--no-first-run", *arguments):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(page_load_timeout)
    return driver


def as_started(driver):
    """A Chromium that ran other tests as chromium() starts one: what its pages stored forgotten (each visited
    origin's storage, cookies, the cache), one new blank tab in place of its tabs (a new sessionStorage, no emulated
    device), its window at WINDOW, its console log read."""
    origins = set()
    for handle in driver.window_handles:
        driver.switch_to.window(handle)
        entries = driver.execute_cdp_cmd("Page.getNavigationHistory", {})["entries"]
        origins |= {origin_of(entry["url"]) for entry in entries}
    for origin in origins - {None}:
        driver.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})
    used = driver.window_handles
    driver.switch_to.new_window("tab")
    fresh = driver.current_window_handle
    for handle in used:
        driver.switch_to.window(handle)
        driver.close()
    driver.switch_to.window(fresh)
    driver.set_window_size(*WINDOW)
    driver.get_log("browser")
    return driver


def origin_of(url):
    """An http(s) URL's origin; None for about:blank, data: and the like, which store nothing to forget."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") else None


def stored_rows(server, query):
    """The rows of a query of the running server's database (GET /api/sql as Parquet), as tuples of the values a
    DuckDB cursor's fetchall() gives (a UUID as its text): for a server shared by a module's cases, whose database
    a case cannot open while it runs. Fails on an error or a reply cut at the server's row limit."""
    reply = server.get("/api/sql?" + urllib.parse.urlencode({"q": query, "_format": "parquet"}))
    assert reply.status == 200, reply.body
    assert reply.headers["X-Truncated"] == "false", f"more rows than the server's sql_max_rows: {query}"
    table = pyarrow.parquet.read_table(io.BytesIO(reply.body))
    return list(zip(*(column.to_pylist() for column in table.columns))) if table.num_columns else []


def stored_keys(db, table="gex_snapshots"):
    """{(ticker, endpoint, timestamp): rows} of a table."""
    rows = db.execute(f"SELECT ticker, endpoint, timestamp, count(*) FROM {table} GROUP BY ALL").fetchall()
    return {(ticker, endpoint, ts): n for ticker, endpoint, ts, n in rows}


def descendants(pid, sig=None):
    """Pidfds of a process' descendants, parents first (a pidfd: no later process that reuses a pid is waited for
    or signalled). With sig, each one is signalled before its children are listed: SIGSTOP, so that none forks
    a child past the listing."""
    import procstat  # from bench/, which the path holds only once the lines above ran
    found, level = [], procstat.children(pid)
    while level:
        opened = [pidfd for pidfd in map(pidfd_of, level) if pidfd is not None]
        for pidfd in opened if sig else ():
            send(pidfd, sig)
        found += opened
        level = [child for parent in level for child in procstat.children(parent)]
    return found


def pidfd_of(pid):
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:  # it ended since it was listed
        return None


def send(pidfd, sig):
    try:
        signal.pidfd_send_signal(pidfd, sig)
    except ProcessLookupError:  # it exited meanwhile
        pass


def wait_ended(pidfds, timeout):
    """Wait until every process ended (a pidfd reads ready once its process exited), then close the pidfds."""
    try:
        deadline = time.monotonic() + timeout
        for pidfd in pidfds:
            ready, _, _ = select.select([pidfd], [], [], max(deadline - time.monotonic(), 0))
            assert ready, f"a process of the server's tree still runs {timeout} s after the server stopped"
    finally:
        for pidfd in pidfds:
            os.close(pidfd)


def database_pid(server):
    """The pid of the process that owns the database and runs the history imports: the engine's with --processes 2
    (/health's processes section), the server's otherwise."""
    processes = server.get("/health").json().get("processes")
    return processes["engine"]["pid"] if processes else server.proc.pid


def process_state(pid):
    """The state letter of a process in /proc (R, S, Z ...), or "gone"."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # reaped before the open, or between the open and the read
        return "gone"


class Poster:
    """Threads posting distinct snapshots of `strikes` rows, one ticker each (a live feed's timestamp order), to
    `url` (None while no server is up: they wait), every `ingested_every`-th with ?ack=ingested. They remember every
    key sent, every key a 2xx acknowledged, each ack=ingested reply's `duplicate`, the (status, ack, outcome) of
    every other reply, and how many requests lost their connection before a reply (a killed server: no ack)."""

    def __init__(self, tickers, strikes, url=None, ingested_every=0):
        self.url = url
        self.strikes = strikes
        self.ingested_every = ingested_every
        self.sent, self.acked = set(), set()
        self.ingested_duplicates = Counter()
        self.refused = Counter()
        self.cut = 0
        self.lock = threading.Lock()
        self.numbers = itertools.count()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.post_until_stopped, args=(ticker,), daemon=True)
                        for ticker in tickers]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=35)

    def post_until_stopped(self, ticker):
        while not self.stopping.is_set():
            url = self.url
            if url is None:
                time.sleep(0.005)
                continue
            with self.lock:
                i = next(self.numbers)
                self.sent.add((ticker, "gex_zero", (TS + i) * 1000))
            ack = "ingested" if self.ingested_every and i % self.ingested_every == 0 else "journal"
            body = json.dumps(snapshot(ticker, TS + i, n_strikes=self.strikes)).encode()
            try:
                reply = request("POST", f"{url}/gex?ack={ack}", body, {"Content-Type": "application/json"})
            except (OSError, http.client.HTTPException):
                with self.lock:
                    self.cut += 1
                time.sleep(0.005)
                continue
            self.note(reply, ack)

    def note(self, reply, ack):
        with self.lock:
            if 200 <= reply.status < 300:
                answer = reply.json()
                self.acked.add((answer["ticker"], answer["endpoint"], answer["timestamp"]))
                if ack == "ingested":
                    self.ingested_duplicates[answer["duplicate"]] += 1
            else:
                self.refused[(reply.status, ack, reply.json().get("outcome"))] += 1


def crash_moments(loop, default_seed):
    """The random generator of a crash loop's moments: seeded from CRASH_SEED (random: a new seed), else the loop's
    own, the same on every run; the seed is printed so that a failing run can be replayed. (seed, generator)."""
    chosen = os.environ.get("CRASH_SEED", str(default_seed))
    seed = random.randrange(2**32) if chosen == "random" else int(chosen)
    print(f"{loop} seed {seed} (CRASH_SEED={seed} chooses the same moments, CRASH_SEED=random new ones)")
    return seed, random.Random(seed)


def history_folder(folder, snapshots, ticker):
    """folder/history.json, a generator file of `snapshots` 20-strike snapshots of ticker, for a FileServer."""
    import make_history_file  # from bench/, which the path holds only once the lines above ran
    folder.mkdir()
    make_history_file.write(folder / "history.json", make_history_file.snapshots(snapshots, n_strikes=20,
                                                                                 ticker=ticker))
    return folder


def queue_history(server, origin, ticker):
    """POST /gex_history_url of the FileServer origin's history.json (history_folder)."""
    return server.post("/gex_history_url", {"url": f"{origin.url}/files/history.json", "ticker": ticker,
                                            "endpoint": "gex_zero"})


def all_ingested(server, timeout=30):
    """Wait until ingest took every record journaled so far (/health: no journal bytes waiting): a case on a shared
    server that posted with ?ack=journal reads what landed only then, and so sees all of it."""
    eventually(lambda: server.get("/health").json()["journal"]["bytes_waiting"] == 0,
               "every journaled record ingested", timeout)


def sql_list(values):
    """SQL text of string values for an IN (...) list: a case's webhook ids, its tickers."""
    return ", ".join(f"'{value}'" for value in values)
