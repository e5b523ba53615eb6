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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence, Union

Token = Union[str, int, bool]
Value = Union[str, int, bool, float]
OutputKind = Literal["categorical", "numerical"]
OutputShape = Literal["sequence", "broadcast"]

BOS = "BOS"
PAD = "PAD"
RESERVED_TOKENS = (BOS, PAD)
MIN_EXAMPLES = 4
HEADER_KEYS = {"name", "description", "vocab", "max_seq_len", "output_vocab"}


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
    """Induction examples (shown to an inducer) and held-out examples (only for verification)."""

    induction: tuple[Example, ...]
    heldout: tuple[Example, ...]


def sort_key(value: Value) -> tuple[int, Any]:
    """Orders mixed-type vocabularies deterministically (bools, numbers, strings)."""
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, (int, float)):
        return (1, value)
    return (2, str(value))


def _is_token(value: Any) -> bool:
    return isinstance(value, (str, bool, int))


def _check_token(path: Path, line: int, token: Any, where: str) -> Token:
    if isinstance(token, (list, dict)):
        raise TaskError(path, line, f"{where} contains a {type(token).__name__} ({json.dumps(token)[:60]}); tokens must be single values",
                        "flatten nested structure into one token per position, e.g. \"12\" or 12 instead of [1, 2]")
    if token is None:
        raise TaskError(path, line, f"{where} contains null", "use a string such as \"none\" for an empty token")
    if isinstance(token, float):
        if not math.isfinite(token) or not token.is_integer():
            raise TaskError(path, line, f"{where} contains the number {token}; input tokens must be strings, integers or booleans",
                            "numerical inputs are not supported: write the values as integers or strings")
        token = int(token)
    if not _is_token(token):
        raise TaskError(path, line, f"{where} contains an unsupported value {token!r}")
    if isinstance(token, str) and token in RESERVED_TOKENS:
        raise TaskError(path, line, f"{where} contains the token {token!r}, which is reserved for the compiler's {token} marker",
                        f"rename that token (for example to {token.lower()!r}); {', '.join(RESERVED_TOKENS)} cannot be vocabulary")
    return token


def _check_output_value(path: Path, line: int, value: Any) -> Value:
    if isinstance(value, (list, dict)):
        raise TaskError(path, line, f"output contains a nested {type(value).__name__}; each position's output must be a single value")
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
    if isinstance(value, str) and value in RESERVED_TOKENS:
        raise TaskError(path, line, f"output contains the reserved token {value!r}", f"rename it; {', '.join(RESERVED_TOKENS)} are compiler markers")
    return value


def _parse_header(path: Path, line: int, obj: dict[str, Any]) -> dict[str, Any]:
    unknown = set(obj) - HEADER_KEYS - {"output"}
    if "output" in obj:
        raise TaskError(path, line, "this line has \"output\" but no \"input\"", "every example needs both \"input\" and \"output\"")
    if unknown:
        raise TaskError(path, line, f"header line has unknown keys {sorted(unknown)}; an example line needs \"input\" and \"output\"",
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


def _check_type_mix(path: Path, values: Sequence[tuple[int, Value]], what: str) -> None:
    has_bool = [ln for ln, v in values if isinstance(v, bool)]
    has_int = [ln for ln, v in values if isinstance(v, int) and not isinstance(v, bool)]
    if has_bool and has_int:
        raise TaskError(path, max(has_bool[0], has_int[0]), f"{what} mixes booleans and integers (line {has_bool[0]} has a boolean, line {has_int[0]} an integer)",
                        "Python treats True as 1, so they would collide in the vocabulary: use one kind")


def load_task(
    path: str | Path,
    *,
    name: str | None = None,
    description: str | None = None,
    max_seq_len: int | None = None,
    vocab: Sequence[Token] | None = None,
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
    examples: list[Example] = []
    broadcast_flags: list[bool] = []
    seen: dict[tuple[Token, ...], Example] = {}
    first_content_line = True
    for number, raw_line in enumerate(text.splitlines(), start=1):
        stripped = raw_line.strip()
        if not stripped:
            continue
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise TaskError(path, number, f"not valid JSON ({err.msg} at column {err.colno})",
                            "each line must be one JSON object like {\"input\": [\"a\", \"b\"], \"output\": [\"b\", \"a\"]}") from None
        if not isinstance(obj, dict):
            raise TaskError(path, number, f"expected a JSON object, got {type(obj).__name__}",
                            "each line must be one JSON object like {\"input\": [...], \"output\": ...}")
        if "input" not in obj:
            if first_content_line and "output" not in obj:
                header = _parse_header(path, number, obj)
                first_content_line = False
                continue
            raise TaskError(path, number, "missing \"input\"", "each line needs {\"input\": [...], \"output\": ...}; only the first line may be a header")
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
        raise TaskError(path, None, "the file holds no examples", "add lines like {\"input\": [\"a\", \"b\"], \"output\": [\"b\", \"a\"]}")
    if len(examples) < MIN_EXAMPLES:
        raise TaskError(path, None, f"only {len(examples)} distinct example(s); at least {MIN_EXAMPLES} are needed",
                        "add more examples so that some can be held out to verify the program")

    _check_type_mix(path, [(e.line, t) for e in examples for t in e.inputs], "input")
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
                    raise TaskError(path, e.line, f"input token {t!r} is not in the declared vocab {sorted(allowed, key=sort_key)}",
                                    "add it to the header's \"vocab\" or fix the example")
        input_vocab = tuple(sorted(allowed, key=sort_key))
    else:
        input_vocab = tuple(sorted(observed_vocab, key=sort_key))

    longest = max(len(e.inputs) for e in examples)
    shortest = min(len(e.inputs) for e in examples)
    chosen_msl = max_seq_len if max_seq_len is not None else header.get("max_seq_len", 2 * longest)
    if chosen_msl < longest:
        raise TaskError(path, None, f"max_seq_len {chosen_msl} is shorter than the longest example ({longest} tokens)",
                        f"use a max_seq_len of at least {longest}")

    if numerical:
        output_vocab: tuple[Value, ...] = ()
    else:
        output_vocab = tuple(sorted({v for _, v in out_values}, key=sort_key))

    return Task(
        name=name or header.get("name") or path.stem,
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


def _stable_hash(example: Example) -> str:
    return hashlib.sha256(json.dumps(list(example.inputs), default=str).encode()).hexdigest()


def split_task(task: Task, heldout_fraction: float = 0.25) -> Split:
    """Splits deterministically: all examples of the longest length are held out (so the
    program is proven on inputs longer than it was induced from), plus a hashed fraction of
    the rest. The induction set keeps at least half of the examples and every shorter length."""
    examples = sorted(task.examples, key=_stable_hash)
    n = len(examples)
    lengths = task.lengths
    heldout: list[Example] = []
    rest = examples
    if len(lengths) > 1:
        longest_group = [e for e in examples if len(e.inputs) == lengths[-1]]
        cap = n // 2
        heldout = longest_group[:cap]
        held_ids = {id(e) for e in heldout}
        rest = [e for e in examples if id(e) not in held_ids]
    target = max(1, round(n * heldout_fraction))
    extra = max(0, target - len(heldout))
    extra = min(extra, max(0, len(rest) - max(2, n // 2)))
    # Hash order is the random order; keep each length represented in the induction set.
    chosen: list[Example] = []
    remaining_per_length: dict[int, int] = {}
    for e in rest:
        remaining_per_length[len(e.inputs)] = remaining_per_length.get(len(e.inputs), 0) + 1
    for e in rest:
        if len(chosen) >= extra:
            break
        if remaining_per_length[len(e.inputs)] > 1:
            chosen.append(e)
            remaining_per_length[len(e.inputs)] -= 1
    chosen_ids = {id(e) for e in chosen}
    heldout += chosen
    induction = [e for e in rest if id(e) not in chosen_ids]
    if not heldout:  # a single length and too few examples: hold out one anyway
        heldout, induction = induction[-1:], induction[:-1]
    order = lambda e: (len(e.inputs), e.line)  # noqa: E731 - readable file order
    return Split(induction=tuple(sorted(induction, key=order)), heldout=tuple(sorted(heldout, key=order)))
