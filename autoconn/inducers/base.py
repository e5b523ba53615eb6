"""The interface every inducer implements: given a task and feedback, propose candidate sources.

Inducers are stateless between calls (the pipeline state must stay plain data): what was
already tried arrives back as feedback, so an inducer skips or repairs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, Sequence

from autoconn.task import Example, Task, Value


@dataclass(frozen=True)
class Candidate:
    """Python source binding `program` to a rasp.SOp, plus where it came from."""

    source: str
    origin: str  # "search", "llm", "user", ...
    summary: str = ""  # one line a person can read (e.g. the expression)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Counterexample:
    inputs: tuple[Any, ...]
    expected: tuple[Value, ...]
    got: tuple[Any, ...]


@dataclass(frozen=True)
class Feedback:
    """Why a candidate was rejected, in words an inducer (or an LLM) can act on."""

    source: str
    stage: str  # screen | exec | evaluate | compile | run | check | verify | timeout
    message: str
    counterexamples: tuple[Counterexample, ...] = field(default_factory=tuple)


class Inducer(Protocol):
    name: str

    def propose(
        self,
        task: Task,
        induction: Sequence[Example],
        feedback: Sequence[Feedback],
        *,
        budget_seconds: float,
        limit: int,
    ) -> list[Candidate]:
        """At most `limit` new candidates, best first, within `budget_seconds`; [] when out of ideas."""
        ...
