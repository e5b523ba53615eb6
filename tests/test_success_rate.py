"""Regression test of the offline induction success rate against the committed baseline.

CI runs the fixed, representative subset named in tests/baselines/search.json (`ci_subset`:
easy, medium and hard tasks) to fit its time; AUTOCONN_FULL_BENCH=1 runs every task.
The test fails if a task solved in the baseline is lost or the rate drops below it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BASELINE = REPO / "tests" / "baselines" / "search.json"

pytestmark = pytest.mark.slow


def test_search_success_rate_does_not_regress(tmp_path: Path):
    baseline = json.loads(BASELINE.read_text())
    full = os.environ.get("AUTOCONN_FULL_BENCH") == "1"
    tasks = sorted(baseline["solved"] + baseline["unsolved"]) if full else baseline["ci_subset"]
    args = [sys.executable, "-m", "autoconn.cli", "bench", str(REPO / "rule_examples"), "--inducer", "search",
            "--budget", str(baseline["budget_seconds"]), "--json"]
    for task in tasks:
        args += ["--task", task]
    result = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    solved = {row["task"] for row in report["tasks"] if row["solved"]}
    expected = set(baseline["solved"]) & set(tasks)
    lost = sorted(expected - solved)
    assert not lost, f"tasks solved in the baseline and lost now: {lost}"
    baseline_rate = len(expected) / len(tasks)
    assert report["overall"]["rate"] >= baseline_rate
    # rule_examples/generate.py holds every task's rule: each verdict is an oracle's, at every compiled length
    for row in report["tasks"]:
        if row["solved"]:
            assert row["verified_how"] == "oracle" and row["compiled_length"] == 16, row
            assert row["verified_length"] >= 8, row
    assert not (REPO / "generated_conns" / "_bench").exists()  # bench never writes into the library
