"""The library survives crashes, full disks and bad input: never a lost or half entry, never a traceback.

Crashes are real: the process SIGKILLs itself at a named point (autoconn.faults), as a power cut
would, then the run is resumed. Full and read-only disks are real tmpfs mounts (root only: in CI
they must work; on a laptop without root those tests skip and say why).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autoconn.cli import app
from autoconn.conn.artifact import Library
from tests.conftest import IN_CI, write_jsonl
from tests.pipeline.test_induce import LENGTH_TASK, RIGHT

pytestmark = pytest.mark.slow

BIGGER = RIGHT.replace('.named("length")', '.named("length_v2")')


def autoconn(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoconn.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def induce(tmp_path: Path, *extra: str, program: str = RIGHT, library: str = "lib", runs: str = "runs",
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    task = write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)
    source = tmp_path / f"p{abs(hash(program))}.py"
    source.write_text(program)
    return autoconn("induce", str(task), "--inducer", "files", "--candidate", str(source), "--sandbox", "process",
                    "--out", library, "--runs-dir", runs, "--json", "--quiet", *extra, cwd=tmp_path, env=env)


def assert_valid_library(root: Path, names: set[str]) -> None:
    """Every listed entry is whole, every whole entry is listed, nothing hidden is left over."""
    library = Library(root)
    assert library.check(repair=False) == []
    assert set(library.names()) == names
    for name in names:
        entry = library.get(name)
        assert entry.runtime().run([["a", "b"]])[0] == [2, 2]
    assert not [p for p in root.iterdir() if p.name.startswith((".staging", ".retired", ".index.json."))]


def run_id_of(tmp_path: Path, runs: str = "runs") -> str:
    (run,) = [p.name for p in (tmp_path / runs).iterdir()]
    return run


@pytest.mark.parametrize("point", ["register:before-write", "library:staged", "library:swapped"])
def test_a_run_killed_while_registering_resumes_and_keeps_the_verified_result(tmp_path: Path, point: str):
    killed = induce(tmp_path, env={"AUTOCONN_KILL_AT": point})
    assert killed.returncode == -9  # SIGKILL, as a power cut
    listing = autoconn("list", "--out", "lib", "--json", cwd=tmp_path)  # mends what the crash left
    assert listing.returncode == 0 and "Traceback" not in listing.stderr
    resumed = autoconn("induce", "--resume", run_id_of(tmp_path), "--json", "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "verified" and summary["program"].endswith("length/program.py")
    assert_valid_library(tmp_path / "lib", {"length"})


@pytest.fixture(scope="module")
def registered_length(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A library holding `length`, registered once through the CLI; tests that replace it take a copy."""
    root = tmp_path_factory.mktemp("registered")
    done = induce(root)
    assert done.returncode == 0, done.stderr
    return root / "lib"


@pytest.mark.parametrize("exchange", ["1", "0"])
def test_a_replace_killed_halfway_leaves_one_whole_entry_listed(tmp_path: Path, exchange: str, registered_length: Path):
    shutil.copytree(registered_length, tmp_path / "lib", ignore=shutil.ignore_patterns(".index.lock"))
    old = Library(tmp_path / "lib").get("length").meta["source_sha256"]
    point = "library:retired" if exchange == "1" else "library:swapped"
    killed = induce(tmp_path, "--force", program=BIGGER, runs="runs2",
                    env={"AUTOCONN_KILL_AT": point, "AUTOCONN_NO_EXCHANGE": exchange})
    assert killed.returncode == -9
    library = Library(tmp_path / "lib")
    problems = library.check()
    assert problems, "the crash left something to mend"
    assert_valid_library(tmp_path / "lib", {"length"})
    kept = library.get("length").meta["source_sha256"]
    assert kept in (old, library.get("length").meta["source_sha256"])
    resumed = autoconn("induce", "--resume", run_id_of(tmp_path, "runs2"), "--runs-dir", "runs2", "--json", "--quiet",
                       cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "length_v2" in (tmp_path / "lib" / "length" / "program.py").read_text()
    assert_valid_library(tmp_path / "lib", {"length"})


def test_names_are_one_strict_pattern(tmp_path: Path):
    result = induce(tmp_path, "--name", "index.json", "--force")  # once through a real process
    assert result.returncode == 2 and "Traceback" not in result.stderr and "name" in result.stderr
    task, source = tmp_path / "length.jsonl", next(tmp_path.glob("p*.py"))
    for bad in ("evil\n", "Upper", "../x", "nul"):  # the rest in-process: the name is refused before any work
        inline = CliRunner().invoke(app, ["induce", str(task), "--inducer", "files", "--candidate", str(source),
                                          "--sandbox", "process", "--out", str(tmp_path / "lib"), "--runs-dir",
                                          str(tmp_path / "runs"), "--json", "--quiet", "--name", bad, "--force"])
        assert inline.exit_code == 2 and isinstance(inline.exception, SystemExit), (bad, inline.exception)
        assert "name" in inline.stderr, bad
    assert not (tmp_path / "lib").exists()


def test_a_same_name_race_gives_the_loser_a_clear_exit_2_and_resume_can_force(tmp_path: Path):
    task = write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)
    (tmp_path / "p.py").write_text(RIGHT)
    args = [sys.executable, "-m", "autoconn.cli", "induce", str(task), "--inducer", "files", "--candidate", "p.py",
            "--sandbox", "process", "--out", "lib", "--json", "--quiet"]
    procs = [subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=600), p.stderr.read() if p.stderr else "") for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes.count(0) == 1 and set(codes) <= {0, 2}, results
    assert all("Traceback" not in stderr for _, stderr in results)
    assert all("already exists" in stderr for code, stderr in results if code == 2)
    assert_valid_library(tmp_path / "lib", {"length"})
    lost = [line for code, stderr in results if code == 2 for line in stderr.splitlines() if "--resume" in line]
    if lost:  # a loser that got as far as its verdict: it can still register, replacing the winner
        run_id = lost[0].split("--resume ")[1].split("`")[0]
        forced = autoconn("induce", "--resume", run_id, "--force", "--json", "--quiet", cwd=tmp_path)
        assert forced.returncode == 0, forced.stderr
        assert_valid_library(tmp_path / "lib", {"length"})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs mounted for this test (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        if IN_CI:
            pytest.fail(f"cannot mount a tmpfs for the full-disk tests: {done.stderr.strip()}")
        pytest.skip(f"full-disk tests need root to mount a tmpfs: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def test_a_full_library_disk_exits_2_changes_nothing_and_the_run_resumes_later(tmp_path: Path, small_disk: Path):
    assert induce(tmp_path, library=str(small_disk / "lib")).returncode == 0
    before = (small_disk / "lib" / "index.json").read_text()
    filler = fill(small_disk)
    full = induce(tmp_path, "--name", "length2", library=str(small_disk / "lib"), runs="runs2")
    assert full.returncode == 2 and "no space left" in full.stderr and "Traceback" not in full.stderr
    assert "--resume" in full.stderr
    assert (small_disk / "lib" / "index.json").read_text() == before  # nothing was changed
    filler.unlink()
    resumed = autoconn("induce", "--resume", run_id_of(tmp_path, "runs2"), "--runs-dir", "runs2", "--json", "--quiet",
                       cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert_valid_library(small_disk / "lib", {"length", "length2"})


def test_a_full_runs_disk_exits_2_with_a_clear_line(tmp_path: Path, small_disk: Path):
    fill(small_disk)
    full = induce(tmp_path, runs=str(small_disk / "runs"))
    assert full.returncode == 2 and "no space left" in full.stderr and "Traceback" not in full.stderr


def test_a_read_only_library_is_refused_before_any_work(tmp_path: Path, small_disk: Path):
    (small_disk / "lib").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = induce(tmp_path, library=str(small_disk / "lib"))
    assert result.returncode == 2 and "not writable" in result.stderr and not (tmp_path / "runs").exists()
