"""Many tasks at once on this machine: `bench --workers 2` finds the same verified set as the
sequential bench, every entry lands in the one library, an interrupted bench resumes without
running finished tasks again, and the library's lock really serialises two processes."""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from autoconn.conn.artifact import Library
from tests.conftest import FIXTURE_LIBRARY, REPO

pytestmark = pytest.mark.slow

SIX = ("copy", "length", "index", "first_token", "is_a", "reverse")  # each solved by the search in seconds


def autoconn(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoconn.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def six_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in SIX:
        shutil.copy(REPO / "rule_examples" / f"{name}.jsonl", folder / f"{name}.jsonl")
    return folder


def bench(folder: Path, cwd: Path, *flags: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = autoconn("bench", str(folder), "--inducer", "search", "--sandbox", "process", "--oracles", "none",
                      "--budget", "120", "--json", *flags, cwd=cwd, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    report: dict[str, Any] = json.loads(result.stdout)
    report["stderr"] = result.stderr
    return report


def verified(report: dict[str, Any]) -> set[str]:
    return {row["task"] for row in report["tasks"] if row["solved"]}


@functools.cache
def sequential_verified() -> frozenset[str]:
    """The reference: the same six tasks one after another in one process (run once per session;
    the Ray tests compare against it too)."""
    scratch = Path(tempfile.mkdtemp(prefix="autoconn-sequential-"))
    try:
        report = bench(six_tasks(scratch / "tasks"), scratch, "--workers", "1")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert report["runner"] == "this process"
    return frozenset(verified(report))


@pytest.fixture
def sequential() -> frozenset[str]:
    return sequential_verified()


def test_two_workers_verify_the_same_set_as_one_into_one_library(tmp_path: Path, sequential: frozenset[str]):
    marker = tmp_path / "killed-once"  # the worker running `copy` is killed once, mid-task: the pool is rebuilt
    report = bench(six_tasks(tmp_path / "tasks"), tmp_path, "--workers", "2",
                   env={"AUTOCONN_KILL_AT": "bench:copy", "AUTOCONN_KILL_ONCE": str(marker)})
    assert sequential == set(SIX)
    assert verified(report) == sequential and marker.exists()
    rows = {row["task"]: row for row in report["tasks"]}
    assert rows["copy"]["retries"] == 1 and sum(row["retries"] for row in rows.values()) <= 2  # copy and its neighbour
    workers = {row["worker"] for row in report["tasks"]}
    assert len(workers) >= 2 and report["runner"] == "2 local worker process(es)"
    progress = [line for line in report["stderr"].splitlines() if line.startswith("bench: [")]
    assert len(progress) == 6 and progress[-1].startswith("bench: [6/6]") and "6 verified this session" in progress[-1]
    library = Library(tmp_path / report["library"])  # the bench folder's own library (no --out given)
    assert set(library.names()) == set(SIX) and library.check(repair=False) == []
    for row in report["tasks"]:
        assert row["registered"] == str(Path(report["library"]) / row["task"] / "program.py")
    saved = json.loads((tmp_path / report["report"]).read_text())
    assert set(saved["tasks"]) == set(SIX) and saved["command"]["workers"] == 2


def test_an_interrupted_bench_resumes_without_running_finished_tasks(tmp_path: Path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("copy", "length"):
        shutil.copy(REPO / "rule_examples" / f"{name}.jsonl", tasks / f"{name}.jsonl")
    args = [sys.executable, "-m", "autoconn.cli", "bench", str(tasks), "--inducer", "search", "--sandbox", "process",
            "--oracles", "none", "--workers", "1"]
    bench_run = subprocess.Popen(args, cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                 start_new_session=True)
    assert bench_run.stderr is not None
    for line in bench_run.stderr:  # kill the whole bench (driver and sandbox) once one task is recorded
        if line.startswith("bench: [1/2]"):
            os.killpg(bench_run.pid, signal.SIGKILL)
            break
    bench_run.wait(timeout=60)
    (folder,) = (tmp_path / "runs").glob("bench-*")
    first = json.loads((folder / "report.json").read_text())
    assert len(first["tasks"]) == 1
    (done,) = first["tasks"]

    report = bench(tasks, tmp_path, "--resume", folder.name)
    assert report["bench_id"] == folder.name and report["resumed"] == [done]
    assert verified(report) == {"copy", "length"}
    ran = [line for line in report["stderr"].splitlines() if line.startswith("bench: [")]
    assert len(ran) == 1 and ran[0].startswith("bench: [2/2]") and done not in ran[0]  # only the other one ran
    assert "1 already finished, resumed" in report["stderr"]
    again = autoconn("bench", "--resume", "bench-nope", cwd=tmp_path)
    assert again.returncode == 2 and "no bench 'bench-nope'" in again.stderr and "Traceback" not in again.stderr


def test_induce_of_several_files_registers_each_into_out(tmp_path: Path):
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    for name in ("copy", "length"):
        shutil.copy(REPO / "rule_examples" / f"{name}.jsonl", tasks / f"{name}.jsonl")
    result = autoconn("induce", str(tasks / "copy.jsonl"), str(tasks / "length.jsonl"), "--inducer", "search", "--sandbox",
                      "process", "--out", "lib", "--workers", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "verified copy: proven on inputs up to 8 tokens" in result.stdout
    assert "program:  lib/length/program.py" in result.stdout
    library = Library(tmp_path / "lib")
    assert library.names() == ["copy", "length"] and library.check(repair=False) == []
    assert library.get("length").meta["provenance"]["bench_id"].startswith("bench-")
    refused = autoconn("induce", str(tasks), "--name", "x", "--out", "lib", cwd=tmp_path)
    assert refused.returncode == 2 and "--name" in refused.stderr and "one task file" in refused.stderr


def _write_entries(root: str, prefix: str, count: int, source_dir: str, ready: str = "") -> None:
    """Registers `count` copies of a real entry under PREFIX-i (run in a separate process)."""
    from autoconn.conn.artifact import Library, _program_source

    source = _program_source((Path(source_dir) / "program.py").read_text())
    meta = json.loads((Path(source_dir) / "conn.json").read_text())
    if ready:
        Path(ready).touch()
    for i in range(count):
        Library(root).write(f"{prefix}-{i}", source, dict(meta), weights_file=Path(source_dir) / "weights.npz")


def test_the_library_lock_serialises_writers_in_different_processes(tmp_path: Path):
    root, entry = tmp_path / "lib", str(FIXTURE_LIBRARY / "copy")
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_entries, args=(str(root), prefix, 4, entry)) for prefix in ("a", "b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
        assert writer.exitcode == 0
    library = Library(root)
    assert library.names() == sorted(f"{p}-{i}" for p in "ab" for i in range(4))  # no index update lost
    assert library.check(repair=False) == []

    lock = FileLock(str(root / ".index.lock"))  # held here: another process's write must wait for it
    with lock:
        waiting = context.Process(target=_write_entries, args=(str(root), "c", 1, entry, str(tmp_path / "ready")))
        waiting.start()
        deadline = time.monotonic() + 60
        while not (tmp_path / "ready").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)
        assert waiting.is_alive() and not (root / "c-0").exists()
    waiting.join(120)
    assert waiting.exitcode == 0 and "c-0" in Library(root).names()
