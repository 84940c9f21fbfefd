"""The run account (tests/run_account.py) fails a run that lost a collected test, with workers and without."""

import subprocess
import sys

import pytest

from helpers import REPO

CASES = """
def test_one():
    assert True

def test_two():
    assert True
"""
# A plugin that reports a test as handled without running it, as a plugin unable to run under workers may.
LOSES_ONE = """
from run_account import RunAccount

def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        config.pluginmanager.register(RunAccount(), "run-account")

def pytest_runtest_protocol(item, nextitem):
    return True if item.name == "test_two" else None
"""


@pytest.mark.slow
@pytest.mark.parametrize("workers", [[], ["-n", "2"]])
@pytest.mark.parametrize("loses", [False, True])
def test_a_run_that_loses_a_collected_test_fails(tmp_path, workers, loses):
    run = pytest_run(tmp_path, LOSES_ONE if loses else LOSES_ONE.split("def pytest_runtest_protocol")[0], *workers)
    assert run.returncode == (1 if loses else 0), run.stdout + run.stderr
    assert ("1 of 2 collected tests neither ran nor skipped with a reason" in run.stdout) is loses, run.stdout


def test_a_collection_only_run_runs_nothing_and_passes(tmp_path):
    run = pytest_run(tmp_path, LOSES_ONE, "--collect-only")
    assert (run.returncode, "2 tests collected" in run.stdout) == (0, True), run.stdout + run.stderr


def pytest_run(folder, conftest, *flags):
    (folder / "test_cases.py").write_text(CASES)
    (folder / "conftest.py").write_text(conftest)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, str(folder)],
                          capture_output=True, text=True, cwd=folder, timeout=120,
                          env={"PYTHONPATH": str(REPO / "tests"), "PATH": ""})
