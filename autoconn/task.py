"""Task files: load the JSONL examples of a symbolic rule, validate them, infer what they say.

A task file holds one example per line, ``{"input": [...], "output": ...}``, with an
optional header line (no ``input`` key) carrying ``name``, ``description``, ``vocab`` and
``max_seq_len``. Every problem is reported as a :class:`TaskError` naming the file, the
line and what to do, before anything is written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

Token = str | int | bool | float  # a float token is categorical: a value, not a quantity
Value = str | int | bool | float
OutputKind = Literal["categorical", "numerical"]
OutputShape = Literal["sequence", "broadcast"]

BOS = "BOS"
PAD = "PAD"
RESERVED_TOKENS = (BOS, PAD)
MIN_EXAMPLES = 2  # one to induce from, one to validate (with an oracle giving the verdict)
MIN_THREE_SETS = 8  # induction, validation and a sealed test of at least two
MIN_HELD_OUT = 3  # validation and sealed together, when there is a sealed set
HELD_OUT_FRACTION = 0.3
HEADER_KEYS = {"name", "description", "vocab", "max_seq_len", "output_vocab"}


@dataclass(frozen=True)
class Limits:
    """How big a task may be before any work starts; each has a flag (`--limit NAME=N`) to raise it.
    The defaults cover real use many times over and keep a mistaken file from eating the machine."""

    line_bytes: int = 100_000
    examples: int = 2_000
    output_values: int = 256
    max_seq_len: int = 64

    FLAGS = {"line-bytes": "line_bytes", "examples": "examples", "output-values": "output_values", "max-seq-len": "max_seq_len"}

    @classmethod
    def parse(cls, items: Sequence[str]) -> Limits:
        """`--limit examples=5000` style overrides; raises ValueError naming the bad item."""
        values: dict[str, int] = {}
        for item in items:
            key, sep, number = item.partition("=")
            field_name = cls.FLAGS.get(key.strip())
            if not sep or field_name is None:
                raise ValueError(f"--limit {item!r}: use NAME=N with NAME one of {', '.join(cls.FLAGS)}")
            try:
                values[field_name] = int(number)
            except ValueError:
                raise ValueError(f"--limit {item!r}: {number!r} is not a whole number") from None
            if values[field_name] < 1:
                raise ValueError(f"--limit {item!r}: must be at least 1")
        return cls(**values)


MAX_INT_TOKEN = 2**31  # larger integers overflow the compiled model's encodings: write them as strings
MAX_DEPTH_BYTES = 64  # a line nested deeper than a token list needs is refused before parsing


class TaskError(ValueError):
    """A task file (or a value given for it) is unusable; says where and what to do."""

    def __init__(self, path: str | Path, line: int | None, problem: str, hint: str = "") -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        self.hint = hint
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}" + (f"\n  hint: {hint}" if hint else ""))


@dataclass(frozen=True)
class Example:
    """One input sequence and the output at every position (a broadcast value is repeated)."""

    inputs: tuple[Token, ...]
    outputs: tuple[Value, ...]
    line: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"input": list(self.inputs), "output": list(self.outputs)}


@dataclass(frozen=True)
class Task:
    """A validated task: the examples plus everything inferred from them."""

    name: str
    path: str
    description: str
    examples: tuple[Example, ...]
    input_vocab: tuple[Token, ...]
    output_vocab: tuple[Value, ...]
    output_kind: OutputKind
    output_shape: OutputShape
    min_length: int
    max_length: int
    max_seq_len: int
    sha256: str = ""
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def lengths(self) -> list[int]:
        return sorted({len(e.inputs) for e in self.examples})

    def induction_view(self, shown: Sequence[Example]) -> Task:
        """The task as an inducer may see it: only the `shown` examples, and only the output
        values that occur in them (held-out outputs must not leak through the vocabulary)."""
        values = {v for e in shown for v in e.outputs}
        return replace(self, examples=tuple(shown),
                       output_vocab=tuple(v for v in self.output_vocab if v in values))

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "path": self.path,
            "examples": len(self.examples),
            "input_vocab": list(self.input_vocab),
            "output_kind": self.output_kind,
            "output_shape": self.output_shape,
            "output_vocab": list(self.output_vocab) if self.output_kind == "categorical" else None,
            "lengths": [self.min_length, self.max_length],
            "max_seq_len": self.max_seq_len,
        }


@dataclass(frozen=True)
class Split:
    """The three sets, one rule each (README, "How a CoNN is verified"):

    - ``induction``: what an inducer sees (the examples and the values in them);
    - ``validation``: held out; counterexamples from it may be fed back for repair;
    - ``sealed``: never revealed in any form; only it (and an oracle) gives the verdict.
    """

    induction: tuple[Example, ...]
    validation: tuple[Example, ...]
    sealed: tuple[Example, ...]


def sort_key(value: Value) -> tuple[int, Any]:
    """Orders mixed-type vocabularies deterministically (bools, numbers, strings)."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def _is_token(value: Any) -> bool:
    return isinstance(value, (str, bool, int))


def _check_int(path: Path, line: int, value: int, where: str) -> None:
    if not isinstance(value, bool) and abs(value) >= MAX_INT_TOKEN:
        raise TaskError(path, line, f"{where} contains an integer of {len(str(abs(value)))} digits; integers must be below 2**31",
                        "write such values as strings (\"12345678901234567890\")")


def _check_token(path: Path, line: int, token: Any, where: str) -> Token:
    if isinstance(token, (list, dict)):
        raise TaskError(path, line,
                        f"{where} contains a {type(token).__name__} ({json.dumps(token)[:60]}); tokens must be single values",
                        "flatten nested structure into one token per position, e.g. \"12\" or 12 instead of [1, 2]")
    if token is None:
        raise TaskError(path, line, f"{where} contains null", "use a string such as \"none\" for an empty token")
    if isinstance(token, float):
        if not math.isfinite(token):
            raise TaskError(path, line, f"{where} contains the number {token}; input tokens must be finite",
                            "write the value as a string, e.g. \"inf\"")
        # A fractional token is a categorical value like any other (to tracr a token is any hashable
        # value); a whole float is the int it equals.
        return int(token) if token.is_integer() else token
    if not _is_token(token):
        raise TaskError(path, line, f"{where} contains an unsupported value {token!r}")
    if isinstance(token, int):
        _check_int(path, line, token, where)
    if isinstance(token, str) and token in RESERVED_TOKENS:
        raise TaskError(path, line, f"{where} contains the token {token!r}, which is reserved for the compiler's {token} marker",
                        f"rename that token (for example to {token.lower()!r}); "
                        f"{', '.join(RESERVED_TOKENS)} cannot be vocabulary")
    return token


def _check_output_value(path: Path, line: int, value: Any) -> Value:
    if isinstance(value, (list, dict)):
        raise TaskError(path, line,
                        f"output contains a nested {type(value).__name__}; each position's output must be a single value")
    if value is None:
        raise TaskError(path, line, "output contains null", "use a string such as \"none\" for an empty output")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TaskError(path, line, f"output contains {value}, which is not a finite number")
        if value.is_integer():
            return int(value)
        return value
    if not _is_token(value):
        raise TaskError(path, line, f"output contains an unsupported value {value!r}")
    if isinstance(value, int):
        _check_int(path, line, value, "output")
    if isinstance(value, str) and value in RESERVED_TOKENS:
        raise TaskError(path, line, f"output contains the reserved token {value!r}",
                        f"rename it; {', '.join(RESERVED_TOKENS)} are compiler markers")
    return value


def _parse_header(path: Path, line: int, obj: dict[str, Any]) -> dict[str, Any]:
    unknown = set(obj) - HEADER_KEYS - {"output"}
    if "output" in obj:
        raise TaskError(path, line, "this line has \"output\" but no \"input\"",
                        "every example needs both \"input\" and \"output\"")
    if unknown:
        raise TaskError(path, line,
                        f"header line has unknown keys {sorted(unknown)}; an example line needs \"input\" and \"output\"",
                        f"a header may only hold {sorted(HEADER_KEYS)}")
    header = dict(obj)
    if "vocab" in header:
        vocab = header["vocab"]
        if isinstance(vocab, str):
            vocab = list(vocab)
        if not isinstance(vocab, list) or not vocab:
            raise TaskError(path, line, "header \"vocab\" must be a non-empty list of tokens (or a string of characters)")
        header["vocab"] = [_check_token(path, line, t, "header vocab") for t in vocab]
    if "max_seq_len" in header:
        msl = header["max_seq_len"]
        if not isinstance(msl, int) or isinstance(msl, bool) or msl < 1:
            raise TaskError(path, line, f"header \"max_seq_len\" must be a positive integer, got {msl!r}")
    for key in ("name", "description"):
        if key in header and not isinstance(header[key], str):
            raise TaskError(path, line, f"header \"{key}\" must be a string")
    return header


def _parse_example(path: Path, line: int, obj: dict[str, Any]) -> tuple[Example, bool]:
    """Returns the example and whether its output was a single broadcast value."""
    if "output" not in obj:
        raise TaskError(path, line, "missing \"output\"", "each line needs {\"input\": [...], \"output\": ...}")
    raw_in, raw_out = obj["input"], obj["output"]
    if isinstance(raw_in, str):
        raw_in = list(raw_in)
    if not isinstance(raw_in, list):
        raise TaskError(path, line, f"\"input\" must be a list of tokens or a string, got {type(raw_in).__name__}")
    if not raw_in:
        raise TaskError(path, line, "\"input\" is empty", "every example needs at least one token")
    tokens = tuple(_check_token(path, line, t, "input") for t in raw_in)
    if isinstance(obj["input"], str) and isinstance(raw_out, str) and len(raw_out) == len(tokens) > 1:
        raise TaskError(path, line, f"\"output\" is the string {raw_out!r}, as long as the input string: one value for the "
                        "whole sequence, or one character per position?",
                        f"write {json.dumps(list(raw_out))} for one value per position, or "
                        f"{json.dumps([raw_out] * len(tokens))} for the same value at every position")
    broadcast = not isinstance(raw_out, list)
    if broadcast:
        if isinstance(raw_out, dict):
            raise TaskError(path, line, "\"output\" is an object; give a list (one value per position) or a single value")
        outputs = (_check_output_value(path, line, raw_out),) * len(tokens)
    else:
        if len(raw_out) != len(tokens):
            raise TaskError(path, line, f"\"output\" has {len(raw_out)} values but \"input\" has {len(tokens)} tokens",
                            "give one output per input position, or a single value meaning that value at every position")
        outputs = tuple(_check_output_value(path, line, v) for v in raw_out)
    return Example(tokens, outputs, line), broadcast


def _parse_line(path: Path, number: int, text: str) -> Any:
    depth = max((len(run) for run in re.findall(r"\[+", text)), default=0)
    if depth > MAX_DEPTH_BYTES:
        raise TaskError(path, number, f"nested {depth} lists deep",
                        "inputs are flat lists of tokens: {\"input\": [\"a\", \"b\"], ...}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise TaskError(path, number, f"not valid JSON ({err.msg} at column {err.colno})",
                        "each line must be one JSON object like "
                        "{\"input\": [\"a\", \"b\"], \"output\": [\"b\", \"a\"]}") from None
    except RecursionError:
        raise TaskError(path, number, "nested too deeply to read", "inputs are flat lists of tokens") from None
    except ValueError as err:  # e.g. an integer of more than 4,300 digits
        raise TaskError(path, number, f"cannot be read: {err}", "write very large numbers as strings") from None


def _check_type_mix(path: Path, values: Sequence[tuple[int, Value]], what: str) -> None:
    has_bool = [ln for ln, v in values if isinstance(v, bool)]
    has_int = [ln for ln, v in values if isinstance(v, int) and not isinstance(v, bool)]
    if has_bool and has_int:
        raise TaskError(path, max(has_bool[0], has_int[0]),
                        f"{what} mixes booleans and integers (line {has_bool[0]} has a boolean, line {has_int[0]} an integer)",
                        "Python treats True as 1, so they would collide in the vocabulary: use one kind")


def load_task(
    path: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    max_seq_len: int | None = None,
    vocab: Sequence[Token] | None = None,
    limits: Limits = Limits(),
) -> Task:
    """Reads and validates a task file; arguments override the header. Raises TaskError."""
    path = Path(path)
    if not path.exists():
        raise TaskError(path, None, "no such file", "check the path of the task file")
    if path.is_dir():
        raise TaskError(path, None, "is a directory, not a task file")
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TaskError(path, None, f"is not UTF-8 text ({err.reason} at byte {err.start})") from None
    header: dict[str, Any] = {}
    header_line = 0
    examples: list[Example] = []
    broadcast_flags: list[bool] = []
    seen: dict[tuple[Token, ...], Example] = {}
    first_content_line = True
    # JSON Lines ends lines at "\n" only: U+2028 and friends are ordinary characters inside a string.
    for number, raw_line in enumerate(text.split("\n"), start=1):
        stripped = raw_line.strip()
        if not stripped:
            continue
        if len(raw_line.encode("utf-8")) > limits.line_bytes:
            raise TaskError(path, number,
                            f"line is {len(raw_line.encode('utf-8')):,} bytes, over the limit of {limits.line_bytes:,}",
                            "one example per line; if this is meant, raise it with --limit line-bytes=N")
        if len(examples) >= limits.examples:
            raise TaskError(path, number, f"more than {limits.examples:,} examples",
                            "a few hundred examples are plenty to induce and verify a rule; "
                            "if this is meant, raise the limit with --limit examples=N")
        obj = _parse_line(path, number, stripped)
        if not isinstance(obj, dict):
            raise TaskError(path, number, f"expected a JSON object, got {type(obj).__name__}",
                            "each line must be one JSON object like {\"input\": [...], \"output\": ...}")
        if "input" not in obj:
            if first_content_line and "output" not in obj:
                header = _parse_header(path, number, obj)
                header_line = number
                first_content_line = False
                continue
            raise TaskError(path, number, "missing \"input\"",
                            "each line needs {\"input\": [...], \"output\": ...}; only the first line may be a header")
        first_content_line = False
        example, broadcast = _parse_example(path, number, obj)
        previous = seen.get(example.inputs)
        if previous is not None:
            if previous.outputs != example.outputs:
                raise TaskError(path, number, f"the same input as line {previous.line} has a different output "
                                f"({list(previous.outputs)} there, {list(example.outputs)} here)",
                                "a rule gives one output per input: fix or remove one of the two lines")
            continue
        seen[example.inputs] = example
        examples.append(example)
        broadcast_flags.append(broadcast)

    if not examples:
        raise TaskError(path, None, "the file holds no examples",
                        "add lines like {\"input\": [\"a\", \"b\"], \"output\": [\"b\", \"a\"]}")
    if len(examples) < MIN_EXAMPLES:
        raise TaskError(path, None, f"only {len(examples)} distinct example(s); at least {MIN_EXAMPLES} are needed",
                        "add examples: some are held out to verify the program")

    header_vocab_mix = [(header_line, t) for t in (list(vocab) if vocab is not None else header.get("vocab", []))]
    _check_type_mix(path, header_vocab_mix + [(e.line, t) for e in examples for t in e.inputs], "input (vocab included)")
    out_values = [(e.line, v) for e in examples for v in e.outputs]
    _check_type_mix(path, out_values, "output")
    numerical = any(isinstance(v, float) for _, v in out_values)
    if numerical:
        bad = next(((ln, v) for ln, v in out_values if not isinstance(v, (int, float)) or isinstance(v, bool)), None)
        if bad:
            raise TaskError(path, bad[0], f"outputs mix numbers with fractions and non-numbers ({bad[1]!r})",
                            "numerical outputs must all be numbers")

    header_vocab = list(vocab) if vocab is not None else header.get("vocab")
    observed_vocab = {t for e in examples for t in e.inputs}
    if header_vocab is not None:
        allowed = set(header_vocab)
        for e in examples:
            for t in e.inputs:
                if t not in allowed:
                    raise TaskError(path, e.line,
                                    f"input token {t!r} is not in the declared vocab {sorted(allowed, key=sort_key)}",
                                    "add it to the header's \"vocab\" or fix the example")
        input_vocab = tuple(sorted(allowed, key=sort_key))
    else:
        input_vocab = tuple(sorted(observed_vocab, key=sort_key))

    longest = max(len(e.inputs) for e in examples)
    shortest = min(len(e.inputs) for e in examples)
    chosen_msl = max_seq_len if max_seq_len is not None else header.get("max_seq_len", 2 * longest)
    if chosen_msl > limits.max_seq_len:
        raise TaskError(path, None, f"max_seq_len {chosen_msl} is over the limit of {limits.max_seq_len}",
                        "compiled models and their checks grow with the square of the length; if this is meant, raise it "
                        "with --limit max-seq-len=N")
    if chosen_msl < longest:
        raise TaskError(path, None, f"max_seq_len {chosen_msl} is shorter than the longest example ({longest} tokens)",
                        f"use a max_seq_len of at least {longest}")

    if numerical:
        output_vocab: tuple[Value, ...] = ()
    else:
        output_vocab = tuple(sorted({v for _, v in out_values}, key=sort_key))
        if len(output_vocab) > limits.output_values:
            raise TaskError(path, None, f"{len(output_vocab)} distinct output values, over the limit of {limits.output_values}",
                            "a rule with that many outputs is rarely categorical; if this is meant, raise it with "
                            "--limit output-values=N")

    return Task(
        name=name or header.get("name") or default_name(path.stem),
        path=str(path),
        description=description if description is not None else header.get("description", ""),
        examples=tuple(examples),
        input_vocab=input_vocab,
        output_vocab=output_vocab,
        output_kind="numerical" if numerical else "categorical",
        output_shape="broadcast" if all(broadcast_flags) else "sequence",
        min_length=shortest,
        max_length=longest,
        max_seq_len=int(chosen_msl),
        sha256=hashlib.sha256(raw).hexdigest(),
        header=header,
    )


def default_name(stem: str) -> str:
    """A valid library name from a file stem ("My Task" -> "my_task"); an explicit name is
    checked as given instead."""
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_-")[:64]
    return cleaned or "conn"


def _stable_hash(example: Example) -> str:
    return hashlib.sha256(json.dumps(list(example.inputs), default=str).encode()).hexdigest()


class SplitError(TaskError):
    """The file is too small for the sets the verification needs; says how many to add."""


def split_task(task: Task, *, sealed: bool = True) -> Split:
    """Splits deterministically (by a hash of each input) into induction, validation and sealed.

    The longest length in the file goes to validation and sealed both (up to half the file), so
    every verdict reaches past the induction lengths; a hashed share of the shorter examples
    joins them until about 30% is held out, keeping every shorter length in the induction set.
    Held-out examples alternate between sealed and validation, longest first. With
    ``sealed=False`` (an oracle gives the verdict, or the user passed --no-sealed) everything
    held out is validation."""
    n = len(task.examples)
    if sealed and n < MIN_THREE_SETS:
        raise SplitError(task.path, None, f"holds {n} distinct example(s); the three sets (induction, validation, "
                         f"sealed test) need at least {MIN_THREE_SETS}",
                         f"add {MIN_THREE_SETS - n} more example(s), or give --oracle FILE.py:FUNC (your rule in Python: "
                         "its inputs become the sealed test), or pass --no-sealed (the verdict is then not held out)")
    if n < MIN_EXAMPLES:
        raise SplitError(task.path, None, f"holds {n} distinct example(s); at least {MIN_EXAMPLES} are needed "
                         "(one to induce from, one to validate)", "add examples")
    examples = sorted(task.examples, key=_stable_hash)
    lengths = task.lengths
    held: list[Example] = []
    if len(lengths) > 1:
        held = [e for e in examples if len(e.inputs) == lengths[-1]][: n // 2]
    target = max(len(held), round(n * HELD_OUT_FRACTION), MIN_HELD_OUT if sealed else 1)
    held_ids = {id(e) for e in held}
    rest = [e for e in examples if id(e) not in held_ids]
    left_per_length: dict[int, int] = {}
    for e in rest:
        left_per_length[len(e.inputs)] = left_per_length.get(len(e.inputs), 0) + 1
    for e in rest:  # hash order is the random order
        if len(held) >= target or n - len(held) <= max(1, n // 2 if sealed else 1):
            break
        if left_per_length[len(e.inputs)] > 1 or len(lengths) == 1:
            held.append(e)
            left_per_length[len(e.inputs)] -= 1
    held_ids = {id(e) for e in held}
    induction = [e for e in examples if id(e) not in held_ids]
    longest_first = sorted(held, key=lambda e: (-len(e.inputs), _stable_hash(e)))
    if sealed:
        sealed_set = longest_first[0::2]
        validation = longest_first[1::2]
    else:
        sealed_set, validation = [], longest_first
    order = lambda e: (len(e.inputs), e.line)  # noqa: E731 - readable file order
    return Split(induction=tuple(sorted(induction, key=order)), validation=tuple(sorted(validation, key=order)),
                 sealed=tuple(sorted(sealed_set, key=order)))
