"""The goal shortcuts that build the generic blocks, on small rules written inline here
(none of them is a rule_examples/ task): the search finds a program, it generalises to
inputs twice as long as any example, and it is no deeper than the hand-count given."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tracr.rasp import rasp

from autoconn.inducers.search import synthesize_task
from autoconn.task import load_task, split_task

Rule = Callable[[list[Any]], Any]


def _balance(x: list[Any], up: Any) -> list[int]:
    out, s = [], 0
    for t in x:
        s += 1 if t == up else -1
        out.append(s)
    return out


def xy_balanced(x: list[str]) -> bool:
    """Broadcast: 'x' opens, 'y' closes; balanced."""
    b = _balance(x, "x")
    return min(b) >= 0 and b[-1] == 0


def xy_prefix_balanced(x: list[str]) -> list[bool]:
    b = _balance(x, "x")
    return [min(b[: i + 1]) >= 0 and b[i] == 0 for i in range(len(x))]


def base5_carry(x: list[int]) -> list[int]:
    """Per-position digit sums (0..8) of two base-5 numbers -> digits of the sum."""
    out = []
    for i, s in enumerate(x):
        nxt = next((u for u in x[i + 1:] if u != 4), None)
        out.append((s + (1 if nxt is not None and nxt >= 5 else 0)) % 5)
    return out


def least_frequent(x: list[str]) -> str:
    """Ties go to the alphabetically smallest."""
    return min(sorted(set(x)), key=lambda t: (x.count(t), t))


def fill_from_right(x: list[str]) -> list[str]:
    """Each position takes the nearest non-'_' token right of it ('_' when there is none)."""
    return [next((u for u in x[i + 1:] if u != "_"), "_") for i in range(len(x))]


# name -> (rule, vocab, layers no more than)
RULES: dict[str, tuple[Rule, list[Any], int]] = {
    "xy_balanced": (xy_balanced, list("xy"), 3),
    "xy_prefix_balanced": (xy_prefix_balanced, list("xy"), 4),
    "base5_carry": (base5_carry, list(range(9)), 4),
    "least_frequent": (least_frequent, list("pqrs"), 4),
    "fill_from_right": (fill_from_right, list("mn_"), 4),
}


def _dyck_word(rng: random.Random, pairs: int) -> list[str]:
    """A random balanced x/y string with this many pairs."""
    x, depth, left = [], 0, pairs
    while left or depth:
        opening = left > 0 and (depth == 0 or rng.random() < 0.5)
        x.append("x" if opening else "y")
        depth += 1 if opening else -1
        left -= 1 if opening else 0
    return x


def _sample(name: str, rule: Rule, vocab: list[Any], count: int, seed: int, longest: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < count:
        n = rng.randint(1, longest)
        if name.startswith("xy") and rng.random() < 0.5:  # balanced strings are rare at random
            x = _dyck_word(rng, max(1, n // 2))
        elif name == "base5_carry" and rng.random() < 0.5:
            x = [rng.choice([4, 4, 5, 6, 7, 8, 1]) for _ in range(n)]
        else:
            x = [rng.choice(vocab) for _ in range(n)]
        if tuple(x) not in seen:
            seen.add(tuple(x))
            rows.append({"input": x, "output": rule(x)})
    return rows


@pytest.mark.parametrize("name", sorted(RULES))
def test_goal_blocks_solve_unseen_rules(tmp_path: Path, name: str) -> None:
    rule, vocab, most_layers = RULES[name]
    rows = _sample(name, rule, vocab, 90, seed=0, longest=8)
    path = tmp_path / f"{name}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task = load_task(path)
    split = split_task(task)
    found = synthesize_task(task, split.induction, budget_seconds=20, want=1).found
    assert found, f"nothing found for {name}"
    assert found[0].layers <= most_layers, found[0].summary
    program = found[0].to_rasp()
    for row in _sample(name, rule, vocab, 60, seed=9, longest=task.max_seq_len):
        x, expected = row["input"], row["output"]
        expected = expected if isinstance(expected, list) else [expected] * len(x)
        assert rasp.evaluate(program, x) == expected, (x, found[0].summary)
