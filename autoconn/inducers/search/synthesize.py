"""From examples to ranked programs: run the search, lower, rank, render.

Ranking puts first the programs whose categorical Aggregates keep picking exactly one
position on synthetic inputs up to max_seq_len (the others miscompile or return None at
some length), then the fewest compiled layers, then the smallest cost.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from autoconn.inducers.search.build import to_rasp
from autoconn.inducers.search.dsl import Node
from autoconn.inducers.search.enumerator import Match, Search, SearchConfig
from autoconn.inducers.search.lower import describe, lower, tracr_layers
from autoconn.inducers.search.render import to_source
from autoconn.task import Example, Task


@dataclass
class Found:
    """One matching program, lowered and rendered."""

    node: Node  # as the search found it
    program: Node  # lowered: what is emitted and compiled
    layers: int
    cost: int
    synthetic_bad: int
    seconds: float  # search time when it was found
    enumerated: int  # expressions enumerated by then
    source: str
    summary: str

    def to_rasp(self) -> Any:
        """The rasp object built from the tree (trusted: our own callables, no exec)."""
        return to_rasp(self.program)

    @property
    def rank_key(self) -> tuple[int, int, int, int, float]:
        return (int(self.synthetic_bad > 0), self.layers, self.program.dag_cost, self.cost, self.seconds)


@dataclass
class Synthesis:
    found: list[Found]
    enumerated: int
    seconds: float
    level: int
    timed_out: bool
    first_match_seconds: float | None
    stats: dict[str, int] = field(default_factory=dict)
    stop_reason: str = ""  # found / budget / exhausted / error: ...
    refusals: list[str] = field(default_factory=list)  # tables refused as undetermined

    @property
    def why_stopped(self) -> str:
        """One sentence: why this search ended (for a failed run's message)."""
        if self.stop_reason == "found":
            return "enough matching programs were found"
        if self.stop_reason == "budget":
            what = "the time budget ran out"
        elif self.stop_reason == "exhausted":
            what = "the search space was exhausted (every program up to the cost limit was tried)"
        else:
            what = self.stop_reason or "the search ended"
        if self.refusals:
            what += "; refused as undetermined by the examples: " + " | ".join(self.refusals[:3])
        return what


def notes(node: Node) -> list[str]:
    """What the summary must say about inferred functions (tables, default-filled entries)."""
    out: list[str] = []
    for n in node.walk():
        if n.fn is not None and n.fn.note and n.fn.note not in out:
            out.append(n.fn.note)
    return out


def render(node: Node) -> tuple[Node, int, str, str]:
    """(lowered program, layers, source, summary) of a found expression."""
    program = lower(node)
    layers = tracr_layers(program)
    # Window reads are named in the summary ("ahead_2(tokens)") from the tree as found.
    text = describe(node) if any(n.window for n in node.walk()) else describe(program)
    said = notes(node)
    extra = f"; {'; '.join(said)}" if said else ""
    if len(text) > 400:
        text = text[:400] + " ..."
    summary = f"{text}  [{layers} layer{'s' if layers != 1 else ''}, cost {node.cost}{extra}]"
    header = (f"Found by the offline search: {text} ({layers} layer{'s' if layers != 1 else ''}, cost {node.cost}"
              f"{extra}).")
    return program, layers, to_source(program, header), summary


def finish(match: Match) -> Found:
    program, layers, source, summary = render(match.node)
    return Found(match.node, program, layers, match.cost, match.synthetic_bad, match.seconds,
                 match.enumerated, source, summary)


def _finish_or_none(match: Match) -> Found | None:
    try:
        return finish(match)
    except ValueError:  # not expressible as a compilable program (see lower.lower)
        return None


def synthesize(inputs: Sequence[Sequence[Any]], outputs: Sequence[Sequence[Any]], *, vocab: Sequence[Any],
               max_seq_len: int, numerical: bool, output_vocab: Sequence[Any] = (),
               budget_seconds: float = 10.0, want: int = 3, exclude: Collection[str] = (),
               config: SearchConfig | None = None) -> Synthesis:
    """Up to ``want`` programs matching every (input, output) pair, best first; sources in
    ``exclude`` (already tried) are left out, and the search goes on past them."""
    search = Search(inputs, outputs, vocab=vocab, max_seq_len=max_seq_len, numerical=numerical,
                    output_vocab=output_vocab, config=config)
    excluded = set(exclude)

    def accept(node: Node) -> bool:
        try:
            return render(node)[2] not in excluded
        except ValueError:
            return False

    result = search.run(budget_seconds, want=want, accept=accept if excluded else None)
    found = sorted((f for f in map(_finish_or_none, result.matches) if f is not None and f.source not in excluded),
                   key=lambda f: f.rank_key)
    unique: dict[str, Found] = {}
    for f in found:
        unique.setdefault(f.source, f)
    return Synthesis(list(unique.values()), result.enumerated, result.seconds, result.level,
                     result.timed_out, result.first_match_seconds, result.stats, result.stop_reason,
                     result.refusals)


def synthesize_task(task: Task, examples: Sequence[Example], *, budget_seconds: float = 10.0, want: int = 3,
                    exclude: Collection[str] = (), config: SearchConfig | None = None) -> Synthesis:
    """:func:`synthesize` with the vocab, kinds and max_seq_len of a task."""
    return synthesize([e.inputs for e in examples], [e.outputs for e in examples], vocab=task.input_vocab,
                      max_seq_len=task.max_seq_len, numerical=task.output_kind == "numerical",
                      output_vocab=task.output_vocab, budget_seconds=budget_seconds, want=want, exclude=exclude,
                      config=config)
