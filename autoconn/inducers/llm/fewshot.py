"""Few-shot demonstrations chosen from the verified library by behaviour, closest first.

Every CoNN the pipeline registers becomes a candidate demonstration for the next induction.
Closeness is measured on what the CoNNs *do*: each library CoNN runs (its stored weights,
through the fast runtime, never program.py) on the task's induction inputs that fit its
vocabulary and proven length, and its outputs are compared with the task's outputs, directly
and through simple transforms: a relabeling of output values that is consistent across the
examples (reverse then +1 mod 10 is reverse, relabeled), the last position of a per-position
CoNN against a whole-sequence output (a balanced-prefix CoNN read at the end is "balanced"),
and an order-preserving renaming of input tokens when the vocabularies differ. The surface
features (output kind and shape, value types, shared description words, program length)
only break ties, and at least one demonstration has the task's output kind when the library
has one.

A demonstration is shown with inputs inside its proven domain: drawn from its own task file's
examples (so a "sort distinct digits" CoNN is never shown repeating digits), kept only where
the CoNN's output equals the file's, at lengths up to the length it was verified on.
"""

from __future__ import annotations

import ast
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autoconn.conn.artifact import Library, LibraryEntry, LibraryError
from autoconn.task import Example, Task, load_task, sort_key

WORD = re.compile(r"[a-z]+")
STOPWORDS = frozenset("a an the of at in on to is and or each every its it that this for by with as be are from".split())
DEMO_EXAMPLES = 4
NUMERIC_DIGITS = 4
MIN_FIT = 2  # task examples a CoNN must run on before its behaviour counts


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
    why: str = ""  # how its behaviour matched the task, in words
    proven_max_length: int = 0
    behaviour: float = 0.0


@dataclass(frozen=True)
class Match:
    """How closely a CoNN's outputs explain the task's outputs (0: not at all, 1: exactly)."""

    score: float
    why: str
    fitted: int  # task examples it ran on


NO_MATCH = Match(0.0, "", 0)


def value_kind(values: Sequence[Any]) -> str:
    kinds = {"bool" if isinstance(v, bool) else "int" if isinstance(v, int) else "float" if isinstance(v, float) else "str"
             for v in values}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def words(text: str) -> set[str]:
    return {w for w in WORD.findall((text or "").lower()) if w not in STOPWORDS and len(w) > 1}


def closeness(task: Task, meta: dict[str, Any], source_lines: int) -> float:
    """Surface features (tie-breakers): output shape, kind, value types, shared description words, brevity."""
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


def proven_length(meta: dict[str, Any]) -> int:
    """How long an input this CoNN is proven on: `verified.max_length`, else the older
    `verification.max_length`, else its compiled maximum."""
    compiled = int(meta.get("max_seq_len") or (meta.get("spec") or {}).get("max_seq_len") or 0)
    for block in ("verified", "verification"):
        value = (meta.get(block) or {}).get("max_length")
        if isinstance(value, int) and value > 0:
            return min(value, compiled) if compiled else value
    return compiled


def program_body(program_text: str) -> str:
    """program.py without the library's header docstring (the model needs only the code)."""
    try:
        module = ast.parse(program_text)
    except SyntaxError:
        return program_text
    body = module.body
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        lines = program_text.splitlines()
        return "\n".join(lines[first.end_lineno:]).strip() + "\n"
    return program_text


# -- behaviour -------------------------------------------------------------------------

def _typed(value: Any) -> tuple[str, Any]:
    """A comparable key that keeps True and 1 apart and rounds numbers."""
    if isinstance(value, float):
        rounded = round(value, NUMERIC_DIGITS)
        return ("num", int(rounded) if rounded.is_integer() else rounded)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("num", value)
    return ("str", value)


def _gain(correct: float, baseline: float) -> float:
    return max(0.0, (correct - baseline) / (1.0 - baseline)) if baseline < 1.0 else 0.0


def _view_scores(pairs: list[tuple[Any, Any]]) -> tuple[float, float, dict[Any, Any]]:
    """(exact, relabeled, mapping) for (conn value, task value) pairs, each as a gain over the
    best constant guess, so a CoNN that outputs one value everywhere scores 0.

    relabeled is leave-one-out: a pair counts as explained when the other pairs with the same
    CoNN value agree on its task value, so a mapping fitted to single occurrences earns nothing."""
    if not pairs:
        return 0.0, 0.0, {}
    task_counts = Counter(t for _, t in pairs)
    baseline = task_counts.most_common(1)[0][1] / len(pairs)
    exact = sum(c == t for c, t in pairs) / len(pairs)
    groups: dict[Any, Counter] = defaultdict(Counter)
    for c, t in pairs:
        groups[c][t] += 1
    explained = counted = 0
    for c, t in pairs:
        group = groups[c]
        if sum(group.values()) < 2:
            continue
        counted += 1
        others = group.copy()
        others[t] -= 1
        best = max(others.values())
        if others[t] == best and sum(1 for v in others.values() if v == best) == 1:
            explained += 1
    # The constant guess under the same leave-one-out rule is the majority value.
    relabeled = _gain(explained / counted, baseline) * (counted / len(pairs)) if counted else 0.0
    mapping = {c: group.most_common(1)[0][0] for c, group in groups.items()}
    return _gain(exact, baseline), relabeled, mapping


def _order_renaming(ours: Sequence[Any], theirs: Sequence[Any]) -> dict[Any, Any] | None:
    """Order-preserving renaming of our tokens onto theirs ('[' ']' onto '(' ')'), or None."""
    ours = sorted(ours, key=sort_key)
    theirs = sorted(theirs, key=sort_key)
    if not ours or len(ours) > len(theirs):
        return None
    return {_typed(a): b for a, b in zip(ours, theirs)}


def _fits(task_examples: Sequence[Example], vocab: Sequence[Any], limit: int
          ) -> tuple[list[Example], list[list[Any]], list[dict[Any, Any]], str, float]:
    """The task examples a CoNN can run on, as its inputs: as they are when enough fit its
    vocabulary; else with the task's tokens renamed in order onto its vocabulary; else, for
    a smaller vocabulary, renamed example by example (outputs that are tokens are renamed
    back, so a token-moving CoNN such as reverse still compares). Returns (examples, inputs,
    back-renamings per example, a note, a confidence factor)."""
    known = {_typed(t) for t in vocab}
    short = [e for e in task_examples if len(e.inputs) <= limit]
    direct = [e for e in short if all(_typed(t) in known for t in e.inputs)]
    if len(direct) >= MIN_FIT:
        return direct, [list(e.inputs) for e in direct], [{} for _ in direct], "", 1.0
    renaming = _order_renaming(sorted({t for e in task_examples for t in e.inputs}, key=sort_key), vocab)
    if renaming is not None:
        back = {_typed(v): k[1] for k, v in renaming.items()}
        shown = ", ".join(f"{k[1]!r}->{v!r}" for k, v in list(renaming.items())[:8])
        return (short, [[renaming[_typed(t)] for t in e.inputs] for e in short], [back for _ in short],
                f" with your tokens renamed in order onto its vocabulary ({shown})", 0.9)
    chosen, inputs, backs = [], [], []
    for example in short:
        renaming = _order_renaming(sorted(set(example.inputs), key=sort_key), vocab)
        if renaming is None:
            continue
        chosen.append(example)
        inputs.append([renaming[_typed(t)] for t in example.inputs])
        backs.append({_typed(v): k[1] for k, v in renaming.items()})
    return chosen, inputs, backs, " (each example's tokens renamed in order onto its vocabulary)", 0.85


def _show_mapping(mapping: dict[Any, Any], limit: int = 6) -> str:
    items = sorted(((c, t) for c, t in mapping.items() if c != t), key=lambda kv: str(kv[0]))
    shown = ", ".join(f"{_plain(c)!r}->{t[1]!r}" for c, t in items[:limit])
    return shown + (", ..." if len(items) > limit else "")


def _plain(key: Any) -> Any:
    """A typed key back to a readable value ((conn value, token) pairs stay pairs)."""
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], tuple):
        return (key[0][1], key[1][1])
    return key[1] if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) else key


def behaviour_match(task: Task, induction: Sequence[Example], entry: LibraryEntry,
                    run: Callable[[list[list[Any]]], list[list[Any]]]) -> Match:
    """How closely `entry`'s CoNN, run on the task's inputs, explains the task's outputs."""
    meta = entry.meta
    vocab = list(meta.get("vocab") or [])
    limit = proven_length(meta)
    if not vocab or not limit:
        return NO_MATCH
    fitting, inputs, backs, note, factor = _fits(induction, vocab, limit)
    fitting, inputs, backs = fitting[:RUN_ROWS], inputs[:RUN_ROWS], backs[:RUN_ROWS]
    if len(fitting) < MIN_FIT:
        return NO_MATCH
    try:
        raw = run(inputs)
    except Exception:  # a damaged entry just does not match
        return NO_MATCH
    outputs = [[back.get(_typed(v), v) for v in out] for out, back in zip(raw, backs)]
    views: dict[str, tuple[list[tuple[Any, Any]], float, str]] = {
        "per_position": ([(_typed(o), _typed(t)) for out, e in zip(outputs, fitting) for o, t in zip(out, e.outputs)],
                         1.0, "its outputs equal"),
        "with_token": ([((_typed(o), _typed(x)), _typed(t)) for out, e in zip(outputs, fitting)
                        for o, x, t in zip(out, e.inputs, e.outputs)],
                       0.75, "its outputs, together with the input token at the same position, match"),
    }
    if task.output_shape == "broadcast" and meta.get("output_shape") != "broadcast":
        views["last_position"] = ([(_typed(out[-1]), _typed(e.outputs[-1])) for out, e in zip(outputs, fitting) if out],
                                  0.95, "its output at the last position equals")
    best = NO_MATCH
    confidence = len(fitting) / (len(fitting) + 2) * factor
    on = f"on {len(fitting)} of your examples{note}"
    for view, (pairs, weight, where) in views.items():
        exact, relabeled, mapping = _view_scores(pairs)
        if exact > 0 and view != "with_token":
            agree = sum(c == t for c, t in pairs)
            candidate = Match(exact * weight * confidence,
                              f"{where} your task's outputs at {agree} of {len(pairs)} positions {on}", len(fitting))
            if candidate.score > best.score:
                best = candidate
        if relabeled > 0:
            shown = _show_mapping(mapping)
            candidate = Match(0.8 * relabeled * weight * confidence,
                              f"{where.rsplit(' ', 1)[0]} match{'es' if where.endswith('equals') else ''} your task's "
                              f"outputs {on} after relabeling each value consistently"
                              + (f" ({shown})" if shown else ""), len(fitting))
            if candidate.score > best.score:
                best = candidate
    return best


# -- demonstration inputs --------------------------------------------------------------

def _task_file(entry: LibraryEntry, library_dir: Path) -> Path | None:
    recorded = (entry.meta.get("task") or {}).get("path")
    if not recorded:
        return None
    path = Path(recorded)
    places = [path] if path.is_absolute() else [Path.cwd() / path, library_dir.parent / path, library_dir / path]
    return next((p for p in places if p.is_file()), None)


def _spread_examples(examples: list[Example], count: int) -> list[Example]:
    """`count` examples of distinct lengths from short (but not 1 when longer exist) to the longest;
    at each length the one whose outputs vary most, and whole-sequence outputs that differ
    between examples where the file has them (four times False teaches little)."""
    by_length: dict[int, Example] = {}
    for example in examples:
        current = by_length.get(len(example.inputs))
        if current is None or len(set(map(_typed, example.outputs))) > len(set(map(_typed, current.outputs))):
            by_length[len(example.inputs)] = example
    lengths = sorted(by_length)
    if len(lengths) > count and lengths[0] == 1:
        lengths = lengths[1:]
    if len(lengths) > count:
        lengths = [lengths[round(i * (len(lengths) - 1) / (count - 1))] for i in range(count)] if count > 1 else [lengths[-1]]
    chosen = [by_length[n] for n in dict.fromkeys(lengths)]
    final_values = {_typed(e.outputs[-1]) for e in chosen}
    if len(final_values) == 1 and len(chosen) > 1:  # show a different final output too, at a length near one shown
        other = [e for e in examples if _typed(e.outputs[-1]) not in final_values and len(e.inputs) > 1]
        if other:
            swap = min(range(len(chosen) - 1), key=lambda i: min(abs(len(chosen[i].inputs) - len(e.inputs)) for e in other))
            chosen[swap] = min(other, key=lambda e: abs(len(e.inputs) - len(chosen[swap].inputs)))
    for example in examples:  # a short task file: fill up with other examples
        if len(chosen) >= count:
            break
        if example not in chosen:
            chosen.append(example)
    return sorted(chosen, key=lambda e: len(e.inputs))


def demo_examples(entry: LibraryEntry, library_dir: Path, run: Callable[[list[list[Any]]], list[list[Any]]],
                  count: int = DEMO_EXAMPLES) -> tuple[tuple[tuple[tuple[Any, ...], Any], ...], str]:
    """A few input/output pairs inside the CoNN's proven domain, computed by its weights.

    Inputs come from the entry's own task file when it is found (only examples the CoNN gets
    right, no longer than it was verified on); otherwise random inputs within that length."""
    meta = entry.meta
    vocab = list(meta.get("vocab") or [])
    limit = proven_length(meta)
    broadcast = meta.get("output_shape") == "broadcast"
    if not vocab or not limit:
        return (), "none"
    path = _task_file(entry, library_dir)
    if path is not None:
        try:
            own = load_task(path)
            known = {_typed(t) for t in vocab}
            usable = [e for e in own.examples if len(e.inputs) <= limit and all(_typed(t) in known for t in e.inputs)]
            picked = _spread_examples(usable, count * 2)
            outputs = run([list(e.inputs) for e in picked]) if picked else []
            right = [(e, o) for e, o in zip(picked, outputs) if [_typed(v) for v in o] == [_typed(v) for v in e.outputs]]
            spread = _spread_examples([x for x, _ in right], count)
            right = [(e, o) for e, o in right if e in spread]
            if len(right) >= min(2, count):
                return tuple((tuple(e.inputs), (o[0] if broadcast else tuple(o))) for e, o in right), "task file"
        except Exception:  # an unreadable task file: fall back to random inputs
            pass
    rng = random.Random(entry.name)
    lengths = sorted({max(1, min(limit, n)) for n in (2, (limit + 2) // 2, limit)})
    inputs = [tuple(rng.choice(vocab) for _ in range(n)) for n in lengths]
    try:
        outputs = run([list(i) for i in inputs])
    except Exception:  # a damaged entry still teaches through its source
        return (), "none"
    return tuple((i, (o[0] if broadcast else tuple(o))) for i, o in zip(inputs, outputs)), "random"


# -- choosing --------------------------------------------------------------------------

# Loaded CoNNs, shared by every inducer in this process (a bench run asks for the same library
# task after task); keyed by the weights file and its modification time.
_RUNTIMES: dict[tuple[str, int, str], Any] = {}
RUN_ROWS = 64  # every call is padded to one batch shape, so each CoNN is jit-compiled once


def _runner(entry: LibraryEntry, cache: dict[Any, Any] | None = None) -> Callable[[list[list[Any]]], list[list[Any]]]:
    """The entry's CoNN as a function over at most RUN_ROWS inputs, loaded once per process."""

    def run(inputs: list[list[Any]]) -> list[list[Any]]:
        weights = entry.path / "weights.npz"
        stamp = weights.stat().st_mtime_ns if weights.exists() else 0
        key = (str(weights), stamp, str(entry.meta.get("source_sha256", entry.name)))
        runtime = _RUNTIMES.get(key)
        if runtime is None:
            runtime = _RUNTIMES[key] = entry.runtime()
        rows = [list(i) for i in inputs[:RUN_ROWS]]
        if not rows:
            return []
        padded = rows + [rows[0]] * (RUN_ROWS - len(rows))
        return runtime.run(padded)[:len(rows)]

    return run


def choose_demonstrations(task: Task, library_dir: str | Path, count: int, *,
                          induction: Sequence[Example] | None = None,
                          cache: dict[Any, Any] | None = None) -> list[Demonstration]:
    """The `count` library entries that behave most like `task` on its induction examples,
    never one registered from the same task file."""
    library_dir = Path(library_dir)
    library = Library(library_dir)
    try:
        entries = list(library.entries())
    except LibraryError:
        return []
    examples = list(induction if induction is not None else task.examples)
    scored: list[tuple[float, float, LibraryEntry, str, Match]] = []
    for entry in entries:
        if (entry.meta.get("task") or {}).get("sha256") == task.sha256:
            continue  # showing the answer to this very task would not be induction
        if not entry.program_path.exists():
            continue
        source = program_body(entry.program_path.read_text(encoding="utf-8"))
        key = ("match", task.sha256, len(examples), entry.meta.get("source_sha256", entry.name), str(entry.path))
        match = cache.get(key) if cache is not None else None
        if match is None:
            match = behaviour_match(task, examples, entry, _runner(entry, cache))
            if cache is not None:
                cache[key] = match
        # Behaviour first (in steps of 0.05, so near-equal matches fall to the features), features break ties.
        scored.append((round(match.score * 20) / 20, closeness(task, entry.meta, source.count("\n")), entry, source, match))
    scored.sort(key=lambda item: (-item[0], -item[1], item[2].name))
    picked = scored[:count]
    if count and picked and all(item[2].meta.get("output_kind") != task.output_kind for item in picked):
        same_kind = [item for item in scored[count:] if item[2].meta.get("output_kind") == task.output_kind]
        if same_kind:  # a numerical task sees at least one numerical program (and so on)
            picked = picked[:-1] + [same_kind[0]]
    chosen = []
    for behaviour, features, entry, source, match in picked:
        demo_key = ("demo", entry.meta.get("source_sha256", entry.name), str(entry.path))
        shown = cache.get(demo_key) if cache is not None else None
        if shown is None:
            shown = demo_examples(entry, library_dir, _runner(entry, cache))
            if cache is not None:
                cache[demo_key] = shown
        pairs, _ = shown
        why = match.why if match.score > 0 else "it does not behave like your task on your examples; shown for its " \
                                                  "output kind and shape, value types and description"
        chosen.append(Demonstration(
            name=entry.name, description=entry.meta.get("description") or entry.name,
            vocab=tuple(entry.meta.get("vocab") or ()), output_kind=entry.meta.get("output_kind", ""),
            output_shape=entry.meta.get("output_shape", ""), output_vocab=tuple(entry.meta.get("output_vocab") or ()),
            source=source, examples=pairs, score=round(behaviour * 100 + features, 3), why=why,
            proven_max_length=proven_length(entry.meta), behaviour=round(match.score, 3)))
    return chosen
