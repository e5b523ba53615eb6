"""The offline search as an :class:`~autoconn.inducers.base.Inducer`.

Stateless: the search is deterministic, so a later call finds the same programs again and
skips the ones already tried (they come back in ``feedback``); why a call found nothing comes
back in the Proposal's ``stop_message``. Counterexamples reported by
verification are examples too; they join the induction examples of the next call, so the
next search is pruned by them.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoconn.inducers.base import Candidate, Feedback, Proposal
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

    def propose(self, task: Task, induction: Sequence[Example], feedback: Sequence[Feedback], *,
                budget_seconds: float, limit: int) -> Proposal:
        """Up to ``limit`` new matching programs, best first; none when none is found in time
        (``stop_message`` then says why: budget spent, space exhausted, tables refused)."""
        if limit <= 0:
            return Proposal()
        tried = {fb.source for fb in feedback}
        examples = list(induction)
        if self.learn_from_counterexamples:
            examples += counterexample_examples(task, feedback, examples)
        try:
            result = synthesize_task(task, examples, budget_seconds=budget_seconds, want=limit, exclude=tried,
                                     config=self.config)
        except Exception as err:  # noqa: BLE001 - a search bug ends this inducer's turn, with the reason
            return Proposal(error=f"{type(err).__name__}: {err}")
        found = tuple(Candidate(source=f.source, origin=self.name, summary=f.summary) for f in result.found[:limit])
        return Proposal(candidates=found, stop_message="" if found else result.why_stopped,
                        usage={"stop": result.stop_reason})
