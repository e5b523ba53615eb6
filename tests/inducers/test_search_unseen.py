"""The search on task files nobody tuned it for (tests/inducers/unseen/, written by its
generate.py): other alphabets, tie-breaks and directions than rule_examples/.

A found program must be right on the held-out examples and on random inputs up to twice
the longest example (rasp.evaluate); the slow test also compiles it and runs the model.
``running_max`` needed two generic additions to be reached: 2-D dominance counts (records
of a running maximum) and the nearest read over an attention-derived mark.
"""

from __future__ import annotations

import functools
import importlib.util
import random
import time
from pathlib import Path
from typing import Any

import pytest
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings
from autoconn.conn.runtime import ConnRuntime
from autoconn.conn.verify import verify_outputs
from autoconn.inducers.search import synthesize_task
from autoconn.task import load_task, split_task

UNSEEN = Path(__file__).resolve().parent / "unseen"
SOLVED = ["most_frequent_ties_last", "prefix_never_more_b", "previous_mark_is_x", "running_max"]


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("unseen_generate", UNSEEN / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _search(name: str) -> tuple[Any, Any, list[Any], float]:
    """(task, split, found, seconds): one search per task, shared by the two tests that need it."""
    task = load_task(UNSEEN / f"{name}.jsonl")
    split = split_task(task)
    began = time.perf_counter()
    found = synthesize_task(task, split.induction, budget_seconds=20, want=1).found
    return task, split, found, time.perf_counter() - began


def _as_list(value: Any, n: int) -> list[Any]:
    return value if isinstance(value, list) else [value] * n


def test_task_files_are_what_the_generator_writes() -> None:
    gen = _generator()
    for name in SOLVED:
        _, vocab, rule = gen.TASKS[name]
        rows = gen.rows(name, vocab, rule)
        examples = load_task(UNSEEN / f"{name}.jsonl").examples
        assert [(list(e.inputs), list(e.outputs)) for e in examples] == \
            [(r["input"], _as_list(r["output"], len(r["input"]))) for r in rows]


@pytest.mark.parametrize("name", SOLVED)
def test_unseen_rule_is_found_and_generalises(name: str) -> None:
    task, split, found, seconds = _search(name)
    assert found, f"nothing found for {name}"
    assert seconds < 25
    # (rows of the held-out length were never seen by the search)
    program = found[0].to_rasp()
    for example in split.validation + split.sealed:
        assert rasp.evaluate(program, list(example.inputs)) == list(example.outputs), example
    _, vocab, rule = _generator().TASKS[name]
    rng = random.Random(5)
    for _ in range(40):
        x = [rng.choice(vocab) for _ in range(rng.randint(1, task.max_seq_len))]
        assert rasp.evaluate(program, x) == _as_list(rule(x), len(x)), x


@pytest.mark.slow
@pytest.mark.parametrize("name", SOLVED)
def test_unseen_rule_compiles_and_verifies(name: str) -> None:
    task, split, found, _ = _search(name)
    assert found
    model = compile_program(found[0].to_rasp(), task.input_vocab, default_settings(task.max_seq_len))
    runtime = ConnRuntime.from_model(model, task.max_seq_len)
    held_out = split.validation + split.sealed
    check = verify_outputs(held_out, runtime.run([e.inputs for e in held_out]), task.output_kind)
    assert check.passed, check.failures[:2]
