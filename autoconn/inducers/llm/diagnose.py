"""Turn a rejected attempt into feedback that names the broken rule.

Compiler and sandbox errors the primer covers map to the primer rule's number and a one-line
fix (autoconn/inducers/llm/lint.py holds the texts); object addresses are stripped (they change
every run and teach nothing). A counterexample whose values are right but of the wrong type
(True for 1, "1" for 1) is a type slip, not a wrong rule, and is reported as such. Where the
sandbox's own error text says where a RASP-level problem is (a categorical Aggregate selecting
several positions: which Aggregate, which query position, which input), that text is kept.
An Aggregate that selects *no* position is not reported by the sandbox (tracr fills the
default silently) and is not diagnosed here: that would need running the candidate on the host.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from autoconn.inducers.base import Counterexample, Feedback
from autoconn.inducers.llm.lint import RULE_FIXES

ADDRESS_OBJECT = re.compile(r"<(?:[\w.]+\.)?(\w+) object at 0x[0-9a-fA-F]+>")
ADDRESS = re.compile(r"\s*\bat 0x[0-9a-fA-F]+")
HEX_ID = re.compile(r"0x[0-9a-fA-F]{6,}")
LINT_LINE = re.compile(r"^- (line \d+|program): `([^`]*)`(?: \(rule (\d+)\))?", re.MULTILINE)

# (pattern on the error text, primer rule); the first match wins.
ERROR_RULES: tuple[tuple[re.Pattern[str], int], ...] = tuple((re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"Unsupported S-Op: length|\brasp\.length\b", 12),
    (r"composite Selectors|Selector(And|Or)\b", 6),
    (r"SequenceMap only supports categorical", 5),
    (r"(keys|queries) must be categorical", 1),
    (r"Categorical aggregate only supports None as default", 2),
    (r"selects \d+ positions .*holding different values", 2),
    (r"only average binary variables", 3),
    (r"output encoding must match its input encoding", 7),
    (r"ZeroDivisionError|division or modulo by zero|division by zero", 4),
    (r"returned None", 4),
    (r"does not include rasp\.tokens|node with label tokens", 13),
    (r"the program's output is (numerical|categorical) but the task's outputs are", 10),
))
EVALUATE_ERRORS = re.compile(r"^(TypeError|KeyError|IndexError|ValueError|AttributeError|ArithmeticError|OverflowError)\b")

STAGE_HINTS = {
    "screen": "Use only `from tracr.rasp import rasp` (and `from tracr.compiler import lib`) and plain expressions.",
    "exec": "The code must run as is: check every name and that `program` is bound to a rasp.SOp.",
    "evaluate": "The program must evaluate on every example: make every function total (rule 4).",
    "compile": "Check the compiler rules in the primer: encodings, categorical Select keys, total functions, one selected "
               "position per categorical Aggregate.",
    "run": "Check the compiler rules in the primer; the compiled model could not run on the examples.",
    "timeout": "Make it simpler: fewer operations and smaller value sets (rule 8).",
    "limit": "Make it simpler: fewer operations and smaller value sets (rule 8).",
    "check": "Compare what your program computes with the expected outputs, find the rule that explains every example, "
             "and rewrite the program.",
    "validate": "It fits the examples you were shown but not these further examples (often longer inputs): find the "
                "general rule, derived from length and indices, not one fitted to the examples (rule 11).",
    "oracle": "The compiled model disagrees with the user's rule on these inputs (often longer ones): find the general "
              "rule, derived from length and indices (rule 11).",
    "verify": "It fits the examples you were shown but not unseen ones (often longer inputs): find the general rule, "
              "derived from length and indices, not one fitted to the examples (rule 11).",
    "lint": "Fix each named mistake; the rules are in the primer.",
}
STAGES_WITH_EXAMPLES = ("check", "validate", "oracle")  # "verify" (held-out, legacy) never shows its examples


@dataclass(frozen=True)
class Diagnosis:
    stage: str
    message: str  # the error text, addresses stripped
    rule: int | None = None
    fix: str = ""
    type_slip: str = ""  # "bool instead of int" when the values are right but their type is not
    counterexamples: tuple[Counterexample, ...] = field(default_factory=tuple)

    def one_line(self, limit: int = 170, shape: str = "sequence") -> str:
        """Stage and error on one line, for the repair history."""
        if self.type_slip:
            text = f"right values, wrong type ({self.type_slip})"
        else:
            text = " ".join(self.message.split())
            if self.stage == "lint":
                found = LINT_LINE.findall(self.message)
                text = "static check: " + ("; ".join(f"{where} `{what}`" + (f" (rule {rule})" if rule else "")
                                                      for where, what, rule in found) or text)
            if self.counterexamples and self.stage in STAGES_WITH_EXAMPLES:
                first = self.counterexamples[0]
                text += (f" (e.g. {_seq(first.inputs)}: expected {show_outputs(first.expected, shape)}, "
                         f"got {show_outputs(first.got, shape)})")
        rule = f" -> rule {self.rule}" if self.rule and f"(rule {self.rule})" not in text else ""
        text = text if len(text) <= limit else text[: limit - 1] + "…"
        return f"{self.stage}: {text}{rule}"


def _seq(values: Sequence[Any]) -> str:
    return "[" + ", ".join(f"{v:.4g}" if isinstance(v, float) else repr(v) for v in values) + "]"


def show_outputs(values: Sequence[Any], shape: str) -> str:
    """A whole-sequence output as one value (when the values agree), else the list."""
    if shape == "broadcast" and values and all(_typed_equal(v, values[0]) for v in values):
        value = values[0]
        return f"{value:.4g}" if isinstance(value, float) else repr(value)
    return _seq(values)


def _typed_equal(a: Any, b: Any) -> bool:
    return type(a) is type(b) and a == b


def clean(message: str) -> str:
    """Error text without object addresses (`<...SelectorOr object at 0x7f..>` becomes `SelectorOr`)."""
    text = ADDRESS_OBJECT.sub(lambda m: m.group(1), message or "")
    text = ADDRESS.sub("", text)
    return HEX_ID.sub("0x…", text).strip()


def rule_for(message: str) -> int | None:
    for pattern, rule in ERROR_RULES:
        if pattern.search(message):
            return rule
    return None


def _kind_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value), type(value).__name__)


def _same_but_type(expected: Any, got: Any) -> bool:
    """Right value, wrong type: True for 1, '1' for 1, 1 for '1', 1.0 for True..."""
    if type(expected) is type(got) or got is None:
        return False
    if isinstance(expected, (bool, int, float)) and isinstance(got, (bool, int, float)):
        return float(expected) == float(got)
    return str(expected).strip().lower() == str(got).strip().lower()


def type_slip(counterexamples: Sequence[Counterexample]) -> str:
    """'bool instead of int' when every wrong value is right up to its type; '' otherwise."""
    slips: set[tuple[str, str]] = set()
    for ce in counterexamples:
        for want, got in zip(ce.expected, ce.got):
            if want == got and type(want) is type(got):
                continue
            if not _same_but_type(want, got):
                return ""
            slips.add((_kind_name(got), _kind_name(want)))
        if len(ce.got) != len(ce.expected):
            return ""
    return ", ".join(f"{g} instead of {w}" for g, w in sorted(slips))


def type_fix(slip: str) -> str:
    fixes = []
    if "bool instead of int" in slip:
        fixes.append("return `1 if condition else 0`, not the comparison itself")
    if "int instead of bool" in slip:
        fixes.append("return the comparison itself (True/False), not 1/0")
    if "instead of str" in slip:
        fixes.append("return the string token (e.g. `str(x)` or the literal 'a'), not a number")
    if "str instead of" in slip:
        fixes.append("return a number, not its string")
    if "float instead of" in slip:
        fixes.append("keep the output categorical with whole values (round in a categorical Map)")
    return "; ".join(fixes)


def diagnose(feedback: Feedback) -> Diagnosis:
    stage = feedback.stage or "check"
    message = clean(feedback.message)
    examples = tuple(feedback.counterexamples) if stage in STAGES_WITH_EXAMPLES else ()
    if stage == "lint":
        return Diagnosis(stage, message, rule_for(message) if message.count("(rule ") == 1 else None,
                         STAGE_HINTS["lint"])
    if examples:
        slip = type_slip(examples)
        if slip:
            fix = f"Your program computes the right values but outputs {slip} (rule 10): {type_fix(slip) or RULE_FIXES[10]}."
            return Diagnosis(stage, message, 10, fix, slip, examples)
    rule = rule_for(message)
    if rule is None and stage == "evaluate" and EVALUATE_ERRORS.search(message):
        rule = 4
    if rule is None and stage in ("timeout", "limit"):
        rule = 8
    if rule is not None and stage not in ("validate", "oracle", "verify"):
        fix = f"Rule {rule}: {RULE_FIXES[rule]}"
    else:
        fix = STAGE_HINTS.get(stage, "")
    return Diagnosis(stage, message, rule, fix, "", examples)
