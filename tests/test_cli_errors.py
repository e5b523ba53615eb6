"""Bad input anywhere on the command line: one clear line and exit 2 (or 1 for "nothing verified"),
never a traceback; progress that a person (or a log file) can read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from autoconn.conn.artifact import Library
from tests.conftest import FIXTURE_LIBRARY, REPO, write_jsonl
from tests.pipeline.test_induce import LENGTH_TASK, RIGHT


def autoconn(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoconn.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


@pytest.fixture
def library(tmp_path: Path) -> Path:
    root = tmp_path / "lib"
    for name in ("parity", "reverse"):
        shutil.copytree(FIXTURE_LIBRARY / name, root / name)
    Library(root).check()
    return root


@pytest.mark.parametrize("flags,message", [
    (["--trigger", "x" * 100_000], "at most 64 are allowed"),
    (["--trigger", ")=\n"], "newline or another control character"),
    (["--operand-start", "rev\t("], "newline or another control character"),
])
def test_fusion_markers_that_cannot_work_are_refused(tmp_path: Path, library: Path, flags: list[str], message: str):
    result = autoconn("set-fusion", "reverse", *flags, "--out", str(library), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_show_prints_a_description_as_text_not_markup(tmp_path: Path, library: Path):
    Library(library).update_meta("reverse", {"description": "[bold red]not markup[/] [link=x]y[/link]"})
    shown = autoconn("show", "reverse", "--out", str(library), cwd=tmp_path)
    assert shown.returncode == 0 and "[bold red]not markup[/] [link=x]y[/link]" in shown.stdout


def test_fuse_with_a_character_the_demo_lm_never_saw_exits_2(tmp_path: Path, library: Path):
    result = autoconn("fuse", "--conn", "parity", "--lm", "demo", "--out", str(library), "Hi there", cwd=tmp_path)
    assert result.returncode == 2 and "not in the demo LM's alphabet" in result.stderr and "Traceback" not in result.stderr


def test_a_damaged_index_or_entry_is_a_clear_exit_2(tmp_path: Path, library: Path):
    (library / "reverse" / "conn.json").write_text("{" * 50_000)
    shown = autoconn("show", "reverse", "--out", str(library), cwd=tmp_path)
    assert shown.returncode == 2 and "damaged" in shown.stderr and "Traceback" not in shown.stderr
    (library / "index.json").write_text("[1, 2")
    listed = autoconn("list", "--out", str(library), "--json", cwd=tmp_path)
    assert listed.returncode == 0 and "index.json: damaged; rebuilt" in listed.stderr
    assert set(json.loads(listed.stdout)) == {"parity"}  # the damaged entry is not listed


@pytest.mark.slow
def test_progress_is_one_line_per_stage_off_a_terminal_and_quiet_silences_it(tmp_path: Path):
    task = write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)
    (tmp_path / "p.py").write_text(RIGHT)
    args = ["induce", str(task), "--inducer", "files", "--candidate", "p.py", "--sandbox", "process", "--out", "lib"]
    loud = autoconn(*args, cwd=tmp_path)
    assert loud.returncode == 0, loud.stderr
    stages = [line.split(" | ")[0] for line in loud.stderr.splitlines() if line.startswith("autoconn: ")]
    assert [s.split()[1] for s in stages][:2] == ["observe", "induce"] and "autoconn: register" in stages
    assert all("s left" in line for line in loud.stderr.splitlines() if line.startswith("autoconn: "))
    quiet = autoconn(*args, "--name", "other", "--quiet", cwd=tmp_path)
    assert quiet.returncode == 0 and "autoconn: " not in quiet.stderr


@pytest.mark.slow
def test_resuming_after_the_task_file_changed_exits_2(tmp_path: Path):
    task = write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)
    (tmp_path / "p.py").write_text(RIGHT)
    killed = autoconn("induce", str(task), "--inducer", "files", "--candidate", "p.py", "--sandbox", "process", "--out", "lib",
                      "--quiet", cwd=tmp_path, env={"AUTOCONN_KILL_AT": "register:before-write"})
    assert killed.returncode == -9
    write_jsonl(task, LENGTH_TASK[:-1])
    (run_id,) = [p.name for p in (tmp_path / "runs").iterdir()]
    resumed = autoconn("induce", "--resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 2 and "changed since run" in resumed.stderr and "Traceback" not in resumed.stderr


@pytest.mark.slow
def test_bench_records_a_bad_task_file_as_that_task_failing_and_goes_on(tmp_path: Path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(REPO / "rule_examples" / "copy.jsonl", suite / "copy.jsonl")
    (suite / "broken.jsonl").write_text('{"input": ["a"], "output": \n')
    result = autoconn("bench", str(suite), "--inducer", "search", "--sandbox", "process", "--budget", "60", "--json",
                      cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["task"]: row for row in json.loads(result.stdout)["tasks"]}
    assert rows["broken"]["solved"] is False and "not valid JSON" in rows["broken"]["reason"]
    assert rows["copy"]["solved"] is True
    bad_budget = autoconn("bench", str(suite), "--budget", "inf", cwd=tmp_path)
    assert bad_budget.returncode == 2 and "finite" in bad_budget.stderr


@pytest.mark.parametrize("args, message", [
    (["review", "--library", "lib"], "--library is now --out"),
    (["export", "reverse", "--to", "x", "--library", "lib"], "--library is now --out"),
    (["bench", "rule_examples", "--library", "lib"], "--library is now --out"),
    (["induce", "--resume", "no-such-run", "--runs-dir", "runs"], "no run 'no-such-run' under runs/"),
    (["induce", str(REPO / "rule_examples" / "reverse.jsonl"), "--sandbox", "vm"],
     "--sandbox 'vm': choose auto, docker or process"),
    (["check", "missing.py", str(REPO / "rule_examples" / "reverse.jsonl"), "--sandbox", "vm"],
     "--sandbox 'vm': choose auto, docker or process"),
])
def test_request_errors_are_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                message: str) -> None:
    """Refused before any work, in process (no sandbox, no run folder): the message, exit 2, nothing written."""
    from typer.testing import CliRunner

    from autoconn.cli import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []
