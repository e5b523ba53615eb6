"""Few-shot demonstrations chosen from the verified library, closest to the task first.

Every CoNN the pipeline registers becomes a candidate demonstration for the next induction,
so the library teaches the model what compiles here. Closeness is measured on what a task
shows before any program exists: the kind of input vocabulary, the output kind and shape,
the output value type, words shared by the descriptions, and the size of the vocabularies;
shorter programs win ties (they teach idioms, not one long derivation).
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from autoconn.conn.artifact import Library, LibraryEntry, LibraryError
from autoconn.task import Task

WORD = re.compile(r"[a-z]+")
STOPWORDS = frozenset("a an the of at in on to is and or each every its it that this for by with as be are from".split())
EXAMPLE_LENGTHS = (2, 3, 5)


@dataclass(frozen=True)
class Demonstration:
    """One verified library program with a few input/output pairs computed by its CoNN."""

    name: str
    description: str
    vocab: tuple[Any, ...]
    output_kind: str
    output_shape: str
    output_vocab: tuple[Any, ...]
    source: str
    examples: tuple[tuple[tuple[Any, ...], Any], ...]
    score: float


def value_kind(values: Sequence[Any]) -> str:
    kinds = {"bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "float" if isinstance(v, float) else "str" for v in values}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def words(text: str) -> set[str]:
    return {w for w in WORD.findall((text or "").lower()) if w not in STOPWORDS and len(w) > 1}


def closeness(task: Task, meta: dict[str, Any], source_lines: int) -> float:
    """Higher is closer. Structural agreement dominates; shared description words break ties."""
    score = 0.0
    score += 3.0 if meta.get("output_shape") == task.output_shape else 0.0
    score += 3.0 if meta.get("output_kind") == task.output_kind else 0.0
    score += 2.0 if value_kind(meta.get("vocab") or []) == value_kind(task.input_vocab) else 0.0
    if task.output_kind == "categorical" and meta.get("output_vocab"):
        score += 1.0 if value_kind(meta["output_vocab"]) == value_kind(task.output_vocab) else 0.0
    shared = words(task.description) & words(meta.get("description", ""))
    union = words(task.description) | words(meta.get("description", ""))
    score += 4.0 * (len(shared) / len(union) if union else 0.0)
    score -= 0.02 * source_lines
    return score


def program_body(program_text: str) -> str:
    """program.py without the library's header docstring (the model needs only the code)."""
    try:
        module = ast.parse(program_text)
    except SyntaxError:
        return program_text
    body = module.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        lines = program_text.splitlines()
        return "\n".join(lines[body[0].end_lineno:]).strip() + "\n"
    return program_text


def choose_demonstrations(task: Task, library_dir: str | Path, count: int, *,
                          cache: Optional[dict[str, Demonstration]] = None) -> list[Demonstration]:
    """The `count` library entries closest to `task`, never one registered from the same task file."""
    library = Library(library_dir)
    try:
        entries = list(library.entries())
    except LibraryError:
        return []
    scored: list[tuple[float, LibraryEntry, str]] = []
    for entry in entries:
        if (entry.meta.get("task") or {}).get("sha256") == task.sha256:
            continue  # showing the answer to this very task would not be induction
        if not entry.program_path.exists():
            continue
        source = program_body(entry.program_path.read_text(encoding="utf-8"))
        scored.append((closeness(task, entry.meta, source.count("\n")), entry, source))
    scored.sort(key=lambda item: (-item[0], item[1].name))
    chosen = []
    for score, entry, source in scored[:count]:
        key = entry.meta.get("source_sha256", entry.name)
        if cache is not None and key in cache:
            chosen.append(cache[key])
            continue
        demo = Demonstration(
            name=entry.name, description=entry.meta.get("description") or entry.name,
            vocab=tuple(entry.meta.get("vocab") or ()), output_kind=entry.meta.get("output_kind", ""),
            output_shape=entry.meta.get("output_shape", ""), output_vocab=tuple(entry.meta.get("output_vocab") or ()),
            source=source,
            examples=_run_examples(entry), score=round(score, 3))
        if cache is not None:
            cache[key] = demo
        chosen.append(demo)
    return chosen


def _run_examples(entry: LibraryEntry) -> tuple[tuple[tuple[Any, ...], Any], ...]:
    """A few input/output pairs from the CoNN itself (its weights, not program.py: no exec)."""
    vocab = list(entry.meta.get("vocab") or [])
    if not vocab:
        return ()
    rng = random.Random(entry.name)
    inputs = [tuple(rng.choice(vocab) for _ in range(length)) for length in EXAMPLE_LENGTHS]
    try:
        outputs = entry.runtime().run([list(i) for i in inputs])
    except Exception:  # a damaged entry still teaches through its source
        return ()
    broadcast = entry.meta.get("output_shape") == "broadcast"
    return tuple((i, (o[0] if broadcast else tuple(o))) for i, o in zip(inputs, outputs))
