"""The conversation sent to the model: primer, library demonstrations, the task, repair turns.

Texts live in ``autoconn/inducers/prompts/*.txt`` so a person can read and edit them without
touching code. Only induction examples ever reach the model: feedback from the held-out check
says how many unseen examples failed, never which.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Any, Sequence

from autoconn.inducers.base import Feedback
from autoconn.inducers.llm.fewshot import Demonstration
from autoconn.task import Example, Task

Message = dict[str, str]
STAGE_ORDER = ("screen", "exec", "evaluate", "timeout", "compile", "run", "check", "verify")
REPAIR_HINTS = {
    "screen": "Use only `from tracr.rasp import rasp` (and `from tracr.compiler import lib`) and plain expressions.",
    "exec": "The code must run as is: check every name and that `program` is bound to a rasp.SOp.",
    "evaluate": "The program must evaluate on every example: make every function total (rule 4).",
    "compile": "Check the compiler rules in the primer: encodings, categorical Select keys, total functions, one selected position per categorical Aggregate.",
    "run": "Check the compiler rules in the primer; the compiled model could not run on the examples.",
    "check": "Compare what your program computes with the expected outputs, find the rule that explains every example, and rewrite the program.",
    "verify": "It fits the examples you were shown but not unseen ones (often longer inputs): find the general rule, derived from length and indices, not one fitted to the examples.",
    "timeout": "Make it simpler: fewer operations and smaller value sets.",
}


@lru_cache(maxsize=None)
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
    what = "a number (numerical, compared with a tolerance)" if kind == "numerical" else f"a categorical value ({'/'.join(kinds)})"
    if shape == "broadcast":
        return f"{what} for the whole sequence, produced at every position"
    return f"{what} at every position"


def pick_examples(examples: Sequence[Example], limit: int) -> list[Example]:
    """Up to `limit` examples covering every length, shortest first (cheap to read, all lengths seen)."""
    by_length: dict[int, list[Example]] = {}
    for example in examples:
        by_length.setdefault(len(example.inputs), []).append(example)
    chosen: list[Example] = []
    round_index = 0
    while len(chosen) < limit and any(round_index < len(group) for group in by_length.values()):
        for length in sorted(by_length):
            group = by_length[length]
            if round_index < len(group) and len(chosen) < limit:
                chosen.append(group[round_index])
        round_index += 1
    return sorted(chosen, key=lambda e: (len(e.inputs), chosen.index(e)))


def task_message(task: Task, induction: Sequence[Example], max_examples: int) -> str:
    shown = pick_examples(induction, max_examples)
    note = "" if len(shown) == len(induction) else f" ({len(shown)} of {len(induction)})"
    return template("task").format(
        name=task.name,
        description=task.description or "(not given: infer it from the examples)",
        max_seq_len=task.max_seq_len,
        vocab=show_sequence(task.input_vocab),
        output_phrase=output_phrase(task.output_kind, task.output_shape, task.output_vocab),
        output_values=show_sequence(task.output_vocab) if task.output_kind == "categorical" else "numbers",
        examples_note=note,
        examples="\n".join(f"{show_sequence(e.inputs)} -> {show_output(e.outputs, task.output_shape)}" for e in shown),
    )


def demonstration_text(demo: Demonstration) -> str:
    return template("fewshot").format(
        name=demo.name, description=demo.description, vocab=show_sequence(demo.vocab),
        output_phrase=output_phrase(demo.output_kind, demo.output_shape, demo.output_vocab),
        examples="\n".join(f"{show_sequence(i)} -> {show_value(o) if not isinstance(o, tuple) else show_sequence(o)}"
                           for i, o in demo.examples) or "(none)",
        source=demo.source.strip())


def first_turn(task: Task, induction: Sequence[Example], demos: Sequence[Demonstration], max_examples: int) -> list[Message]:
    system = "\n\n".join([template("system").strip(), template("primer").strip(), template("answer_format").strip()])
    parts = []
    if demos:
        parts.append("Programs from this project's verified library, chosen as closest to your task:\n")
        parts.extend(demonstration_text(d) for d in demos)
    parts.append(task_message(task, induction, max_examples))
    parts.append(template("answer_format").strip())
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(parts)}]


def repair_text(feedback: Feedback) -> str:
    """One rejected attempt as a user turn. Held-out (verify) failures carry no example."""
    details = ""
    if feedback.stage != "verify" and feedback.counterexamples:
        lines = [f"- input {show_sequence(c.inputs)}: expected {show_sequence(c.expected)}, your program gave {show_sequence(c.got)}"
                 for c in feedback.counterexamples]
        details = "Counterexamples:\n" + "\n".join(lines) + "\n"
    return template("repair").format(stage=feedback.stage, message=feedback.message.strip(), details=details,
                                     hint=REPAIR_HINTS.get(feedback.stage, "")).strip()


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
    for failed in repair_chain(feedback, round_size, repair_turns):
        messages.append({"role": "assistant", "content": f"```python\n{failed.source.strip()}\n```"})
        messages.append({"role": "user", "content": repair_text(failed)})
    return messages
