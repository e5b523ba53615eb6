"""The offline search as an :class:`~autoconn.inducers.base.Inducer`.

Stateless: the search is deterministic, so a later call finds the same programs again and
skips the ones already tried (they come back in ``feedback``). Counterexamples reported by
verification are examples too; they join the induction examples of the next call, so the
next search is pruned by them.
"""

from __future__ import annotations

from typing import Sequence

from autoconn.inducers.base import Candidate, Feedback
from autoconn.inducers.search.enumerator import SearchConfig
from autoconn.inducers.search.synthesize import synthesize_task
from autoconn.task import Example, Task


def counterexample_examples(task: Task, feedback: Sequence[Feedback], known: Sequence[Example]) -> list[Example]:
    """Counterexamples from feedback that are usable examples and not yet known."""
    seen = {e.inputs for e in known}
    vocab = set(task.input_vocab)
    out: list[Example] = []
    for fb in feedback:
        for ce in fb.counterexamples:
            inputs, expected = tuple(ce.inputs), tuple(ce.expected)
            if (inputs in seen or not inputs or len(expected) != len(inputs) or len(inputs) > task.max_seq_len
                    or any(t not in vocab for t in inputs)):
                continue
            seen.add(inputs)
            out.append(Example(inputs, expected))
    return out


class SearchInducer:
    """Typed bottom-up enumeration over the compilable part of RASP (see ``enumerator``)."""

    name = "search"

    def __init__(self, config: SearchConfig | None = None, *, learn_from_counterexamples: bool = True) -> None:
        self.config = config
        self.learn_from_counterexamples = learn_from_counterexamples
        # Why the last call ended: "found", "budget", "exhausted" or "error: ...", and a
        # sentence for a person (``last_stop_message``) the pipeline can print when no
        # candidate came back ("the time budget ran out" rather than "no more candidates").
        self.last_stop_reason: str = ""
        self.last_stop_message: str = ""

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> list[Candidate]:
        """Up to ``limit`` new matching programs, best first; [] when none is found in time."""
        if limit <= 0:
            return []
        tried = {fb.source for fb in feedback}
        examples = list(induction)
        if self.learn_from_counterexamples:
            examples += counterexample_examples(task, feedback, examples)
        try:
            result = synthesize_task(task, examples, budget_seconds=budget_seconds, want=limit, exclude=tried,
                                     config=self.config)
        except Exception as err:  # noqa: BLE001 - reported as the stop reason, then raised as before
            self.last_stop_reason = f"error: {type(err).__name__}: {err}"
            self.last_stop_message = f"the search failed: {type(err).__name__}: {err}"
            raise
        self.last_stop_reason = result.stop_reason
        self.last_stop_message = result.why_stopped
        return [Candidate(source=f.source, origin=self.name, summary=f.summary) for f in result.found[:limit]]
