"""`autoconn induce` end to end: the real graph, the real sandbox (process backend here; the
Docker backend has its own suite), real tracr compiles, the real SQLite checkpointer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, write_jsonl

pytestmark = pytest.mark.slow

LENGTH_TASK = [{"name": "length", "description": "number of tokens, at every position"}] + [
    {"input": list(word), "output": len(word)}
    for word in ["a", "b", "ab", "ba", "aa", "abb", "bab", "aaa", "abab", "bbba", "aabba", "babab", "abbbab",
                 "bbabba", "aababba", "bbbbaaa", "abababab", "bbaabbaa", "aaaabbbb", "babbabab"]]

RIGHT = """from tracr.rasp import rasp
program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
"""
WRONG_CONSTANT = """from tracr.rasp import rasp
program = rasp.Map(lambda t: 3, rasp.tokens).named("always_three")
"""
ONLY_SHORT = """from tracr.rasp import rasp
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))
program = rasp.Map(lambda n: min(n, 7), length).named("length_up_to_7")
"""
REFUSED = "import os\nprogram = None\n"


def autoconn(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoconn.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def programs(tmp_path: Path, **sources: str) -> list[str]:
    paths = []
    for name, source in sources.items():
        path = tmp_path / f"{name}.py"
        path.write_text(source)
        paths.append(str(path))
    return paths


@pytest.fixture
def length_task(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "length.jsonl", LENGTH_TASK)


def candidate_args(paths: list[str]) -> list[str]:
    return [arg for path in paths for arg in ("--candidate", path)]


def test_search_induces_verifies_and_registers(tmp_path: Path):
    result = autoconn("induce", str(REPO / "rule_examples" / "reverse.jsonl"), "--inducer", "search", "--sandbox", "process",
                      "--out", "lib", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads(result.stdout)
    assert summary["status"] == "verified" and summary["inducer"] == "search"
    assert summary["heldout_accuracy"] == 1.0 and summary["heldout_examples"] > 0
    assert summary["verified_length"] > summary["induced_up_to_length"]
    assert summary["compiled_max_seq_len"] == 2 * summary["verified_length"]
    program = tmp_path / summary["program"]
    assert program.exists() and "Found by:     search" in program.read_text()
    index = json.loads((tmp_path / "lib" / "index.json").read_text())
    assert index["conns"]["reverse"]["heldout_accuracy"] == 1.0
    run = autoconn("run", "reverse", "a", "b", "c", "--out", "lib", "--json", cwd=tmp_path)
    assert json.loads(run.stdout)["output"] == ["c", "b", "a"]
    show = autoconn("show", "reverse", "--out", "lib", cwd=tmp_path)
    assert summary["run_id"] in show.stdout
    again = autoconn("induce", str(REPO / "rule_examples" / "reverse.jsonl"), "--out", "lib", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_repair_loop_feeds_counterexamples_back(tmp_path: Path, length_task: Path):
    paths = programs(tmp_path, wrong=WRONG_CONSTANT, only_short=ONLY_SHORT, right=RIGHT)
    result = autoconn("induce", str(length_task), "--inducer", "files", *candidate_args(paths), "--sandbox", "process",
                      "--out", "lib", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    summary = json.loads(result.stdout)
    assert summary["attempts"] == 3 and summary["status"] == "verified"
    events = [json.loads(line) for line in (tmp_path / summary["run_log"]).read_text().splitlines()]
    checks = [e for e in events if e["event"] == "check"]
    assert checks[0]["feedback"]["stage"] == "check"  # wrong on the induction examples
    assert checks[0]["feedback"]["counterexamples"][0]["got"][0] == 3
    validations = [e for e in events if e["event"] == "validate"]
    assert validations[0]["passed"] is False  # only_short: right on induction, wrong on longer validation inputs
    assert "validation examples" in validations[0]["feedback"]["message"]
    assert len(validations[0]["feedback"]["counterexamples"][0]["input"]) == 8
    assert validations[1]["passed"] is True
    assert [e["passed"] for e in events if e["event"] == "test"] == [True]  # the sealed set, once
    assert summary["validation_revealed"] >= 1 and summary["verified"]["validation_revealed"] == summary["validation_revealed"]


def test_budget_exhaustion_exits_1_with_a_useful_summary(tmp_path: Path, length_task: Path):
    paths = programs(tmp_path, wrong=WRONG_CONSTANT, only_short=ONLY_SHORT)
    result = autoconn("induce", str(length_task), "--inducer", "files", *candidate_args(paths), "--sandbox", "process",
                      "--out", "lib", "--json", cwd=tmp_path)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["status"] == "failed" and summary["program"] is None and summary["attempts"] == 2
    assert "every given program was tried" in summary["reason"]
    assert summary["last_feedback"][-1]["stage"] == "validate"
    assert not (tmp_path / "lib").exists()
    limited = autoconn("induce", str(length_task), "--inducer", "files", *candidate_args(paths), "--sandbox", "process",
                       "--max-attempts", "1", "--out", "lib", "--json", cwd=tmp_path)
    assert limited.returncode == 1 and "attempt budget spent (1" in json.loads(limited.stdout)["reason"]


def test_long_repair_loop_does_not_hit_the_recursion_limit(tmp_path: Path, length_task: Path):
    refused = [tmp_path / f"refused{i}.py" for i in range(30)]
    for i, path in enumerate(refused):
        path.write_text(f"# attempt {i}\n" + REFUSED)
    right = programs(tmp_path, right=RIGHT)
    result = autoconn("induce", str(length_task), "--inducer", "files", *candidate_args([*map(str, refused), *right]),
                      "--sandbox", "process", "--max-attempts", "31", "--out", "lib", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["attempts"] == 31


BAD_FILES = {
    "not_json.jsonl": "{\"input\": [1]\n",
    "short.jsonl": "{\"input\": [\"a\"], \"output\": [\"a\"]}\n",
    "mismatch.jsonl": "".join(json.dumps(r) + "\n" for r in LENGTH_TASK[:5]) + "{\"input\": [\"a\", \"b\"], \"output\": [1]}\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_task_file_exits_2_and_writes_nothing(tmp_path: Path, name: str):
    path = tmp_path / name
    path.write_text(BAD_FILES[name])
    result = autoconn("induce", str(path), "--sandbox", "process", "--out", "lib", cwd=tmp_path)
    assert result.returncode == 2
    assert str(path) in result.stderr.replace("\n", "")
    assert not (tmp_path / "lib").exists() and not (tmp_path / "runs").exists()


def test_resume_after_a_real_kill(tmp_path: Path, length_task: Path):
    wrong = [tmp_path / f"wrong{i}.py" for i in range(3)]
    for i, path in enumerate(wrong):
        path.write_text(f"# wrong {i}\n" + WRONG_CONSTANT.replace("lambda t: 3", f"lambda t: {i + 10}"))
    paths = [*map(str, wrong), *programs(tmp_path, right=RIGHT)]
    args = [sys.executable, "-m", "autoconn.cli", "induce", str(length_task), "--inducer", "files", *candidate_args(paths),
            "--sandbox", "process", "--out", "lib", "--json"]
    proc = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 300
    log_path = None
    while time.monotonic() < deadline:
        logs = list((tmp_path / "runs").glob("*/log.jsonl")) if (tmp_path / "runs").exists() else []
        if logs:
            log_path = logs[0]
            checks = [line for line in log_path.read_text().splitlines() if '"event": "check"' in line]
            if len(checks) >= 2:
                break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the run never reached its second check")
    os.killpg(proc.pid, signal.SIGKILL)  # the run and its sandbox worker, mid-way
    proc.wait()
    assert log_path is not None
    run_id = log_path.parent.name
    assert not (tmp_path / "lib").exists()
    result = autoconn("induce", "--resume", run_id, "--out", "lib", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout)
    assert summary["status"] == "verified" and summary["attempts"] == 4
    events = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert any(e["event"] == "resume" for e in events)
    attempts = [e["attempt"] for e in events if e["event"] == "check"]
    assert attempts.count(1) == 1  # what was checkpointed before the kill was not redone
    assert (tmp_path / "lib" / "length" / "program.py").exists()


def test_resume_of_unknown_run_exits_2(tmp_path: Path):
    result = autoconn("induce", "--resume", "nope", cwd=tmp_path)
    assert result.returncode == 2 and "no run 'nope'" in result.stderr
