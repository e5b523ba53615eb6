"""A user's oracle: their own trusted Python rule, used to prove a CoNN beyond the examples.

``--oracle FILE.py:FUNC`` names a function that takes a list of tokens and returns the output:
a list as long as the input (one value per position) or a single value (that value at every
position). Returning ``None`` says the input lies outside the rule's domain (sort *distinct*
digits given a repeated digit): such inputs are counted and reported, never scored.

The oracle's inputs come in two draws over every length from 1 to max_seq_len: lengths with at
most ``exhaustive_limit`` inputs are enumerated completely (the same inputs in both draws: a
proof, whatever was revealed); longer ones are sampled with two different seeds. The
*validation* draw's counterexamples may be fed back for repair; the *sealed* draw is never
revealed and gives the verdict, like the task file's sealed set.

The file is the user's own code and runs in this process, as their tests would; model-written
code never does.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
import random
import sys
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from autoconn.task import Example, Task, Token, Value

EXHAUSTIVE_LIMIT = 20_000  # inputs of one length enumerated completely at most
SAMPLED_PER_LENGTH = 256  # random inputs in the rule's domain per longer length, in each draw
MAX_TRIES_FACTOR = 40  # random draws per wanted input at most, where the domain is sparse
Draw = Literal["validation", "sealed"]
Rule = Callable[[list[Token]], Any]


class OracleError(ValueError):
    """The oracle cannot be used: missing, raising, the wrong shape, or contradicting the examples."""


@dataclass(frozen=True)
class OracleSpec:
    """Where the oracle lives: ``FILE.py:FUNC``."""

    path: str
    function: str

    @classmethod
    def parse(cls, text: str) -> OracleSpec:
        path, sep, function = text.rpartition(":")
        if not sep or not path or not function.isidentifier():
            raise OracleError(f"--oracle {text!r}: give FILE.py:FUNCTION, e.g. rules.py:reverse")
        return cls(path, function)

    def __str__(self) -> str:
        return f"{self.path}:{self.function}"


_MODULES: dict[str, Any] = {}


def has_rule(spec: OracleSpec) -> bool:
    """Whether FILE.py defines FUNC (raises OracleError when the file cannot be imported)."""
    return callable(getattr(_module(spec), spec.function, None))


def load_rule(spec: OracleSpec) -> Rule:
    """FUNC from FILE.py, imported once per file as a module of its own (two oracles never clash)."""
    module = _module(spec)
    rule = getattr(module, spec.function, None)
    if not callable(rule):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))[:12]
        raise OracleError(f"oracle {spec}: {spec.path} has no function {spec.function!r} "
                          f"(functions there: {', '.join(found) or 'none'})")
    return rule


def _module(spec: OracleSpec) -> Any:
    path = Path(spec.path)
    key = str(path.resolve())
    if key in _MODULES:
        return _MODULES[key]
    if not path.is_file():
        raise OracleError(f"oracle {spec}: no such file {path}")
    name = f"autoconn_oracle_{zlib.crc32(str(path.resolve()).encode()):08x}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise OracleError(f"oracle {spec}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as error:  # the user's file: report, never crash (a sys.exit() at import included)
        sys.modules.pop(name, None)
        raise OracleError(f"oracle {spec}: importing {path} failed: {type(error).__name__}: {error}") from None
    _MODULES[key] = module
    return module


def expected_outputs(rule: Rule, spec: OracleSpec, inputs: Sequence[Token], kind: str) -> tuple[Value, ...] | None:
    """The rule's output for one input as one value per position; None outside its domain.
    Raises OracleError naming the input when the rule raises or answers in the wrong shape."""
    try:
        answer = rule(list(inputs))
    except Exception as error:
        raise OracleError(f"oracle {spec} raised {type(error).__name__}: {error} on input {list(inputs)}") from None
    if answer is None:
        return None
    if isinstance(answer, tuple):
        answer = list(answer)
    values = answer if isinstance(answer, list) else [answer] * len(inputs)
    if len(values) != len(inputs):
        raise OracleError(f"oracle {spec} returned {len(values)} values for input {list(inputs)} of {len(inputs)} tokens: "
                          f"{answer!r}; return one value per position, or a single value")
    for value in values:
        ok = isinstance(value, (str, int, bool)) or (isinstance(value, float) and math.isfinite(value))
        if not ok:
            raise OracleError(f"oracle {spec} returned {answer!r} for input {list(inputs)}: each output must be a string, "
                              "an integer, a boolean or a finite number")
        if kind == "numerical" and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise OracleError(f"oracle {spec} returned {answer!r} for input {list(inputs)}, but the task's outputs are numbers")
    return tuple(values)


def length_inputs(vocab: Sequence[Token], length: int, draw: Draw, seed: int,
                  exhaustive_limit: int = EXHAUSTIVE_LIMIT) -> tuple[Iterator[tuple[Token, ...]], bool]:
    """The inputs of one length in one draw, and whether they are all of that length's inputs
    (otherwise an endless stream of distinct random ones, seeded by the draw)."""
    if len(vocab) ** length <= exhaustive_limit:
        return (tuple(p) for p in itertools.product(vocab, repeat=length)), True

    def sampled() -> Iterator[tuple[Token, ...]]:
        rng = random.Random(f"{seed}:{draw}:{length}")
        seen: set[tuple[Token, ...]] = set()
        while True:
            tokens = tuple(rng.choice(vocab) for _ in range(length))
            if tokens not in seen:
                seen.add(tokens)
                yield tokens

    return sampled(), False


@dataclass(frozen=True)
class OracleDraw:
    """Inputs of every length with the rule's outputs (inputs outside its domain left out)."""

    draw: Draw
    examples: tuple[Example, ...]
    exhaustive_lengths: tuple[int, ...]
    outside_domain: int
    max_length: int

    def by_length(self) -> dict[int, list[Example]]:
        grouped: dict[int, list[Example]] = {}
        for example in self.examples:
            grouped.setdefault(len(example.inputs), []).append(example)
        return grouped


def make_draw(rule: Rule, spec: OracleSpec, vocab: Sequence[Token], kind: str, max_length: int, draw: Draw,
              seed_key: str, *, include_exhaustive: bool = True) -> OracleDraw:
    """Runs the rule on every input of the draw (a few seconds at most: tens of thousands of calls).
    `seed_key` fixes the sampled inputs (the task's hash: the same draws on a resume). Without
    `include_exhaustive` the exhaustive lengths are named but left out (their inputs are the same in
    every draw: a caller that already scored them on the same weights need not run them again)."""
    seed = zlib.crc32(f"{seed_key}:{spec}".encode())
    examples: list[Example] = []
    exhaustive: list[int] = []
    outside = 0
    for length in range(1, max_length + 1):
        inputs, complete = length_inputs(list(vocab), length, draw, seed)
        if complete:
            exhaustive.append(length)
            if not include_exhaustive:
                continue
        found, tried = 0, 0
        for tokens in inputs:
            if not complete and (found >= SAMPLED_PER_LENGTH or tried >= SAMPLED_PER_LENGTH * MAX_TRIES_FACTOR):
                break  # enough inputs in the rule's domain, or the domain is too sparse to find more
            tried += 1
            outputs = expected_outputs(rule, spec, tokens, kind)
            if outputs is None:
                outside += 1
            else:
                found += 1
                examples.append(Example(tokens, outputs, 0))
    return OracleDraw(draw, tuple(examples), tuple(exhaustive), outside, max_length)


def disagreements(rule: Rule, spec: OracleSpec, task: Task) -> Iterator[tuple[Example, tuple[Value, ...] | None]]:
    """Task examples the oracle answers differently (its rule and the file contradict each other)."""
    from autoconn.conn.compare import values_match

    for example in task.examples:
        got = expected_outputs(rule, spec, example.inputs, task.output_kind)
        if got is None or len(got) != len(example.outputs) or not all(
                values_match(e, g, task.output_kind) for e, g in zip(example.outputs, got)):
            yield example, got


def check_oracle(spec: OracleSpec, task: Task) -> Rule:
    """Loads the oracle and refuses it when it disagrees with any of the task's own examples."""
    rule = load_rule(spec)
    for example, got in disagreements(rule, spec, task):
        said = "that the input is outside its domain (None)" if got is None else f"{list(got)}"
        raise OracleError(f"oracle {spec} contradicts {task.path}:{example.line}: for input {list(example.inputs)} the file "
                          f"says {list(example.outputs)}, the oracle says {said}; fix the rule or the example")
    return rule
