"""The engine (gexsrv.engine) as its own process, forked by the spawner, ingesting a journal a front writes: every
seq gets one outcome, the engine SIGKILLed at random moments and forked again loses nothing and stores nothing
twice, and what an engine ingested before dying untold is said by the next one's first message; after a SIGKILL
of the front (alone, or with the engine) the engine exits and the next start stores every durable record once."""

import json
import os
import random
import signal
import subprocess
import sys

import duckdb
import pytest
from helpers import REPO, eventually, process_state, stored_keys

PROBE = [sys.executable, str(REPO / "tests" / "engine_probe.py")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
STRIKES, TS = 20, 1777492800  # as engine_probe posts them
ENGINE_SEED = 20261203  # the same kills on every run; ENGINE_SEED=random in the environment for new ones


def probe(data_dir, records, kills, seed, *late):
    done = subprocess.run([*PROBE, str(data_dir), str(records), str(kills), str(seed), *late], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def answered(seen, records, expected):
    """Every seq this run journaled got its ?ack=ingested answer: `expected`, or None (ingested by an engine that
    was killed before it said so)."""
    first, last = seen["seqs"]
    assert last - first + 1 == records
    assert sorted(map(int, seen["answers"])) == list(range(first, last + 1))
    assert {str(a) for a in seen["answers"].values()} <= {str(expected), "None"}
    assert seen["link"]["untold"] == list(seen["answers"].values()).count(None)
    assert seen["link"]["position"]["seq"] == last
    assert seen["exit"] == "exited with code 0"  # Stop: it ingested what was durable and exited on its own


def assert_each_stored_once(data_dir, seen, records):
    answered(seen, records, True)
    keys = [(TS + i) * 1000 for i in range(records)]
    untold = {seq for seq, a in seen["answers"].items() if a is None}
    # the views are fed once per record reported stored, never twice
    assert len(seen["fed"]) == len(set(seen["fed"])) == records - len(untold)
    with duckdb.connect(str(data_dir / "gex_data.db"), read_only=True) as db:
        assert stored_keys(db) == {("SPX", "gex_zero", ts): 1 for ts in keys}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", ts): STRIKES for ts in keys}


def test_the_engine_ingests_what_the_front_journals_and_reports_each_seq(tmp_path):
    seen = probe(tmp_path / "data", 300, 0, 1)
    assert seen["link"]["restarts"] == 0
    assert_each_stored_once(tmp_path / "data", seen, 300)


def test_reads_and_the_engines_status_come_through_the_channel(tmp_path):
    seen = probe(tmp_path / "data", 50, 0, 1)
    newest = seen["read"]["snapshot"]
    assert (newest["timestamp"], newest["endpoint"], len(newest["strikes"])) == ((TS + 49) * 1000, "gex_zero", STRIKES)
    rows, more = seen["read"]["snapshots"]
    assert [row["timestamp"] for row in rows] == [(TS + i) * 1000 for i in range(49, 44, -1)] and more
    assert seen["read"]["quarantined"] == 0
    link = seen["link"]
    assert link["pid"] > 0 and link["cpu_s"] > 0 and link["uptime_s"] > 0
    assert link["storage"]["state"] == "writable"
    assert link["ingest"]["position"]["seq"] == 50


@pytest.mark.slow
def test_engines_sigkilled_at_random_moments_lose_nothing_and_store_nothing_twice(tmp_path):
    seed = {"random": random.randrange(2**32), None: ENGINE_SEED}.get(os.environ.get("ENGINE_SEED"))
    seed = int(os.environ["ENGINE_SEED"]) if seed is None else seed
    print(f"ENGINE_SEED={seed}")
    seen = probe(tmp_path / "data", 1500, 12, seed)
    assert seen["link"]["restarts"] == 12
    assert seen["down"] == ["the engine is not running (was killed by SIGKILL); retry shortly"] * 12
    assert_each_stored_once(tmp_path / "data", seen, 1500)  # a failure names its seed above (pytest -s)


def test_a_journal_written_while_no_engine_ran_is_ingested_by_the_next_one(tmp_path):
    seen = probe(tmp_path / "data", 200, 0, 1, "late")
    assert_each_stored_once(tmp_path / "data", seen, 200)


def test_snapshots_journaled_again_are_reported_as_duplicates(tmp_path):
    assert_each_stored_once(tmp_path / "data", probe(tmp_path / "data", 100, 0, 1), 100)
    again = probe(tmp_path / "data", 100, 0, 1)  # the same 100 snapshots, journaled as seqs 101-200
    assert again["seqs"] == [101, 200]
    answered(again, 100, False)
    assert again["link"]["untold"] == 0
    assert again["fed"] == []  # a duplicate feeds no view


@pytest.mark.parametrize("killed", ["front", "front and engine"])
def test_after_a_sigkill_of_the_front_the_next_start_stores_every_durable_record_once(tmp_path, killed):
    data_dir = tmp_path / "data"
    with subprocess.Popen([*PROBE, str(data_dir), "200", "0", "1", "hang"], env=ENV, stdout=subprocess.PIPE,
                          text=True) as front:
        try:
            said = json.loads(front.stdout.readline())
            if killed == "front and engine":
                os.kill(said["engine_pid"], signal.SIGKILL)
        finally:
            front.kill()
    assert said["durable_seq"] == 200
    # alone, the engine sees its socket close, ingests what is durable and exits, releasing the database
    eventually(lambda: process_state(said["engine_pid"]) in ("gone", "Z"), "the engine to exit")
    again = probe(data_dir, 200, 0, 1)  # the same 200 snapshots again: each a duplicate of one stored
    answered(again, 200, False)
    with duckdb.connect(str(data_dir / "gex_data.db"), read_only=True) as db:
        assert stored_keys(db) == {("SPX", "gex_zero", (TS + i) * 1000): 1 for i in range(200)}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", (TS + i) * 1000): STRIKES for i in range(200)}
