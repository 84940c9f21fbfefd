"""The Makefile's set-up: `make run` installs the server's runtime only, `make test` the test tools on top."""

import shutil
import subprocess

import pytest

from helpers import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def planned(target, tmp_path):
    """The commands `make TARGET` would run for a fresh .venv (make -n runs none of them)."""
    run = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=REPO, capture_output=True,
                         text=True, check=True, timeout=60)
    return [line for line in run.stdout.splitlines() if "pip install" in line]


def test_make_run_installs_the_runtime_alone(tmp_path):
    installs = planned("run", tmp_path)
    assert len(installs) == 1 and installs[0].endswith(" -e .")


def test_make_test_installs_the_test_tools_on_the_runtime(tmp_path):
    installs = planned("test", tmp_path)
    assert installs[0].endswith(" -e .") and installs[1].endswith(" -e '.[test]'")
