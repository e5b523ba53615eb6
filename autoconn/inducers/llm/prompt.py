"""The conversation sent to the model: primer, library demonstrations, the task, repair turns.

Texts live in ``autoconn/inducers/prompts/*.txt`` so a person can read and edit them without
touching code. Only induction examples reach the model, plus the counterexamples the pipeline
hands back for repair (induction, validation or oracle failures). Held-out failures of the
old "verify" stage say how many unseen examples failed, never which; sealed examples never
arrive here at all.

A repair request replays the most promising failure of each of the last rounds in full (code,
error, counterexamples) and lists every earlier attempt on one line (stage, error, rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

from autoconn.inducers.base import Feedback
from autoconn.inducers.llm.diagnose import diagnose, show_outputs
from autoconn.inducers.llm.fewshot import Demonstration
from autoconn.task import Example, Task

Message = dict[str, str]
STAGE_ORDER = ("lint", "screen", "exec", "evaluate", "timeout", "limit", "compile", "run", "check", "verify", "validate",
               "oracle")


@cache
def template(name: str) -> str:
    return resources.files("autoconn.inducers").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def show_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value)


def show_sequence(values: Sequence[Any]) -> str:
    return "[" + ", ".join(show_value(v) for v in values) + "]"


def show_output(outputs: Sequence[Any], shape: str) -> str:
    return show_value(outputs[0]) if shape == "broadcast" and outputs else show_sequence(outputs)


def output_phrase(kind: str, shape: str, vocab: Sequence[Any]) -> str:
    kinds = sorted({type(v).__name__ for v in vocab}) or ["number"]
    what = ("a number (numerical, compared with a tolerance)" if kind == "numerical"
            else f"a categorical value ({'/'.join(kinds)})")
    if shape == "broadcast":
        return f"{what} for the whole sequence, produced at every position"
    return f"{what} at every position"


def _near_duplicate(a: Example, b: Example) -> bool:
    """Same length and outputs, inputs differing in at most one position (from length 3 on):
    a second such example teaches almost nothing the first did not."""
    if len(a.inputs) != len(b.inputs) or len(a.inputs) < 3 or a.outputs != b.outputs:
        return False
    return sum(x != y for x, y in zip(a.inputs, b.inputs)) <= 1


def _spread(lengths: list[int], count: int) -> list[int]:
    """`count` of the sorted `lengths`, always the shortest and the longest, evenly spaced."""
    if count >= len(lengths):
        return list(lengths)
    if count <= 1:
        return [lengths[-1]]
    picks = {lengths[round(i * (len(lengths) - 1) / (count - 1))] for i in range(count)}
    return sorted(picks)


def pick_examples(examples: Sequence[Example], limit: int) -> list[Example]:
    """Up to `limit` examples: every length present (the longest always), duplicates and
    near-duplicates dropped before anything else is, then shortest first for reading."""
    unique: list[Example] = []
    seen: set[tuple[Any, ...]] = set()
    for example in examples:
        key = tuple((type(t).__name__, t) for t in example.inputs)
        if key not in seen:
            seen.add(key)
            unique.append(example)
    by_length: dict[int, list[Example]] = {}
    for example in unique:
        by_length.setdefault(len(example.inputs), []).append(example)
    lengths = _spread(sorted(by_length), limit)
    chosen: list[Example] = [by_length[n][0] for n in lengths]
    used = {id(e) for e in chosen}
    for allow_near in (False, True):  # distinct examples first; near-duplicates only to fill up
        round_index = 1
        while len(chosen) < limit and any(round_index < len(by_length[n]) for n in lengths):
            for n in lengths:
                group = by_length[n]
                if round_index >= len(group) or len(chosen) >= limit or id(group[round_index]) in used:
                    continue
                candidate = group[round_index]
                if not allow_near and any(_near_duplicate(candidate, c) for c in chosen):
                    continue
                chosen.append(candidate)
                used.add(id(candidate))
            round_index += 1
    order = {id(e): i for i, e in enumerate(unique)}
    return sorted(chosen, key=lambda e: (len(e.inputs), order[id(e)]))


def task_message(task: Task, induction: Sequence[Example], max_examples: int) -> str:
    shown = pick_examples(induction, max_examples)
    note = "" if len(shown) == len(induction) else f" ({len(shown)} of {len(induction)}, every length shown)"
    lengths = sorted({len(e.inputs) for e in shown})
    return template("task").format(
        name=task.name,
        description=task.description or "(not given: infer it from the examples)",
        max_seq_len=task.max_seq_len,
        vocab=show_sequence(task.input_vocab),
        output_phrase=output_phrase(task.output_kind, task.output_shape, task.output_vocab),
        output_values=show_sequence(task.output_vocab) if task.output_kind == "categorical" else "numbers",
        examples_note=note,
        shown_lengths=(f"{lengths[0]} to {lengths[-1]}" if lengths and lengths[0] != lengths[-1]
                       else str(lengths[0] if lengths else 0)),
        examples="\n".join(f"{show_sequence(e.inputs)} -> {show_output(e.outputs, task.output_shape)}" for e in shown),
    )


def demonstration_text(demo: Demonstration) -> str:
    domain = f"proven on inputs of 1 to {demo.proven_max_length} tokens" if demo.proven_max_length else "proven length unknown"
    return template("fewshot").format(
        name=demo.name, description=demo.description, vocab=show_sequence(demo.vocab),
        output_phrase=output_phrase(demo.output_kind, demo.output_shape, demo.output_vocab),
        domain=domain, why=demo.why or "similar task features",
        examples="\n".join(f"{show_sequence(i)} -> {show_value(o) if not isinstance(o, tuple) else show_sequence(o)}"
                           for i, o in demo.examples) or "(none)",
        source=demo.source.strip())


def first_turn(task: Task, induction: Sequence[Example], demos: Sequence[Demonstration], max_examples: int) -> list[Message]:
    system = "\n\n".join([template("system").strip(), template("primer").strip(), template("answer_format").strip()])
    parts = []
    if demos:
        parts.append("Programs from this project's verified library, chosen because they behave most like your task "
                     "on your examples:\n")
        parts.extend(demonstration_text(d) for d in demos)
    parts.append(task_message(task, induction, max_examples))
    parts.append(template("answer_format").strip())
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def repair_text(feedback: Feedback, history: Sequence[Feedback] = (), shape: str = "sequence") -> str:
    """One rejected attempt as a user turn: the error with its rule and fix, counterexamples
    (not for held-out "verify" failures), and, on the last turn, every attempt so far."""
    found = diagnose(feedback)
    details = ""
    if found.counterexamples:
        source = {"validate": " (validation examples, not among those shown above)",
                  "oracle": " (checked against the user's rule)"}.get(found.stage, "")
        lines = [f"- input {show_sequence(c.inputs)}: expected {show_outputs(c.expected, shape)}, "
                 f"your program gave {show_outputs(c.got, shape)}" for c in found.counterexamples]
        details = f"Counterexamples{source}:\n" + "\n".join(lines) + "\n"
    if found.type_slip:
        headline = (f"That program was rejected at the {found.stage} stage: its values are right but their type is wrong "
                    f"({found.type_slip}).")
    elif found.rule:
        headline = f"That program was rejected at the {found.stage} stage (primer rule {found.rule})."
    else:
        headline = f"That program was rejected at the {found.stage} stage."
    return template("repair").format(headline=headline, message=found.message, details=details,
                                     history=history_text(history, shape), fix=found.fix).strip()


def history_text(history: Sequence[Feedback], shape: str = "sequence") -> str:
    if len(history) < 2:
        return ""
    lines = [f"{number}. {diagnose(item).one_line(shape=shape)}" for number, item in enumerate(history, start=1)]
    return ("\nEvery attempt so far, oldest first (do not repeat these mistakes):\n" + "\n".join(lines) + "\n")


def progress(feedback: Feedback) -> tuple[int, int]:
    """How far an attempt got (later stage, then fewer counterexamples): the best base to repair."""
    stage = STAGE_ORDER.index(feedback.stage) if feedback.stage in STAGE_ORDER else 0
    return stage, -len(feedback.counterexamples)


def repair_chain(feedback: Sequence[Feedback], round_size: int, turns: int) -> list[Feedback]:
    """The most promising failure of each of the last `turns` rounds, oldest first."""
    chain: list[Feedback] = []
    end = len(feedback)
    while end > 0 and len(chain) < turns:
        round_items = feedback[max(0, end - round_size):end]
        chain.append(max(round_items, key=progress))
        end -= round_size
    return list(reversed(chain))


def conversation(task: Task, induction: Sequence[Example], demos: Sequence[Demonstration],
                 feedback: Sequence[Feedback], *, max_examples: int, round_size: int, repair_turns: int) -> list[Message]:
    messages = first_turn(task, induction, demos, max_examples)
    chain = repair_chain(feedback, round_size, repair_turns)
    for position, failed in enumerate(chain):
        last = position == len(chain) - 1
        messages.append({"role": "assistant", "content": f"```python\n{failed.source.strip()}\n```"})
        messages.append({"role": "user", "content": repair_text(failed, feedback if last else (), task.output_shape)})
    return messages
