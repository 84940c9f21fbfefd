"""The engine (gexsrv.engine) as its own process, forked by the spawner, ingesting a journal a front writes: every
seq gets one outcome, the engine SIGKILLed at random moments and forked again loses nothing and stores nothing
twice, and what an engine ingested before dying untold is said by the next one's first message."""

import json
import os
import random
import subprocess
import sys

import duckdb
from helpers import REPO
from test_crash import stored_keys

PROBE = [sys.executable, str(REPO / "tests" / "engine_probe.py")]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
STRIKES, TS = 20, 1777492800  # as engine_probe posts them
ENGINE_SEED = 20261203  # the same kills on every run; ENGINE_SEED=random in the environment for new ones


def probe(data_dir, records, kills, seed, *late):
    done = subprocess.run([*PROBE, str(data_dir), str(records), str(kills), str(seed), *late], env=ENV,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout)


def has_one_outcome_each(seen, records):
    first, last = seen["seqs"]
    assert last - first + 1 == records
    assert seen["reported_twice"] == []
    assert seen["exit_code"] == 0  # Stop: it ingested what was durable and exited on its own
    for seq in range(first, last + 1):
        assert str(seq) in seen["outcomes"] or seq in seen["covered"], f"seq {seq} has no outcome"


def assert_each_stored_once(data_dir, seen, records):
    has_one_outcome_each(seen, records)
    assert all(stored and error is None for stored, error in seen["outcomes"].values())
    with duckdb.connect(str(data_dir / "gex_data.db"), read_only=True) as db:
        assert stored_keys(db) == {("SPX", "gex_zero", (TS + i) * 1000): 1 for i in range(records)}
        assert stored_keys(db, "gex_strikes") == {("SPX", "gex_zero", (TS + i) * 1000): STRIKES
                                                  for i in range(records)}


def test_the_engine_ingests_what_the_front_journals_and_reports_each_seq(tmp_path):
    seen = probe(tmp_path / "data", 300, 0, 1)
    assert seen["covered"] == []
    assert_each_stored_once(tmp_path / "data", seen, 300)


def test_engines_sigkilled_at_random_moments_lose_nothing_and_store_nothing_twice(tmp_path):
    seed = {"random": random.randrange(2**32), None: ENGINE_SEED}.get(os.environ.get("ENGINE_SEED"))
    seed = int(os.environ["ENGINE_SEED"]) if seed is None else seed
    print(f"ENGINE_SEED={seed}")
    seen = probe(tmp_path / "data", 1500, 12, seed)
    assert seen["kills"] == 12
    assert_each_stored_once(tmp_path / "data", seen, 1500)  # a failure names its seed above (pytest -s)


def test_a_journal_written_while_no_engine_ran_is_ingested_by_the_next_one(tmp_path):
    seen = probe(tmp_path / "data", 200, 0, 1, "late")
    assert seen["covered"] == []
    assert_each_stored_once(tmp_path / "data", seen, 200)


def test_snapshots_journaled_again_are_reported_as_duplicates(tmp_path):
    assert_each_stored_once(tmp_path / "data", probe(tmp_path / "data", 100, 0, 1), 100)
    again = probe(tmp_path / "data", 100, 0, 1)  # the same 100 snapshots, journaled as seqs 101-200
    assert again["seqs"] == [101, 200]
    assert again["covered"] == []
    has_one_outcome_each(again, 100)
    assert all(stored is False and error is None for stored, error in again["outcomes"].values())
