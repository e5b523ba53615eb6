"""What "verified" means: three sets, oracles at every length, CoNNs that refuse lengths nobody proved.

Real parts throughout: the graph, the process sandbox, tracr compiles, the host runtime.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from autoconn.api import RunRequest, prepare_run
from autoconn.inducers.base import Feedback, Proposal
from autoconn.inducers.search import SearchInducer
from autoconn.pipeline.context import RunContext
from autoconn.pipeline.graph import run_graph
from autoconn.sandbox import open_sandbox
from autoconn.task import Example, Task, load_task, split_task
from tests.conftest import FIXTURE_LIBRARY, REPO, write_jsonl

pytestmark = pytest.mark.slow

FIXTURES = REPO / "tests" / "fixtures"
AT_LEAST_8 = FIXTURES / "at_least_8.jsonl"
ORACLES = FIXTURES / "at_least_8_oracle.py"
AT_LEAST_8_PROGRAM = """from tracr.rasp import rasp
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
program = rasp.Map(lambda n: n >= 8, length).named("at_least_8")
"""


def autoconn(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoconn.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_at_least_8_is_never_proven_beyond_its_examples_without_an_oracle(tmp_path: Path):
    """Every example stops at length 8, so no inducer may claim more: registered as proven up to 8
    at most (whatever program it found), and `run` refuses 9 tokens."""
    result = autoconn("induce", str(AT_LEAST_8), "--inducer", "search", "--sandbox", "process", "--budget", "120",
                      "--out", "lib", "--json", "--quiet", cwd=tmp_path)
    summary = json.loads(result.stdout)
    if summary["status"] != "verified":
        assert result.returncode == 1 and not (tmp_path / "lib" / "at_least_8").exists()
        return
    assert summary["verified_length"] <= 8 and summary["verified_how"] == "examples" and summary["held_out"] is True
    assert summary["verified"]["sealed"]["total"] >= 2 and "refused unless asked for" in summary["statement"]
    meta = json.loads((tmp_path / "lib" / "at_least_8" / "conn.json").read_text())
    assert meta["verified"]["max_length"] == summary["verified_length"]
    assert json.loads((tmp_path / "lib" / "index.json").read_text())["conns"]["at_least_8"]["verified_length"] <= 8
    nine = ["a"] * 9
    refused = autoconn("run", "at_least_8", *nine, "--out", "lib", cwd=tmp_path)
    assert refused.returncode == 2 and "proven only up to" in refused.stderr and "(compiled for 16)" in refused.stderr
    forced = autoconn("run", "at_least_8", *nine, "--out", "lib", "--unverified-lengths", "--json", cwd=tmp_path)
    assert forced.returncode == 0 and json.loads(forced.stdout)["verified"] is False and "not verified" in forced.stderr


def test_with_a_correct_oracle_it_is_proven_to_16_or_refused(tmp_path: Path):
    result = autoconn("induce", str(AT_LEAST_8), "--inducer", "search", "--sandbox", "process", "--budget", "150",
                      "--oracle", f"{ORACLES}:at_least_8", "--out", "lib", "--json", "--quiet", cwd=tmp_path)
    summary = json.loads(result.stdout)
    if summary["status"] == "verified":
        assert summary["verified_length"] == 16 and summary["verified_how"] == "oracle"
        oracle = summary["verified"]["oracle"]
        assert [row["length"] for row in oracle["lengths"]] == list(range(1, 17))
        assert all(row["inputs"] > 0 and row["correct"] == row["inputs"] for row in oracle["lengths"])
        assert oracle["exhaustive_lengths"] == list(range(1, 10))  # 3**9 = 19,683 inputs at most per length
        ran = autoconn("run", "at_least_8", *(["b"] * 12), "--out", "lib", "--json", cwd=tmp_path)
        assert json.loads(ran.stdout)["output"] == [True] * 12 and json.loads(ran.stdout)["verified"] is True
    else:
        assert result.returncode == 1 and not (tmp_path / "lib" / "at_least_8").exists()


def test_check_then_verify_with_an_oracle_raises_the_proven_length_and_a_wrong_one_lowers_it(tmp_path: Path):
    (tmp_path / "right.py").write_text(AT_LEAST_8_PROGRAM)
    checked = autoconn("check", "right.py", str(AT_LEAST_8), "--register", "al8", "--sandbox", "process", "--out", "lib",
                       "--json", cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr
    record = json.loads(checked.stdout)["verified"]
    # nothing was held out from whoever wrote the program: the record says so, in words too
    assert record["held_out"] is False and record["max_length"] == 8 and "NOT held out" in record["statement"]
    shown = autoconn("show", "al8", "--out", "lib", cwd=tmp_path)
    assert "NOT held out" in shown.stdout
    proved = autoconn("verify", "al8", "--oracle", f"{ORACLES}:at_least_8", "--out", "lib", "--json", cwd=tmp_path)
    assert proved.returncode == 0, proved.stderr
    raised = json.loads(proved.stdout)["verified"]
    assert raised["max_length"] == 16 and raised["how"] == "oracle" and raised["held_out"] is True
    header = (tmp_path / "lib" / "al8" / "program.py").read_text()
    assert "proven up to 16 tokens" in header and "program = rasp.Map" in header
    assert autoconn("run", "al8", *(["c"] * 14), "--out", "lib", cwd=tmp_path).returncode == 0
    # a rule that agrees with every example but not beyond: the CoNN is wrong by it from 9 on
    wrong = autoconn("verify", "al8", "--oracle", f"{ORACLES}:at_most_8_wrong", "--out", "lib", "--json", cwd=tmp_path)
    assert wrong.returncode == 1
    lowered = json.loads(wrong.stdout)
    assert lowered["passed"] is False and lowered["verified"]["max_length"] == 8
    assert min(len(f["input"]) for f in lowered["failures"]) == 9
    assert autoconn("run", "al8", *(["c"] * 9), "--out", "lib", cwd=tmp_path).returncode == 2


ORACLE_FILE = '''
def boom(tokens):
    raise ZeroDivisionError("no rule here")


def short(tokens):
    return [len(tokens) >= 8]


def contradicts(tokens):
    return len(tokens) >= 3


def bad_value(tokens):
    return [object()] * len(tokens)
'''


@pytest.mark.parametrize("spec,message", [
    ("missing.py:f", "no such file missing.py"),
    ("rules.py:nothing", "has no function 'nothing' (functions there: bad_value, boom, contradicts, short)"),
    ("rules.py:boom", "raised ZeroDivisionError: no rule here on input ["),
    ("rules.py:short", "returned 1 values for input ["),
    ("rules.py:contradicts", "contradicts"),
    ("rules.py:bad_value", "each output must be a string, an integer, a boolean or a finite number"),
    ("rules.py", "give FILE.py:FUNCTION"),
])
def test_a_bad_oracle_exits_2_naming_the_problem_and_writes_nothing(tmp_path: Path, spec: str, message: str):
    (tmp_path / "rules.py").write_text(ORACLE_FILE)
    result = autoconn("induce", str(AT_LEAST_8), "--inducer", "search", "--sandbox", "process", "--oracle", spec,
                      "--out", "lib", cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.replace("\n", " ") and "Traceback" not in result.stderr
    assert not (tmp_path / "lib").exists() and not (tmp_path / "runs").exists()
    if spec.endswith("contradicts"):  # names the first disagreeing example: file, line, both answers
        assert "at_least_8.jsonl:" in result.stderr and "the file says [False" in result.stderr


def test_a_file_too_small_for_three_sets_is_refused_unless_told(tmp_path: Path):
    rows = [json.loads(line) for line in AT_LEAST_8.read_text().splitlines()[:6]]  # header + 5 examples
    task = write_jsonl(tmp_path / "small.jsonl", rows)
    refused = autoconn("induce", str(task), "--sandbox", "process", "--out", "lib", cwd=tmp_path, timeout=120)
    assert refused.returncode == 2 and "need at least 8" in refused.stderr and "add 3 more" in refused.stderr
    assert not (tmp_path / "lib").exists() and not (tmp_path / "runs").exists()


class Recording:
    """Wraps a real inducer and keeps everything it is handed."""

    name = "search"

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[tuple[Task, list[Example], list[Feedback]]] = []

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *, budget_seconds: float,
                limit: int) -> Proposal:
        self.seen.append((task, list(induction), list(feedback)))
        return self.inner.propose(task, induction, feedback, budget_seconds=budget_seconds, limit=limit)


def count_a_with_a_sealed_only_value(tmp_path: Path) -> tuple[Path, Example]:
    """A count-of-"a" task whose one all-"a" input of length 8 (the only output 8) lands in the sealed set."""
    for seed in range(200):
        rng = random.Random(seed)
        rows: dict[str, int] = {"aaaaaaaa": 8}
        while len(rows) < 70:
            n = rng.randint(1, 8)
            word = "".join(rng.choice("ab") for _ in range(n))
            if word != "a" * 8 and (n < 8 or word.count("a") < 8):
                rows.setdefault(word, word.count("a"))
        path = write_jsonl(tmp_path / "count_a.jsonl", [{"name": "count_a", "description": "how many a"}] +
                           [{"input": w, "output": c} for w, c in rows.items()])
        split = split_task(load_task(path))
        special = [e for e in split.sealed if e.inputs == tuple("a" * 8)]
        if special:
            return path, special[0]
    raise AssertionError("no seed put the all-a input in the sealed set")


def test_no_sealed_example_or_sealed_only_value_reaches_the_search(tmp_path: Path):
    path, special = count_a_with_a_sealed_only_value(tmp_path)
    task = load_task(path)
    split = split_task(task)
    recording = Recording(SearchInducer())
    request = RunRequest(task_path=str(path), library_dir=str(tmp_path / "lib"), runs_dir=str(tmp_path / "runs"),
                         inducer="search", sandbox="process", budget_seconds=120, max_attempts=10)
    config = prepare_run(request).config
    context = RunContext(inducers={"search": recording}, inducer_chain=["search"], open_sandbox=lambda: open_sandbox("process"))
    summary = run_graph(context, config).summary()
    assert recording.seen, "the inducer was never called"
    sealed_inputs = {e.inputs for e in split.sealed}
    for shown_task, induction, feedback in recording.seen:
        assert not sealed_inputs & {e.inputs for e in shown_task.examples}
        assert not sealed_inputs & {e.inputs for e in induction}
        assert 8 not in shown_task.output_vocab and all(8 not in e.outputs for e in shown_task.examples)
        for item in feedback:
            for counterexample in item.counterexamples:
                assert counterexample.inputs not in sealed_inputs and 8 not in counterexample.expected
    assert summary["split"]["sealed"] == len(split.sealed) and special.inputs in sealed_inputs
    if summary["status"] == "verified":
        assert summary["verified"]["sealed"]["total"] == len(split.sealed)


def test_a_candidate_that_passes_validation_but_fails_the_sealed_set_is_never_registered(tmp_path: Path):
    """The files inducer hands over a program that is right on every example but the sealed-only one."""
    path, special = count_a_with_a_sealed_only_value(tmp_path)
    program = tmp_path / "capped.py"
    program.write_text("from tracr.rasp import rasp\n"
                       "count = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda key, query: key == 'a'))\n"
                       "program = rasp.Map(lambda c: min(c, 7), count).named('capped')\n")
    result = autoconn("induce", str(path), "--inducer", "files", "--candidate", str(program), "--sandbox", "process",
                      "--out", "lib", "--json", "--quiet", cwd=tmp_path)
    summary = json.loads(result.stdout)
    assert result.returncode == 1 and summary["status"] == "failed"
    assert "passed validation but failed the sealed test" in summary["reason"] and "not registered" in summary["reason"]
    assert not (tmp_path / "lib" / "count_a").exists()


def test_the_fusion_gate_refuses_operands_beyond_the_proven_length(tmp_path: Path):
    from autoconn.conn.artifact import Library
    from autoconn.fusion.conn_tool import load_fused_conns
    from autoconn.fusion.gate import Refusal, decide

    library = tmp_path / "lib"
    shutil.copytree(FIXTURE_LIBRARY / "sort_unique", library / "sort_unique")
    lib = Library(library)
    lib.check()  # lists the copied entry
    proven = lib.get("sort_unique").verified_length
    assert proven < 16
    (default,) = load_fused_conns(["sort_unique"], lib)
    (anyway,) = load_fused_conns(["sort_unique"], lib, unverified_lengths=True)
    operand = "0123456789012345"[: proven + 1]
    refusal = decide(f"sort_unique({operand})=", [default.rule])
    assert isinstance(refusal, Refusal) and f"proven on at most {proven}" in refusal.reason
    assert not isinstance(decide(f"sort_unique({operand})=", [anyway.rule]), Refusal)
