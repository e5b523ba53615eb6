"""Generic multi-operation building blocks (idioms of tracr's lib), as expression trees.

Each block is a short composition of the search's primitive operations that people write
again and again in RASP (tracr's ``make_frac_prevs``, ``make_sort``, the Dyck checks) but
that plain cheapest-first enumeration reaches only many levels deep. The enumerator adds
the cheap ones to its bank at a discounted cost (``IDIOM_*``), and the goal shortcuts
(``goals``) build the others when the target says they fit. Nothing here knows a task:
every block is parameterised by the bank expressions it is applied to.

* ``prefix_count(b)``: how many positions j <= i satisfy a boolean expression b;
* ``prefix_balance(b)``: #b - #not-b over 0..i (a signed running sum: brackets, votes);
* ``balance_offset(b)``: #b in 0..i plus #not-b after i, i.e. the prefix balance plus the
  total of not-b, in ONE attention (no MLP after it), so a later Select can compare it
  with a global count directly;
* ``dominance_counts()``: how many earlier / later positions hold a larger / smaller
  token (records, inversions);
* ``quantified(...)``: "some / no position j <= i (>= i) satisfies P(e_j)", optionally
  joined with a condition on the query position itself;
* ``none_related(x, y)``: no position j has R(x_j, y) for a global count y, optionally
  guarded by a comparison of y with another global count (one Select, tested for zero);
* ``nearest_read(m, v)``: v (or a case of the own token chosen by v) at the nearest
  position to the right / left where m holds -- carries, fills, the next separator;
* ``argmax_read(score)``: the token with the largest (or smallest) score, ties broken by
  token order -- most frequent, least frequent, longest run...
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autoconn.inducers.search import primitives as P
from autoconn.inducers.search.dsl import INDICES, TOKENS, Lam, Node, Op, Pred, lam1, lam2, make, paren

IDIOM_COUNT_COST = 3  # a prefix count costs as much as one attention
IDIOM_BALANCE_COST = 4  # and one more for the signed versions


def _with_cost(node: Node, cost: int) -> Node:
    node.cost = cost
    node.idiom = True
    return node


# ---- running sums -----------------------------------------------------------------------

def prefix_count(b: Node, max_seq_len: int, discounted: bool = True) -> Node:
    """#{j <= i : b_j}: ``Width(Select(j if b_j else sentinel, indices, LEQ))``."""
    key = make(Op.SEQMAP, (b, INDICES), P.pick_else(max_seq_len).lam)
    node = make(Op.WIDTH, (make(Op.SELECT, (key, INDICES), pred=P.BY_NAME["LEQ"]),))
    return _with_cost(node, b.cost + IDIOM_COUNT_COST) if discounted else node


BALANCE = lam2(lambda c, i: 2 * c - i - 1, lambda c, i: f"2 * {c} - {i} - 1", "balance")


def prefix_balance(b: Node, max_seq_len: int) -> Node:
    """#b - #not-b over positions 0..i, from the prefix count c: 2c - (i + 1)."""
    count = prefix_count(b, max_seq_len)
    return _with_cost(make(Op.SEQMAP, (count, INDICES), BALANCE), b.cost + IDIOM_BALANCE_COST)


OFFSET_PRED = Pred(lam2(lambda k, q: (k[1] <= q) if k[0] else (k[1] > q),
                        lambda k, q: f"({k}[1] <= {q}) if {k}[0] else ({k}[1] > {q})", "offset"), None)


def balance_offset(b: Node) -> Node:
    """#b in 0..i + #not-b in i+1..: equals prefix_balance(b) + (total #not-b), in one
    attention; ``balance_offset < #not-b`` is ``prefix balance < 0``."""
    key = make(Op.SEQMAP, (b, INDICES), P.TUPLE.lam)
    node = make(Op.WIDTH, (make(Op.SELECT, (key, INDICES), pred=OFFSET_PRED),))
    return _with_cost(node, b.cost + IDIOM_BALANCE_COST)


def dominance_counts() -> list[Node]:
    """For every position, how many earlier (later) positions hold a value >=, >, <=, < its
    own token: 2-D dominance counts (records of a running maximum / minimum at 0,
    inversions), one attention each over (token, index) keys."""
    key = make(Op.SEQMAP, (TOKENS, INDICES), P.TUPLE.lam)
    return [_with_cost(make(Op.WIDTH, (make(Op.SELECT, (key, key), pred=pred),)), IDIOM_COUNT_COST)
            for pred in P.DOMINANCE]


# ---- quantifiers ------------------------------------------------------------------------

SCOPES = ("prefix", "suffix")
_SCOPE_TEXT = {"prefix": "<=", "suffix": ">="}
_SCOPE_CALL: dict[str, Callable[[Any, Any], bool]] = {"prefix": lambda j, i: j <= i, "suffix": lambda j, i: j >= i}


def mark_with_index(p: Lam) -> Lam:
    """(P(x), j): a position's mark together with its index, one key for a scoped Select."""
    call, text = p.call, p.text
    return lam2(lambda x, j: (bool(call(x)), j), lambda x, j: f"({text(x)}, {j})", f"{p.slug}_at")


def index_with_flag(f: Lam) -> Lam:
    """(i, f(x)): the query position and whether it counts itself as selected."""
    call, text = f.call, f.text
    return lam2(lambda x, i: (i, bool(call(x))), lambda x, i: f"({i}, {text(x)})", f"{f.slug}_flag")


def scoped_pred(scope: str, self_flag: bool) -> Pred:
    """Marked keys in scope of the query index, plus the query's own position when its flag is set."""
    within, sym = _SCOPE_CALL[scope], _SCOPE_TEXT[scope]
    if not self_flag:
        return Pred(lam2(lambda k, q: k[0] and within(k[1], q), lambda k, q: f"{k}[0] and {k}[1] {sym} {q}",
                         f"marked_{scope}"), None)
    return Pred(lam2(lambda k, q: (k[0] and within(k[1], q[0])) or (k[1] == q[0] and q[1]),
                     lambda k, q: f"({k}[0] and {k}[1] {sym} {q}[0]) or ({k}[1] == {q}[0] and {q}[1])",
                     f"marked_{scope}_or_self"), None)


NONE_SELECTED = P.eq_c(0)
SOME_SELECTED = lam1(lambda x: x > 0, lambda x: f"{x} > 0", "some")


def quantified(e: Node, mark: Lam, scope: str, *, some: bool, own: Lam | None = None) -> Node:
    """Whether some (``some``) or no position j in scope of i has mark(e_j).

    With ``own``: "own(e_i) or some j" / "own(e_i) and no j". The query position then
    joins the selection through a flag (selected when own(e_i) holds, resp. fails), so the
    test at i costs no SequenceMap after the count -- one layer fewer."""
    key = make(Op.SEQMAP, (e, INDICES), mark_with_index(mark))
    if own is None:
        query: Node = INDICES
    else:
        flag = own if some else _negated(own)
        query = make(Op.SEQMAP, (e, INDICES), index_with_flag(flag))
    select = make(Op.SELECT, (key, query), pred=scoped_pred(scope, own is not None))
    return make(Op.MAP, (make(Op.WIDTH, (select,)),), SOME_SELECTED if some else NONE_SELECTED)


def _negated(f: Lam) -> Lam:
    call, text = f.call, f.text
    return lam1(lambda x: not call(x), lambda x: f"not {paren(text(x))}", f"not_{f.slug}")


def relation_pred(rel: Pred, guard: Lam | None) -> Pred:
    """R(k, q) between a per-position key and a global query; with a guard on the query
    (q = (y, ok)), every position is selected when the guard fails."""
    if guard is None:
        return rel
    call, text = rel.lam.call, rel.lam.text
    return Pred(lam2(lambda k, q: call(k, q[0]) or not q[1], lambda k, q: f"{text(k, f'{q}[0]')} or not {q}[1]",
                     f"{rel.lam.slug}_or_unguarded"), None)


def with_guard(g: Lam) -> Lam:
    """(y, g(y, z)): a global count paired with a guard condition on it and another count."""
    call, text = g.call, g.text
    return lam2(lambda y, z: (y, bool(call(y, z))), lambda y, z: f"({y}, {text(y, z)})", f"{g.slug}_guard")


def none_related(x: Node, y: Node, rel: Pred, *, guard: tuple[Node, Lam] | None = None) -> Node:
    """No position j has R(x_j, y) (and the guard holds): ``Width(Select(x, y, R)) == 0``.
    The guard (z, g) makes the query (y, g(y, z)) and selects everything when g fails."""
    if guard is None:
        select = make(Op.SELECT, (x, y), pred=rel)
    else:
        z, g = guard
        query = make(Op.SEQMAP, (y, z), with_guard(g))
        select = make(Op.SELECT, (x, query), pred=relation_pred(rel, g))
    return make(Op.MAP, (make(Op.WIDTH, (select,)),), NONE_SELECTED)


# ---- nearest marked position ----------------------------------------------------------

DIRECTIONS = ("right", "left")
_BEYOND: dict[tuple[str, bool], Callable[[Any, Any], bool]] = {
    ("right", False): lambda j, i: j > i, ("left", False): lambda j, i: j < i,
    ("right", True): lambda j, i: j >= i, ("left", True): lambda j, i: j <= i,
}


def nearest_read(m: Node, v: Node, direction: str, combine: Lam, inclusive: bool = False) -> Node:
    """combine(v at the nearest position j > i (or j < i) where m holds, (token_i, found)).

    The marked positions are ranked by how many marked positions lie beyond them (one
    SelectorWidth, c); the nearest one beyond i is the marked j with c_j = c_i - 1. When
    there is none (c_i = 0) the query reads position 0 instead, so exactly one position is
    always selected (a categorical Aggregate must never select none), and ``found`` tells
    ``combine`` to ignore what it read -- the carry of an addition, the next non-blank...
    ``inclusive``: i itself counts (the last marked position at or before i: a running
    maximum is the token of the last record)."""
    beyond = (">" if direction == "right" else "<") + ("=" if inclusive else "")
    after = _BEYOND[(direction, inclusive)]
    step = 0 if inclusive else 1  # the nearest marked j has c_j = c_i - 1 (strict) or c_i (i itself counts)
    marked_at = make(Op.SEQMAP, (m, INDICES), P.TUPLE.lam)
    count = make(Op.WIDTH, (make(Op.SELECT, (marked_at, INDICES), pred=Pred(lam2(
        lambda k, q: k[0] and after(k[1], q), lambda k, q: f"{k}[0] and {k}[1] {beyond} {q}", f"marked_{direction}"),
        None)),))
    key = make(Op.SEQMAP, (count, marked_at), lam2(lambda c, mi: (c, mi[0], mi[1] == 0),
                                                    lambda c, mi: f"({c}, {mi}[0], {mi}[1] == 0)", "rank_key"))
    nearest = make(Op.SELECT, (key, count), pred=Pred(lam2(
        lambda k, q: (k[1] and k[0] + step == q) if q > 0 else k[2],
        lambda k, q: f"({k}[1] and {k}[0]{f' + {step}' if step else ''} == {q}) if {q} > 0 else {k}[2]",
        "nearest"), None))
    read = make(Op.AGGREGATE, (nearest, v))
    own = make(Op.SEQMAP, (TOKENS, count), lam2(lambda x, c: (x, c > 0), lambda x, c: f"({x}, {c} > 0)", "found"))
    return make(Op.SEQMAP, (read, own), combine)


def case_combine(cases: dict[Any, Lam], missing: Lam) -> Lam:
    """(r, (x, found)) -> cases[r](x) if found else missing(x): a unary function of the own
    token chosen by the value read (bool or small categorical)."""
    items = list(cases.items())

    def call(r: Any, o: Any) -> Any:
        if not o[1]:
            return missing.call(o[0])
        for value, f in items:
            if r == value and isinstance(r, bool) == isinstance(value, bool):
                return f.call(o[0])
        return missing.call(o[0])

    def text(r: str, o: str) -> str:
        x = f"{o}[0]"
        body = paren(missing.text(x))
        for value, f in reversed(items):
            test = r if value is True else (f"not {r}" if value is False else f"{r} == {value!r}")
            body = f"{paren(f.text(x))} if {test} else {body}"
        return f"({body}) if {o}[1] else {paren(missing.text(x))}"

    return lam2(call, text, "cases")


def read_or(missing: Lam) -> Lam:
    """(r, (x, found)) -> r if found else missing(x): the value read, or a fallback."""
    call, text = missing.call, missing.text
    return lam2(lambda r, o: r if o[1] else call(o[0]), lambda r, o: f"{r} if {o}[1] else {paren(text(f'{o}[0]'))}",
                "read_or")


# ---- argmax -----------------------------------------------------------------------------

def better_pred(largest: bool, ties_to_smallest: bool) -> Pred:
    """On (score, token) keys: k beats q (larger/smaller score, ties by token order)."""
    s, t = (">" if largest else "<"), ("<" if ties_to_smallest else ">")
    sc: Callable[[Any, Any], bool] = (lambda a, b: a > b) if largest else (lambda a, b: a < b)
    tc: Callable[[Any, Any], bool] = (lambda a, b: a < b) if ties_to_smallest else (lambda a, b: a > b)
    return Pred(lam2(lambda k, q: sc(k[0], q[0]) or (k[0] == q[0] and tc(k[1], q[1])),
                     lambda k, q: f"{k}[0] {s} {q}[0] or ({k}[0] == {q}[0] and {k}[1] {t} {q}[1])",
                     "beats"), None)


def code_of(values: Sequence[Any]) -> tuple[Lam, Lam]:
    """(value -> its index in ``values``, index -> value): an int code, so that several
    positions holding the same token can be read by one Aggregate (equal ints average
    exactly, strings do not under rasp.evaluate)."""
    table = tuple(values)
    encode = lam1(lambda x: table.index(x) if x in table else 0,
                  lambda x: f"{table!r}.index({x}) if {x} in {table!r} else 0", "code", movable=False)
    decode = lam1(lambda c: table[int(c)] if 0 <= int(c) < len(table) else table[0],
                  lambda c: f"{table!r}[int({c})] if 0 <= int({c}) < {len(table)} else {table[0]!r}", "decoded")
    return encode, decode


def argmax_read(score: Node, vocab: Sequence[Any], *, largest: bool, ties_to_smallest: bool,
                int_tokens: bool) -> Node:
    """The token whose score is largest (smallest), ties to the smallest (largest) token, at
    every position: count the positions that beat each one; the winners beat-count is 0."""
    key = make(Op.SEQMAP, (score, TOKENS), P.TUPLE.lam)
    beaten_by = make(Op.WIDTH, (make(Op.SELECT, (key, key), pred=better_pred(largest, ties_to_smallest)),))
    winner = make(Op.MAP, (beaten_by,), NONE_SELECTED)
    select = make(Op.SELECT, (winner, TOKENS), pred=P.KEY_TRUE)
    if int_tokens:
        return make(Op.AGGREGATE, (select, TOKENS))
    encode, decode = code_of(sorted(vocab, key=lambda v: (type(v).__name__, v)))
    read = make(Op.AGGREGATE, (select, make(Op.MAP, (TOKENS,), encode)))
    return make(Op.MAP, (read,), decode)


# ---- windows: the value at a position related to i by an offset ------------------------

def length_node() -> Node:
    """``SelectorWidth(Select(tokens, tokens, TRUE))`` (rasp.length does not compile)."""
    return make(Op.WIDTH, (make(Op.SELECT, (TOKENS, TOKENS), pred=P.BY_NAME["TRUE"]),))


IDIOM_WINDOW_COST = 3  # a window read costs one attention, like a plain Aggregate


def _window_position(shape: str, c: int) -> tuple[str, Callable[[Any], tuple[int, bool]], Callable[[str], tuple[str, str]]]:
    """(query kind, q -> (position, valid), q text -> (position text, valid text)).

    Query kinds: "i" (indices), "in" ((indices, length)), "n" (length)."""
    if shape == "behind":
        return "i", (lambda q: (q - c, q >= c)), (lambda q: (f"{q} - {c}", f"{q} >= {c}"))
    if shape == "ahead":
        return "in", (lambda q: (q[0] + c, q[0] + c < q[1])), (lambda q: (f"{q}[0] + {c}", f"{q}[0] + {c} < {q}[1]"))
    if shape == "at":
        return "n", (lambda q: (c, c < q)), (lambda q: (f"{c}", f"{q} > {c}"))
    if shape == "from_end":
        return "n", (lambda q: (q - 1 - c, q > c)), (lambda q: (f"{q} - {1 + c}", f"{q} > {c}"))
    raise ValueError(shape)


WINDOW_SHAPES = ("behind", "ahead", "at", "from_end")


def window_offsets(shape: str, max_seq_len: int) -> range:
    if shape in ("behind", "ahead"):
        return range(1, min(3, max_seq_len - 1) + 1)
    if shape == "at":
        return range(0, min(8, max_seq_len))
    return range(0, min(3, max_seq_len))


def offset_read(v: Node, shape: str, c: int, sentinel: Any) -> Node:
    """v at position p(i, length) -- i - c, i + c, c, length - 1 - c -- or ``sentinel``
    where p is outside the input.

    The selector picks p where it exists and otherwise a position that always does (i
    itself, or 0), so exactly one position is read at every position and length (a
    categorical Aggregate must never select none); the SequenceMap after it replaces what
    was read there by the sentinel, so a table or a finisher can give "nothing there" its
    own value (a fill, a default, the token itself)."""
    kind, pos, text = _window_position(shape, c)
    if kind == "i":
        query: Node = INDICES
        fallback_call, fallback_text = (lambda q: q), (lambda q: q)
    elif kind == "in":
        query = make(Op.SEQMAP, (INDICES, length_node()), P.TUPLE.lam)
        fallback_call, fallback_text = (lambda q: q[0]), (lambda q: f"{q}[0]")
    else:
        query = length_node()
        fallback_call, fallback_text = (lambda q: 0), (lambda q: "0")

    def pred_call(k: Any, q: Any) -> bool:
        p, ok = pos(q)
        return k == (p if ok else fallback_call(q))

    def pred_text(k: str, q: str) -> str:
        p, ok = text(q)
        return f"{k} == ({p} if {ok} else {fallback_text(q)})"

    select = make(Op.SELECT, (INDICES, query), pred=Pred(lam2(pred_call, pred_text, f"{shape}_{c}"), None))
    read = make(Op.AGGREGATE, (select, v))

    def value_call(r: Any, q: Any) -> Any:
        return r if pos(q)[1] else sentinel

    def value_text(r: str, q: str) -> str:
        return f"{r} if {text(q)[1]} else {sentinel!r}"

    node = make(Op.SEQMAP, (read, query), lam2(value_call, value_text, f"{shape}_{c}"))
    node.window = True
    return _with_cost(node, v.cost + IDIOM_WINDOW_COST + (0 if kind == "i" else 1))


def windows(v: Node, max_seq_len: int, sentinel: Any) -> list[Node]:
    return [offset_read(v, shape, c, sentinel) for shape in WINDOW_SHAPES for c in window_offsets(shape, max_seq_len)]


# ---- numerical outputs ------------------------------------------------------------------

def numerical_output(node: Node, values: Sequence[float]) -> Node:
    """A categorical expression whose values are the wanted numbers, as a numerical SOp.

    tracr's categorical->numerical MLP passes its output through a ReLU, so a negative
    number would come out as 0 with no error: when some value is negative, the positive and
    negative parts are two numerical Maps joined by ``LinearSequenceMap(pos, neg, 1, -1)``."""
    if all(float(v) >= 0 for v in values):
        return make(Op.NUMMAP, (node,), lam1(lambda x: x, lambda x: x, "number"))
    pos = make(Op.NUMMAP, (node,), lam1(lambda x: max(x, 0), lambda x: f"max({x}, 0)", "positive"))
    neg = make(Op.NUMMAP, (node,), lam1(lambda x: max(-x, 0), lambda x: f"max(-{x}, 0)", "negative"))
    return make(Op.LINEAR, (pos, neg))


# ---- extremes ---------------------------------------------------------------------------

IDIOM_EXTREME_COST = 4  # two attentions, discounted like the windows


def extreme(largest: bool) -> Node:
    """The largest (smallest) int token, at every position: the positions no token beats
    (``SelectorWidth(Select(tokens, tokens, GT)) == 0``) all hold it, so one Aggregate over
    them reads it (equal ints average exactly). Scaling by the maximum, distance to the
    minimum, "is the largest" are then one SequenceMap with the tokens."""
    beats = make(Op.WIDTH, (make(Op.SELECT, (TOKENS, TOKENS), pred=P.BY_NAME["GT" if largest else "LT"]),))
    top = make(Op.MAP, (beats,), NONE_SELECTED)
    node = make(Op.AGGREGATE, (make(Op.SELECT, (top, TOKENS), pred=P.KEY_TRUE), TOKENS))
    return _with_cost(node, IDIOM_EXTREME_COST)
