"""The interface every inducer implements: given a task and feedback, propose candidate sources.

Inducers are stateless between calls (the pipeline state must stay plain data): what was
already tried arrives back as feedback, so an inducer skips or repairs it. Everything a call
produced besides candidates (its transcript, what it used, why it stopped, candidates it
rejected itself) comes back in the :class:`Proposal`, never as attributes to probe later.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

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


@dataclass(frozen=True)
class Proposal:
    """What one `propose` call returns: the candidates, best first, and what the run records about the call."""

    candidates: tuple[Candidate, ...] = ()
    rejected: tuple[Feedback, ...] = ()  # candidates the inducer stopped itself (the LLM's lint): kept as the run's feedback
    transcript: tuple[Mapping[str, Any], ...] = ()  # what was asked and answered, saved in the run folder
    usage: Mapping[str, Any] = field(default_factory=dict)  # what this call used (LLM calls, tokens): numbers add up per run
    stop_message: str = ""  # why no candidate came, in words for a person ("the time budget ran out")
    error: str = ""  # the inducer failed (endpoint down...): the pipeline moves on to the next inducer
    compare_candidates: bool = False  # unordered samples: validate every one, keep the smallest


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
    ) -> Proposal:
        """At most `limit` new candidates, best first, within `budget_seconds`; none when out of ideas."""
        ...
