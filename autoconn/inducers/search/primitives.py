"""The function library: unary Maps, binary SequenceMaps and Select predicates.

Each function is instantiated for one value set (the set tracr infers), with constants
drawn from small pools built from the task (its vocab, its outputs and a few small ints).
No table lookups: every function is a short arithmetic, comparison or choice that a person
would write, so a program that fits the examples is a plausible rule, not a memorised map.
Every function must be total on the whole value set; the evaluator checks that.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from autoconn.inducers.search.dsl import Lam, Pred, lam1, lam2

SMALL_INTS = (0, 1, 2, 3)
MAX_EQ_CONSTANTS = 12  # beyond this many values (e.g. positions), x == c uses the pooled constants
MAX_TOKEN_EQ_CONSTANTS = 32  # letters: "tokens == 'x'" for every letter of a 26-letter vocab
MAX_REPLACEMENTS = 48  # cap on "d if x == c else x" instances per value set


def value_kind(values: Iterable[Any]) -> str:
    """bool / int / str / mixed: which families of functions apply to a value set."""
    kinds = set()
    for v in values:
        if isinstance(v, bool):
            kinds.add("bool")
        elif isinstance(v, int):
            kinds.add("int")
        elif isinstance(v, str):
            kinds.add("str")
        elif isinstance(v, tuple):
            kinds.add("tuple")
        else:
            kinds.add("other")
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed" if kinds else "empty"


def slugify(value: Any) -> str:
    text = str(value)
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        text = f"neg{-value}"
    text = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_")
    return text or "sym"


@dataclass(frozen=True)
class Pools:
    """Constants the library may use, from the task: tokens, outputs, small ints, and the
    sentinels -1 and max_seq_len (values no position or count can take)."""

    tokens: tuple[Any, ...]
    outputs: tuple[Any, ...]
    ints: tuple[int, ...]
    sentinels: tuple[int, ...] = ()

    @classmethod
    def from_task(cls, tokens: Sequence[Any], outputs: Sequence[Any], max_seq_len: int = 0) -> Pools:
        """Small ints plus one modulus per numeric alphabet (largest value + 1, e.g. 10 for
        digits); values themselves are compared with ``x == c`` from the value set."""
        ints = set(SMALL_INTS)
        for values in (tokens, outputs):
            numbers = [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
            if numbers:
                ints.add(max(numbers) + 1)
        sentinels = (-1, max_seq_len) if max_seq_len else (-1,)
        return cls(tuple(tokens), tuple(outputs), tuple(sorted(ints)), sentinels)


# ---- unary functions --------------------------------------------------------------------
# Tier 1: the plainest functions (comparisons with a constant, +-1, not, parity, case);
# tier 2 costs one more in the search (other steps, clamps, scaling, remainders...).

def eq_c(c: Any) -> Lam:
    return lam1(lambda x: x == c, lambda x: f"{x} == {c!r}", f"is_{slugify(c)}")


def ne_c(c: Any) -> Lam:
    return lam1(lambda x: x != c, lambda x: f"{x} != {c!r}", f"not_{slugify(c)}")


def const(c: Any) -> Lam:
    return lam1(lambda x: c, lambda x: f"{c!r}", f"const_{slugify(c)}")


def replace(c: Any, d: Any) -> Lam:
    return lam1(lambda x: d if x == c else x, lambda x: f"{d!r} if {x} == {c!r} else {x}", f"{slugify(c)}_to_{slugify(d)}")


def add_c(c: int) -> Lam:
    tier = 1 if abs(c) == 1 else 2
    if c < 0:
        return lam1(lambda x: x + c, lambda x: f"{x} - {-c}", f"minus_{-c}", tier)
    return lam1(lambda x: x + c, lambda x: f"{x} + {c}", f"plus_{c}", tier)


def rsub_c(c: int) -> Lam:
    return lam1(lambda x: c - x, lambda x: f"{c} - {x}", f"from_{slugify(c)}", 2)


def mul_c(c: int) -> Lam:
    return lam1(lambda x: x * c, lambda x: f"{x} * {c}", f"times_{slugify(c)}", 2)


def mod_c(c: int) -> Lam:
    return lam1(lambda x: x % c, lambda x: f"{x} % {c}", f"mod_{c}", 1 if c == 2 else 2)


def div_c(c: int) -> Lam:
    return lam1(lambda x: x // c, lambda x: f"{x} // {c}", f"div_{c}", 2)


def min_c(c: int) -> Lam:
    return lam1(lambda x: min(x, c), lambda x: f"min({x}, {c})", f"min_{slugify(c)}", 2)


def max_c(c: int) -> Lam:
    return lam1(lambda x: max(x, c), lambda x: f"max({x}, {c})", f"max_{slugify(c)}", 2)


def lt_c(c: Any) -> Lam:
    return lam1(lambda x: x < c, lambda x: f"{x} < {c!r}", f"below_{slugify(c)}", 2)


def gt_c(c: Any) -> Lam:
    return lam1(lambda x: x > c, lambda x: f"{x} > {c!r}", f"above_{slugify(c)}", 2)


ABS = lam1(lambda x: abs(x), lambda x: f"abs({x})", "abs")
NOT = lam1(lambda x: not x, lambda x: f"not {x}", "not")
TO_INT = lam1(lambda x: 1 if x else 0, lambda x: f"1 if {x} else 0", "as_int")
UPPER = lam1(lambda x: x.upper(), lambda x: f"{x}.upper()", "upper")
LOWER = lam1(lambda x: x.lower(), lambda x: f"{x}.lower()", "lower")


def if_else(a: Any, b: Any) -> Lam:
    return lam1(lambda x: a if x else b, lambda x: f"{a!r} if {x} else {b!r}", f"{slugify(a)}_or_{slugify(b)}")


def switch(c: Any, a: Any, b: Any) -> Lam:
    """a where x == c, else b: a two-way choice on one value (the finisher derives it)."""
    return lam1(lambda x: a if x == c else b, lambda x: f"{a!r} if {x} == {c!r} else {b!r}", f"{slugify(a)}_if_{slugify(c)}")


def _same_kind(value: Any, kind: str) -> bool:
    return value_kind([value]) == kind


def unary_library(values: Sequence[Any], pools: Pools, *, constants: bool = False, outputs: bool = False,
                  extra: Sequence[Any] = ()) -> list[Lam]:
    """Functions worth applying to a value set of this kind (not yet checked for totality).

    ``constants`` adds the constant map to 0 (used once, on tokens: every constant SOp is
    the same observation). ``outputs`` adds the functions that produce output values
    (constants, replacements, if/else onto outputs): the finisher uses them at the root.
    ``extra`` adds constants derived from the data (the finisher's target values)."""
    kind = value_kind(values)
    out: list[Lam] = []
    vals = list(values)
    valset = set(vals)
    targets = list(dict.fromkeys(list(pools.outputs) + list(extra)))
    if constants:
        out.append(const(0))
    if outputs:
        out += [const(c) for c in targets]
    if kind == "bool":
        out += [NOT, TO_INT]
        if outputs:
            choices = targets + [c for c in (0, 1) if c not in targets and not any(isinstance(t, str) for t in targets)]
            out += [if_else(a, b) for a in choices for b in choices if a != b and value_kind([a, b]) != "mixed"]
        return out
    if kind in ("int", "str"):
        limit = MAX_TOKEN_EQ_CONSTANTS if constants and kind == "str" else MAX_EQ_CONSTANTS
        eq_consts = vals if len(vals) <= limit else [c for c in pools.ints if c in valset]
        eq_consts = list(dict.fromkeys(eq_consts + [c for c in extra if _same_kind(c, kind) and c in valset]))
        out += [eq_c(c) for c in eq_consts] + [ne_c(c) for c in eq_consts]
        if outputs:
            reps = (replace(c, d) for c in eq_consts for d in targets if d != c and value_kind([c, d]) != "mixed")
            out += list(itertools.islice(reps, MAX_REPLACEMENTS))
    if kind == "str":
        out += [UPPER, LOWER]
    if kind == "int":
        ints = list(dict.fromkeys(list(pools.ints) + [c for c in extra if _same_kind(c, "int")]))
        steps = sorted(({1, 2, 3, -1, -2, -3} | {c for c in extra if _same_kind(c, "int")}) - {0})
        out += [ABS] + [add_c(c) for c in steps]
        out += [mod_c(c) for c in ints if c >= 2]
        out += [rsub_c(c) for c in ints]
        out += [mul_c(c) for c in (2, 3, -1)]
        out += [div_c(c) for c in (2, 3)]
        out += [min_c(c) for c in ints] + [max_c(c) for c in ints]
        out += [lt_c(c) for c in ints if c > 0] + [gt_c(c) for c in ints]
    return out


def sign_tests() -> list[Lam]:
    """Comparisons of an int with 0 and +-1: the tests a running count or balance is put to
    (``balance < 0``, ``count == 0``...), used by the quantifier goals."""
    return [f(c) for c in (0, 1, -1) for f in (lt_c, gt_c, eq_c, ne_c)]


# ---- binary functions -------------------------------------------------------------------

@dataclass(frozen=True)
class Binary:
    lam: Lam
    commutative: bool


def _b(call: Any, text: Any, slug: str, commutative: bool, tier: int = 1) -> Binary:
    return Binary(lam2(call, text, slug, tier), commutative)


EQ2 = _b(lambda x, y: x == y, lambda x, y: f"{x} == {y}", "eq", True)
NE2 = _b(lambda x, y: x != y, lambda x, y: f"{x} != {y}", "ne", True)
INT_BINARY = (
    _b(lambda x, y: x + y, lambda x, y: f"{x} + {y}", "plus", True),
    _b(lambda x, y: x - y, lambda x, y: f"{x} - {y}", "minus", False),
    _b(lambda x, y: min(x, y), lambda x, y: f"min({x}, {y})", "min", True),
    _b(lambda x, y: max(x, y), lambda x, y: f"max({x}, {y})", "max", True),
    _b(lambda x, y: x < y, lambda x, y: f"{x} < {y}", "lt", False),
    _b(lambda x, y: x * y, lambda x, y: f"{x} * {y}", "times", True, 2),
    _b(lambda x, y: x <= y, lambda x, y: f"{x} <= {y}", "le", False, 2),
    _b(lambda x, y: x % y if y else 0, lambda x, y: f"{x} % {y} if {y} else 0", "mod", False),
    _b(lambda x, y: x // y if y else 0, lambda x, y: f"{x} // {y} if {y} else 0", "div", False, 2),
    _b(lambda x, y: x / y if y else 0, lambda x, y: f"{x} / {y} if {y} else 0", "ratio", False, 2),
)
# Int comparisons both ways round (a guard g(y, z) keeps y first).
INT_COMPARISONS = (
    EQ2, NE2,
    _b(lambda x, y: x < y, lambda x, y: f"{x} < {y}", "lt", False),
    _b(lambda x, y: x <= y, lambda x, y: f"{x} <= {y}", "le", False),
    _b(lambda x, y: x > y, lambda x, y: f"{x} > {y}", "gt", False),
    _b(lambda x, y: x >= y, lambda x, y: f"{x} >= {y}", "ge", False),
)
BOOL_BINARY = (
    _b(lambda x, y: x and y, lambda x, y: f"{x} and {y}", "and", True),
    _b(lambda x, y: x or y, lambda x, y: f"{x} or {y}", "or", True),
)


# (x, y): two values as one key. Comparisons on it are lexicographic (sorting with ties
# broken by position), and the product predicates below compare it component-wise.
TUPLE = _b(lambda x, y: (x, y), lambda x, y: f"({x}, {y})", "pair", False)


def compare3(a: Any, b: Any, c: Any) -> Binary:
    """a if x > y, b if x < y, c if equal: which of two counts is larger."""
    return _b(lambda x, y: a if x > y else (b if x < y else c),
              lambda x, y: f"{a!r} if {x} > {y} else ({b!r} if {x} < {y} else {c!r})", "compare", False)


def pick_else(c: Any) -> Binary:
    """y where the condition x holds, else the constant c."""
    return _b(lambda x, y: y if x else c, lambda x, y: f"{y} if {x} else {c!r}", f"or_{slugify(c)}", False)


def const_else(c: Any) -> Binary:
    """the constant c where the condition x holds, else y."""
    return _b(lambda x, y: c if x else y, lambda x, y: f"{c!r} if {x} else {y}", f"to_{slugify(c)}", False)


def binary_library(kind_a: str, kind_b: str, pools: Pools) -> list[Binary]:
    """Functions f(a, b) for values of these kinds (a is the first argument)."""
    out: list[Binary] = []
    if kind_a == kind_b and kind_a in ("int", "str", "bool"):
        out += [EQ2, NE2]
    elif "mixed" in (kind_a, kind_b) and {kind_a, kind_b} <= {"mixed", "int", "str"}:
        out += [EQ2, NE2]  # a window read (tokens or the "none" sentinel) against tokens
    if kind_a == kind_b == "int":
        out += list(INT_BINARY)
    if kind_a in ("int", "str", "bool") and kind_b in ("int", "str", "bool"):
        out.append(TUPLE)
    if kind_a == kind_b == "bool":
        out += list(BOOL_BINARY)
    if kind_a == "bool" and kind_b in ("int", "str"):
        consts = [c for c in pools.outputs if _same_kind(c, kind_b)]
        if kind_b == "int":
            consts += [c for c in pools.sentinels if c not in consts]
        out += [pick_else(c) for c in consts] + [const_else(c) for c in consts]
    return out


# ---- predicates -------------------------------------------------------------------------

def _cmp(name: str, call: Any, text: Any) -> Pred:
    return Pred(lam2(call, text, name.lower()), name)


COMPARISONS = (
    _cmp("EQ", lambda k, q: k == q, lambda k, q: f"{k} == {q}"),
    _cmp("LT", lambda k, q: k < q, lambda k, q: f"{k} < {q}"),
    _cmp("LEQ", lambda k, q: k <= q, lambda k, q: f"{k} <= {q}"),
    _cmp("GT", lambda k, q: k > q, lambda k, q: f"{k} > {q}"),
    _cmp("GEQ", lambda k, q: k >= q, lambda k, q: f"{k} >= {q}"),
    _cmp("NEQ", lambda k, q: k != q, lambda k, q: f"{k} != {q}"),
    _cmp("TRUE", lambda k, q: True, lambda k, q: "True"),
    _cmp("FALSE", lambda k, q: False, lambda k, q: "False"),
)
BY_NAME = {p.comparison: p for p in COMPARISONS}
# A key-only predicate: select the keys whose (boolean) value holds, whatever the query.
KEY_TRUE = Pred(lam2(lambda k, q: bool(k), lambda k, q: f"{k}", "key"), None)
ORDERED = tuple(BY_NAME[n] for n in ("EQ", "LT", "LEQ", "GT", "GEQ", "NEQ"))


def _product(name: str, second: Pred) -> Pred:
    inner = second.lam
    return Pred(lam2(lambda k, q: k[0] == q[0] and inner.call(k[1], q[1]),
                     lambda k, q: f"{k}[0] == {q}[0] and {inner.text(f'{k}[1]', f'{q}[1]')}", f"same_{name}"), None)


# On (a, b) keys and queries: same a, and b compared (earlier/later occurrences of a value).
PRODUCT = tuple(_product(n.lower(), BY_NAME[n]) for n in ("LT", "GT", "LEQ", "GEQ", "NEQ"))


def _dominance(value_op: str, earlier: bool) -> Pred:
    ops = {">=": lambda a, b: a >= b, ">": lambda a, b: a > b, "<=": lambda a, b: a <= b, "<": lambda a, b: a < b}
    vc, ic = ops[value_op], (lambda a, b: a < b) if earlier else (lambda a, b: a > b)
    side = "<" if earlier else ">"
    return Pred(lam2(lambda k, q: vc(k[0], q[0]) and ic(k[1], q[1]),
                     lambda k, q: f"{k}[0] {value_op} {q}[0] and {k}[1] {side} {q}[1]", "dominates"), None)


# On (value, position) keys against themselves: an earlier (later) position with a value at
# least as large / larger / ... -- 2-D dominance counts: running records (prefix maxima and
# minima), inversions. Lexicographic order cannot express them.
DOMINANCE = tuple(_dominance(op, earlier) for earlier in (True, False) for op in (">=", ">", "<=", "<"))
