"""Compare a CoNN's outputs with the expected ones: exact for categorical, a tolerance for numbers.

Verification always uses the compiled model's outputs (tracr miscompiles some programs
silently, so ``rasp.evaluate`` agreeing proves nothing about the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoconn.conn.compare import NUMERIC_TOLERANCE, values_match
from autoconn.task import Example, OutputKind


@dataclass(frozen=True)
class Failure:
    inputs: list[Any]
    expected: list[Any]
    got: list[Any]

    def to_json(self) -> dict[str, Any]:
        return {"input": self.inputs, "expected": self.expected, "got": self.got}


@dataclass(frozen=True)
class Verification:
    """Accuracy on a set of examples (whole sequences must match) and the failing ones."""

    total: int
    correct: int
    failures: tuple[Failure, ...] = field(default_factory=tuple)
    max_length: int = 0

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def passed(self) -> bool:
        return self.total > 0 and self.correct == self.total

    def to_json(self, max_failures: int = 10, examples: str = "sealed") -> dict[str, Any]:
        return {
            "examples": examples,
            "total": self.total,
            "correct": self.correct,
            "accuracy": self.accuracy,
            "max_length": self.max_length,
            "failures": [f.to_json() for f in self.failures[:max_failures]],
        }


def verify_outputs(
    examples: Sequence[Example],
    outputs: Sequence[Sequence[Any] | None],
    kind: OutputKind,
    tolerance: float = NUMERIC_TOLERANCE,
) -> Verification:
    """Scores `outputs[i]` against `examples[i].outputs`; an example counts only if every position matches."""
    if len(outputs) != len(examples):
        raise ValueError(f"{len(outputs)} outputs for {len(examples)} examples")
    failures: list[Failure] = []
    correct = 0
    for example, got in zip(examples, outputs):
        got_list = list(got) if got is not None else []
        ok = len(got_list) == len(example.outputs) and all(
            values_match(e, g, kind, tolerance) for e, g in zip(example.outputs, got_list))
        if ok:
            correct += 1
        else:
            failures.append(Failure(list(example.inputs), list(example.outputs), got_list))
    longest = max((len(e.inputs) for e in examples), default=0)
    return Verification(total=len(examples), correct=correct, failures=tuple(failures), max_length=longest)


def score_runtime(runtime: Any, examples: Sequence[Example], kind: OutputKind) -> Verification:
    """Runs `examples` through a loaded CoNN (the host's own forward pass over the weights) and
    scores them: the only way a verdict is reached. An input the CoNN cannot take scores wrong."""
    from autoconn.conn.runtime import ConnInputError

    if not examples:
        return Verification(total=0, correct=0)
    try:
        outputs: list[Any] = runtime.run([list(e.inputs) for e in examples])
    except ConnInputError:
        outputs = []
        for example in examples:
            try:
                outputs.append(runtime.run([list(example.inputs)])[0])
            except ConnInputError:
                outputs.append(None)
    return verify_outputs(examples, outputs, kind)


def by_length(examples: Sequence[Example], verification: Verification) -> list[dict[str, int]]:
    """Per input length: how many examples and how many right (for conn.json and the review)."""
    wrong: dict[int, int] = {}
    for failure in verification.failures:
        wrong[len(failure.inputs)] = wrong.get(len(failure.inputs), 0) + 1
    counts: dict[int, int] = {}
    for example in examples:
        counts[len(example.inputs)] = counts.get(len(example.inputs), 0) + 1
    return [{"length": n, "inputs": counts[n], "correct": counts[n] - wrong.get(n, 0)} for n in sorted(counts)]
