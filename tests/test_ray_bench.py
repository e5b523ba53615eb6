"""The same bench as Ray tasks on a local Ray instance (2 CPUs, started by the command): the same
verified set as the sequential bench, and a task whose Ray worker is killed mid-task is retried
once, then recorded as failed with the reason if it dies again."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from autoconn.conn.artifact import Library
from tests.conftest import IN_CI
from tests.test_parallel_bench import SIX, bench, sequential_verified, six_tasks, verified

pytestmark = pytest.mark.slow

if importlib.util.find_spec("ray") is None:  # `make test` installs it (the ray extra)
    if IN_CI:
        raise RuntimeError("ray is not installed: `pip install -e '.[ray]'` (make test does)")
    pytest.skip("ray is not installed (pip install -e '.[ray]')", allow_module_level=True)


@pytest.fixture
def sequential() -> frozenset[str]:
    return sequential_verified()  # the same six tasks one after another (computed once per session)


def test_ray_tasks_verify_the_same_set_and_a_killed_worker_is_retried(tmp_path: Path, sequential: frozenset[str]):
    marker = tmp_path / "killed-once"
    report = bench(six_tasks(tmp_path / "tasks"), tmp_path, "--ray", "--workers", "2",
                   env={"AUTOCONN_KILL_AT": "bench:reverse", "AUTOCONN_KILL_ONCE": str(marker)})
    assert report["runner"] == "Ray at a local instance: 1 node(s), 2 CPU(s)"
    assert marker.exists()  # a worker really died mid-task
    assert verified(report) == sequential == set(SIX)
    rows = {row["task"]: row for row in report["tasks"]}
    assert rows["reverse"]["retries"] == 1 and all(rows[t]["retries"] == 0 for t in SIX if t != "reverse")
    assert any(line.startswith("bench: [") and "reverse: verified" in line and "retried 1x" in line
               for line in report["stderr"].splitlines())
    library = Library(tmp_path / report["library"])  # the driver registered what the workers returned
    assert set(library.names()) == set(SIX) and library.check(repair=False) == []
    assert library.get("reverse").runtime() is not None


def test_a_task_whose_ray_worker_dies_twice_is_recorded_as_failed(tmp_path: Path):
    tasks = six_tasks(tmp_path / "tasks")
    for path in tasks.glob("*.jsonl"):
        if path.stem not in ("copy", "length"):
            path.unlink()
    report = bench(tasks, tmp_path, "--ray", "--workers", "2", env={"AUTOCONN_KILL_AT": "bench:length"})
    rows = {row["task"]: row for row in report["tasks"]}
    assert rows["copy"]["solved"] and rows["copy"]["retries"] == 0
    assert not rows["length"]["solved"] and rows["length"]["retries"] == 1
    assert "its Ray worker died twice" in rows["length"]["reason"]
    assert report["overall"] == {"solved": 1, "total": 2, "rate": 0.5}
