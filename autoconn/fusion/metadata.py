"""How a language model hands text to a CoNN: the fusion spec stored as conn.json "fusion".

A CoNN is fused with an LM through plain text. When the context ends with ``trigger`` and
the text since the last ``operand_start`` reads as CoNN tokens, the gate opens (β = 1): the
operand is split (``split``), each piece mapped through ``token_map`` to a CoNN token, the
CoNN runs, and its output (``output``: which positions, joined how) is written as text.

conn.json schema (JSON object under "fusion")::

    {"operand_start": "sort(",            # opens the operand (default f"{name}(")
     "trigger": ")=",                     # closes it and fires the gate (default ")=")
     "split": "char" | "space",           # char: one token per character (default when every
                                          # vocab token renders as one character), else space
     "token_map": {"3": 3, ...},          # LM text -> CoNN token (default str(v) -> v;
                                          # bools as "True"/"False", ints in decimal)
     "output": {"positions": "all" | "first" | "last",   # default all (sequence outputs),
                                                         # first (broadcast: one value everywhere)
                "join": "" | " "}}                       # default "" when split is char and every
                                                         # output value is one character, else " "

Output values are written as text: a value that ``token_map`` maps back from is written as
that text (the first key for it), booleans as "True"/"False", integers in decimal, and
numerical outputs rounded to 4 decimal places with trailing zeros dropped ("0.3333", "1",
"0.5"), since compiled numerical outputs carry ~1e-10 noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard

from autoconn.task import Token, Value

Split = Literal["char", "space"]
Positions = Literal["all", "first", "last"]
SPLITS: tuple[str, ...] = ("char", "space")
POSITIONS: tuple[str, ...] = ("all", "first", "last")
JOINS: tuple[str, ...] = ("", " ")
DEFAULT_TRIGGER = ")="
# (operand start after the CoNN's name, trigger), tried in order until one cannot be written
# with operand text: "sort(3,1)=" normally, "dyck[()]=" when the vocab has parentheses.
DEFAULT_BRACKETS = (("(", DEFAULT_TRIGGER), ("[", "]="), ("{", "}="), ("<", ">="), ("⟨", "⟩="))
NUMBER_DECIMALS = 4


MAX_MARKER_CHARS = 64  # operand starts and triggers: long enough for any real marker


def is_split(value: object) -> TypeGuard[Split]:
    return value in SPLITS


def is_positions(value: object) -> TypeGuard[Positions]:
    return value in POSITIONS


class FusionSpecError(ValueError):
    """A fusion spec that cannot work: says what is wrong and what to do."""


def token_text(token: Value) -> str:
    """How a CoNN token or output value reads in LM text."""
    if isinstance(token, bool):
        return "True" if token else "False"
    if isinstance(token, float):
        return format_number(token)
    return str(token)


def format_number(value: float) -> str:
    """A numerical output as compact text: 4 decimal places, trailing zeros dropped, no "-0"."""
    text = f"{value:.{NUMBER_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def same_token(a: Any, b: Any) -> bool:
    """Equality that keeps True and 1 apart (they compare equal in Python)."""
    return a == b and type(a) is type(b)


@dataclass(frozen=True)
class OutputFormat:
    positions: Positions
    join: str

    def to_json(self) -> dict[str, Any]:
        return {"positions": self.positions, "join": self.join}


@dataclass(frozen=True)
class FusionSpec:
    """Where a CoNN's operand starts and ends in LM text, how it becomes tokens, how the answer is written."""

    operand_start: str
    trigger: str
    split: Split
    token_map: Mapping[str, Token]
    output: OutputFormat

    def to_json(self) -> dict[str, Any]:
        return {"operand_start": self.operand_start, "trigger": self.trigger, "split": self.split,
                "token_map": dict(self.token_map), "output": self.output.to_json()}

    def summary(self) -> dict[str, Any]:
        """The short form kept in index.json."""
        return {"operand_start": self.operand_start, "trigger": self.trigger, "split": self.split}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FusionSpec:
        try:
            output = data["output"]
            return cls(operand_start=str(data["operand_start"]), trigger=str(data["trigger"]), split=data["split"],
                       token_map=dict(data["token_map"]),
                       output=OutputFormat(positions=output["positions"], join=str(output["join"])))
        except (KeyError, TypeError, AttributeError) as error:
            raise FusionSpecError(f"fusion metadata is incomplete ({error!r} missing or malformed); "
                                  f"reset it with `autoconn set-fusion NAME`") from None

    def parse_operand(self, text: str) -> tuple[Token, ...] | str:
        """The CoNN tokens the operand text stands for, or why it does not read as tokens."""
        pieces = list(text) if self.split == "char" else text.split()
        if not pieces:
            return "empty operand"
        tokens = []
        for piece in pieces:
            if piece not in self.token_map:
                return f"{piece!r} is not in the CoNN's vocab"
            tokens.append(self.token_map[piece])
        return tuple(tokens)

    def render_output(self, values: Sequence[Value]) -> str:
        """The CoNN's per-position outputs as the text the LM context receives."""
        chosen = {"all": list(values), "first": list(values[:1]), "last": list(values[-1:])}[self.output.positions]
        back: list[tuple[Token, str]] = [(token, text) for text, token in self.token_map.items()]

        def text_of(value: Value) -> str:
            return next((text for token, text in back if same_token(token, value)), None) or token_text(value)

        return self.output.join.join(text_of(v) for v in chosen)


@dataclass(frozen=True)
class FusionOverrides:
    """What a user set on the command line; None keeps the default."""

    operand_start: str | None = None
    trigger: str | None = None
    split: str | None = None
    output_positions: str | None = None
    output_join: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> FusionOverrides:
        return cls(**{k: v for k, v in (data or {}).items() if k in cls.__dataclass_fields__})


def default_split(vocab: Sequence[Token]) -> Split:
    return "char" if all(len(token_text(t)) == 1 for t in vocab) else "space"


def default_join(split: str, output_kind: str, output_values: Sequence[Value]) -> str:
    """No separator only when tokens are characters and every output is one character too
    (hist's counts reach 10 and up: "1 12 3", not "1123")."""
    single = output_kind == "categorical" and all(len(token_text(v)) == 1 for v in output_values)
    return "" if split == "char" and single else " "


def build_spec(name: str, vocab: Sequence[Token], output_shape: str,
               overrides: FusionOverrides = FusionOverrides(), *, output_kind: str = "categorical",
               output_values: Sequence[Value] = ()) -> FusionSpec:
    """The default spec for a CoNN, with the user's overrides applied and the result validated.

    `output_values` are the values the CoNN can write (the compiled model's output decoding
    when known, else the task's output vocab); they decide the default join."""
    split = overrides.split if overrides.split is not None else default_split(vocab)
    if not is_split(split):
        raise FusionSpecError(f"split {split!r}: choose 'char' (one token per character) or 'space' (whitespace-separated)")
    positions = overrides.output_positions or ("first" if output_shape == "broadcast" else "all")
    if not is_positions(positions):
        raise FusionSpecError(f"output positions {positions!r}: choose all, first or last")
    join = overrides.output_join if overrides.output_join is not None else default_join(split, output_kind, output_values)
    first_error: FusionSpecError | None = None
    for opening, closing in DEFAULT_BRACKETS:
        spec = FusionSpec(
            operand_start=overrides.operand_start if overrides.operand_start is not None else f"{name}{opening}",
            trigger=overrides.trigger if overrides.trigger is not None else closing,
            split=split,
            token_map={token_text(t): t for t in vocab},
            output=OutputFormat(positions=positions, join=join),
        )
        try:
            validate(spec, vocab)
            return spec
        except FusionSpecError as error:
            # A default bracket the vocab itself uses (Dyck tasks: '(' ')') cannot delimit an
            # operand; the next pair is tried. The user's own choices are never replaced.
            first_error = first_error or error
            if overrides.operand_start is not None and overrides.trigger is not None:
                break
    assert first_error is not None
    raise first_error


def validate(spec: FusionSpec, vocab: Sequence[Token]) -> None:
    """Raises FusionSpecError when the spec could never fire or could fire on the wrong text."""
    if not spec.operand_start:
        raise FusionSpecError("the operand start is empty: give the text that opens an operand, e.g. --operand-start 'sort('")
    if not spec.trigger:
        raise FusionSpecError("the trigger is empty: give the text that closes an operand and calls the CoNN, "
                              "e.g. --trigger ')='")
    for what, text in (("operand start", spec.operand_start), ("trigger", spec.trigger)):
        if len(text) > MAX_MARKER_CHARS:
            raise FusionSpecError(f"the {what} is {len(text):,} characters long; at most {MAX_MARKER_CHARS} are allowed "
                                  "(it is matched against every character the LM writes)")
        if any(not ch.isprintable() for ch in text):
            raise FusionSpecError(f"the {what} {text!r} holds a newline or another control character: use printable text")
    if not is_split(spec.split):
        raise FusionSpecError(f"split {spec.split!r}: choose 'char' or 'space'")
    if not is_positions(spec.output.positions):
        raise FusionSpecError(f"output positions {spec.output.positions!r}: choose all, first or last")
    if spec.output.join not in JOINS:
        raise FusionSpecError(f"output join {spec.output.join!r}: choose '' (no separator) or ' ' (a space)")
    if not spec.token_map:
        raise FusionSpecError("the token map is empty: no operand could ever be read; reset it with `autoconn set-fusion NAME`")
    for text, token in spec.token_map.items():
        if not any(same_token(token, v) for v in vocab):
            raise FusionSpecError(f"token map sends {text!r} to {token!r}, which is not in the CoNN's vocab {list(vocab)}; "
                                  f"map only to vocab tokens")
        if spec.split == "char" and len(text) != 1:
            raise FusionSpecError(f"split 'char' reads one character per token, but the token map has {text!r}; "
                                  f"use --split space (tokens separated by spaces)")
        if spec.split == "space" and (not text or any(c.isspace() for c in text)):
            raise FusionSpecError(f"split 'space' separates tokens by whitespace, so token text {text!r} cannot be read")
    if spec.trigger in spec.operand_start:
        raise FusionSpecError(f"the trigger {spec.trigger!r} occurs inside the operand start {spec.operand_start!r}: "
                              f"the gate would fire while the operand is being opened; pick a different trigger")
    if spec.operand_start in spec.trigger:
        raise FusionSpecError(f"the operand start {spec.operand_start!r} occurs inside the trigger {spec.trigger!r}: "
                              f"every trigger would open a new, empty operand and the gate could never fire")
    if trigger_fits_in_operand(spec):
        raise FusionSpecError(f"the trigger {spec.trigger!r} can be written with operand text ({_operand_chars(spec)}), "
                              f"so an operand could contain it and the gate would fire before the operand ends; "
                              f"pick a trigger that starts with a character no token uses (e.g. {_free_trigger(spec)!r})")


def _free_trigger(spec: FusionSpec) -> str:
    used = set(_operand_chars(spec))
    return next((closing for _, closing in DEFAULT_BRACKETS if closing[0] not in used), "⟩=")


def _operand_chars(spec: FusionSpec) -> str:
    chars = set("".join(spec.token_map))
    if spec.split == "space":
        chars |= {" "}
    return "".join(sorted(chars))


def trigger_fits_in_operand(spec: FusionSpec) -> bool:
    """True when the operand's end would be invisible or the gate could fire early.

    Invisible: the trigger starts with a token character ("sort(210=" with trigger "0=" reads
    as operand "210" but is "21"). Early: the trigger lies wholly in operand text, or an operand
    suffix s and a proper start of the trigger make it up (trigger == s + trigger[:k]); for
    split 'space' that catches whitespace triggers. Operand text is approximated by the
    characters of the token map (plus whitespace for split 'space')."""
    chars = set("".join(spec.token_map))
    trigger = spec.trigger

    def operand_text(text: str) -> bool:
        return all(c in chars or (spec.split == "space" and c.isspace()) for c in text)

    return trigger[0] in chars or any(operand_text(trigger[:j]) and trigger[j:] == trigger[:len(trigger) - j]
                                      for j in range(1, len(trigger) + 1))


def check_together(specs: Mapping[str, FusionSpec]) -> None:
    """CoNNs fused together must be told apart by the text: no two with the same (operand_start, trigger)."""
    seen: dict[tuple[str, str], str] = {}
    for name, spec in specs.items():
        key = (spec.operand_start, spec.trigger)
        if key in seen:
            raise FusionSpecError(f"{seen[key]!r} and {name!r} both use operand start {spec.operand_start!r} and trigger "
                                  f"{spec.trigger!r}, so the text cannot say which to call; give one of them another "
                                  f"with `autoconn set-fusion {name} --operand-start TEXT`")
        seen[key] = name


def spec_of_meta(name: str, meta: Mapping[str, Any]) -> FusionSpec:
    """The stored spec of a library entry (validated), or its default when none was stored."""
    vocab = meta.get("vocab") or []
    if meta.get("fusion"):
        spec = FusionSpec.from_json(meta["fusion"])
        try:
            validate(spec, vocab)
        except FusionSpecError as error:
            raise FusionSpecError(f"{name}: {error}") from None
        return spec
    return build_spec(name, vocab, str(meta.get("output_shape")), **output_facts(meta))


def output_facts(meta: Mapping[str, Any]) -> dict[str, Any]:
    """build_spec's output_kind and output_values for a conn.json: the compiled decoding when stored."""
    decoding = (meta.get("spec") or {}).get("output_decoding") or meta.get("output_vocab") or ()
    return {"output_kind": str(meta.get("output_kind", "categorical")), "output_values": list(decoding)}

