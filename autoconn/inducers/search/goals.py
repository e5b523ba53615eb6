"""Goal-directed shortcuts: from one expression in the bank, a whole program in one step.

Bottom-up enumeration reaches a program of cost c only after every cheaper behaviour. Most
rules end in one of a few shapes, and for those the target itself says what the last
piece must be, so each new expression is tested against these shapes (a few vectorised
comparisons) and a match is proposed at once:

* **finisher** -- the expression determines the target position by position: one library
  function (constants taken from the data) maps it onto the target;
* **binary finisher** -- the same for an attention output paired with a cheap context
  expression (indices, tokens, length, ...), through one SequenceMap;
* **source** -- the target is values moved around: an int expression naming, at each
  position, a position that holds the wanted value gives
  ``Aggregate(Select(indices, it, EQ), value)``; its inverse (a permutation saying where each
  value goes) gives ``Aggregate(Select(it, indices, EQ), value)``;
* **count** -- a broadcast target that is a function of how many positions a boolean
  expression marks: ``f(SelectorWidth(Select(it, tokens, k)))``;
* **unique** -- a broadcast target read at the one position a boolean expression marks:
  ``Aggregate(Select(it, tokens, k), value)``;
* **argmax** -- a broadcast target that is the token with the largest (smallest) score,
  ties broken by token order: ``blocks.argmax_read(it)`` (most / least frequent token);
* **quantifier** -- a boolean target saying whether some / no position j <= i (or >= i)
  has a sign test of it true, possibly joined with a test at i itself
  (``blocks.quantified``: prefix-balanced brackets, "an x occurred before");
* **nearest** -- a sequence target that is a function of the own token, chosen by a token
  test read at the nearest position to the right (left) where another token test holds,
  or the token read there; with an attention-derived mark, the last marked position at
  or before i (``blocks.nearest_read``: carries of an addition, fills, running maxima);
* **relation** -- a boolean broadcast target saying that no position j has R(it_j, y)
  for a global count y, possibly guarded by a comparison of y with another global count
  (``blocks.none_related``: a balance never below zero and ending at zero).

Where no library function fits, the finishers fill the Map / SequenceMap with the function
the examples imply (``tables``): total over the value set, refused when a reachable entry is
undetermined (the refusals are kept for the stop message). Window reads and their tests
against the own token are context too, so "x + the next token", "the last two are equal"
and "differs from both neighbours" are one SequenceMap away.

Every proposal is evaluated like any expression and must equal the target exactly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from autoconn.inducers.search import blocks as B
from autoconn.inducers.search import primitives as P
from autoconn.inducers.search import tables as T
from autoconn.inducers.search.dsl import INDICES, TOKENS, Lam, Node, Op, make
from autoconn.inducers.search.evaluate import Entry, Evaluator, Sem
from autoconn.inducers.search.lower import then

MAX_VALUE_GOALS = 4
MAX_CONTEXT = 6  # context expressions per role
MAX_FINISHERS = 4
MAX_QUANTIFIED_VALUES = 48  # value-set size beyond which an int is no count or balance
MAX_QUANTIFIED_COST = 8  # quantifier goals look at cheap attention outputs only
MAX_ARGMAX_COST = 4  # scores are cheap counts (how often, how many before)
MAX_RELATION_COST = 5  # per-position counts compared with a total: a running balance of a token test costs 5
MAX_TOKEN_TESTS = 48  # token tests the nearest goal pairs up
MAX_DERIVED_MARKS = 512  # attention-derived marks it reads the token at
MAX_WINDOWS = 48  # window reads (blocks.offset_read) and tests of them kept as context for the binary finisher
MAX_WINDOW_TEST_COST = 6  # e.g. behind_1(tokens) != tokens: pairs of such tests finish "differs from both neighbours"
_RELATIONS = {"LT": np.less, "LEQ": np.less_equal, "GT": np.greater, "GEQ": np.greater_equal,
              "EQ": np.equal, "NEQ": np.not_equal}

Propose = Callable[[Node, Sem], None]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


def functional(keys: list[np.ndarray], target: np.ndarray) -> tuple[tuple[tuple[int, ...], int], ...] | None:
    """The map (key codes...) -> target code if the keys determine the target, else None.

    Codes are below 2**20 (the universe is far smaller), so up to two keys and the target
    pack into one int64 and a single 1-D np.unique does the work."""
    shift = np.int64(1 << 20)
    combined = np.zeros(len(target), dtype=np.int64)
    for k in keys:
        combined = combined * shift + k.astype(np.int64)
    packed = np.unique(combined * shift + target.astype(np.int64))
    key_part = packed // shift
    if len(key_part) > 1 and (key_part[1:] == key_part[:-1]).any():
        return None
    out = []
    for key, t in zip(key_part.tolist(), (packed % shift).tolist()):
        parts = []
        for _ in keys:
            parts.append(key % (1 << 20))
            key //= 1 << 20
        out.append((tuple(reversed(parts)), t))
    return tuple(out)


def _window_test(node: Node) -> bool:
    """A window read compared with the own token (``behind_1(tokens) != tokens``)."""
    return (node.op is Op.SEQMAP and node.cost <= MAX_WINDOW_TEST_COST and entry_kind_bool(node)
            and any(c.window for c in node.children) and any(c is TOKENS for c in node.children))


def entry_kind_bool(node: Node) -> bool:
    return node.fn is not None and node.fn.slug in ("eq", "ne")


def _noted(lam: Lam, note: str) -> Lam:
    if not note:
        return lam
    import dataclasses
    return dataclasses.replace(lam, note=note)


def _any_in_scope(marks: np.ndarray, scope: str) -> np.ndarray:
    """[n, L]: some position j <= i ("prefix") or j >= i ("suffix") is marked."""
    if scope == "prefix":
        return np.maximum.accumulate(marks, axis=1)
    return np.maximum.accumulate(marks[:, ::-1], axis=1)[:, ::-1]


class Goals:
    """The shortcuts for one target (categorical outputs; codes [n_induction, width])."""

    def __init__(self, ev: Evaluator, target: np.ndarray, pools: P.Pools, propose: Propose, *,
                 tables: bool = True, sentinel: Any = None) -> None:
        self.ev = ev
        self.u = ev.u
        self.n = len(target)
        self.batch = ev.batch
        self.mask = ev.batch.mask
        self.imask = self.mask[: self.n]
        self.target = target
        self.flat = target[self.imask]
        self.pools = pools
        self.propose = propose
        self.broadcast = bool(np.all((target == target[:, :1]) | ~self.imask))
        self.row_target = target[:, 0]
        self.lengths = self.batch.lengths[: self.n]
        self.values: list[tuple[Entry, np.ndarray]] = []  # value goals: (v, allowed[n, q, k])
        self.context: list[Entry] = []
        self.context_same: list[np.ndarray] = []  # per context entry: equal at each probe pair
        self._roles: dict[str, int] = {}  # context entries per role
        self.tokens: Entry | None = None
        self._unary: dict[Any, list[Lam]] = {}
        self._position_sets: dict[frozenset[int], bool] = {}
        self._binary: dict[Any, list[tuple[Lam, bool]]] = {}
        self.rows = np.arange(self.n)[:, None]
        # Pairs of positions whose targets differ: an expression equal at both cannot
        # determine the target, which rejects most expressions before any np.unique.
        rng = np.random.default_rng(0)
        left, right = rng.integers(0, len(self.flat), (2, 512))
        differ = self.flat[left] != self.flat[right]
        self.probe_left, self.probe_right = left[differ], right[differ]
        self.cols = np.arange(self.batch.width)[None, :]
        values = [self.u.values[c] for c in np.unique(self.flat)]
        self.bool_target = bool(values) and all(isinstance(v, bool) for v in values)
        self.truth = self.u.as_bools()[np.where(self.imask, target, 0)].astype(bool) & self.imask
        self._quantified: set[int] = set()
        self._sign_tests = P.sign_tests()
        self.token_tests: list[tuple[Entry, np.ndarray]] = []
        self._nearest: dict[tuple[int, str, bool], tuple[np.ndarray, np.ndarray]] = {}
        self._derived_marks = 0
        self._globals_cache: tuple[int, list[Any]] | None = None
        self.tables = tables
        self.sentinel = sentinel
        self.refusals: list[str] = []  # why tables were not made (undetermined entries), first few
        self._case_cache: dict[Any, list[Lam]] = {}
        self.token_functional = False

    # ---- registration -------------------------------------------------------------------

    def observe(self, entry: Entry) -> None:
        """Cheap expressions become value goals (what may be moved) or context (what a
        binary finisher may combine with)."""
        node = entry.node
        if node.cost <= 1 and entry.support == frozenset({"tokens"}) and len(self.values) < MAX_VALUE_GOALS:
            v = entry.sem.codes[: self.n]
            allowed = (v[:, None, :] == self.target[:, :, None]) & self.imask[:, None, :]
            if (allowed.any(-1) | ~self.imask).all():
                self.values.append((entry, allowed))
        if node.op is Op.TOKENS:
            self.tokens = entry
            # The target is a function of the own token: a Map (library or table) says it in
            # one layer, so the goals that read other positions have nothing to add.
            self.token_functional = functional([entry.sem.codes[: self.n][self.imask]], self.flat) is not None
        if (node.idiom and node.window) or _window_test(node):
            role = "window"  # a value at an offset: paired with the tokens or another window by the binary finisher
        elif node.idiom:
            role = ""  # discounted idioms would crowd out the plain counts (length, hist) the finishers pair with
        elif node.op in (Op.TOKENS, Op.INDICES):
            role = "input"
        elif node.op is Op.WIDTH and node.cost <= 3:
            role = "count"  # length, histograms, ranks
        elif node.op is Op.WIDTH and node.cost <= 4 and node.children[0].pred is P.KEY_TRUE:
            role = "tally"  # how many tokens are (or are not) some value
        elif node.cost == 1 and entry.kind == "bool" and entry.support == frozenset({"indices"}):
            role = "position"  # indices == c and the like
        else:
            role = ""
        if role and self._roles.get(role, 0) < (MAX_WINDOWS if role == "window" else MAX_CONTEXT):
            self._roles[role] = self._roles.get(role, 0) + 1
            self.context.append(entry)
            w = entry.sem.codes[: self.n][self.imask]
            self.context_same.append(w[self.probe_left] == w[self.probe_right])

    # ---- the checks ---------------------------------------------------------------------

    def check(self, entry: Entry, arr: np.ndarray) -> None:
        self.finish(entry.node, entry.sem, arr)
        if entry.kind == "int":
            ints = self.u.as_ints()[entry.sem.codes[: self.n]]
            if self.values and self._positions(entry.sem.vset):
                self.source(entry, ints)
                self.inverse_source(entry, ints)
            if self.broadcast and entry.node.op is Op.WIDTH:
                is_zero = P.eq_c(0)
                sem = self.ev.map(is_zero, entry.sem)
                if sem is not None:
                    zero = Entry(make(Op.MAP, (entry.node,), is_zero), sem, "bool", None)
                    marks = (ints == 0) & self.imask
                    self.unique(zero.node, sem, marks)
                    self.count(zero, marks)
        if (entry.kind == "bool" and not self.broadcast and not self.token_functional
                and entry.support == frozenset({"tokens"})
                and entry.node.cost <= 2 and len(self.token_tests) < MAX_TOKEN_TESTS and self.tokens is not None):
            self.nearest(entry)
        if (entry.kind == "bool" and not self.broadcast and not self.token_functional and entry.support is None
                and self.tokens is not None
                and entry.node.cost <= MAX_QUANTIFIED_COST and self._derived_marks < MAX_DERIVED_MARKS):
            self.derived_nearest(entry)
        if entry.kind == "bool" and self.broadcast:
            marks = self.u.as_bools()[entry.sem.codes[: self.n]].astype(bool) & self.imask
            self.count(entry, marks)
            self.unique(entry.node, entry.sem, marks)
        if (entry.node.op in (Op.WIDTH, Op.AGGREGATE) or entry.node.window or _window_test(entry.node)) \
                and self.context:
            self.binary_finish(entry)
        if self.broadcast and entry.node.op is Op.AGGREGATE and self.tokens and entry.kind == self.tokens.kind:
            self.compare_count(entry, self.tokens)
        if entry.kind == "int" and entry.support is None and len(entry.sem.vset) <= MAX_QUANTIFIED_VALUES:
            if (self.broadcast and entry.node.op is Op.WIDTH and entry.node.cost <= MAX_ARGMAX_COST
                    and self.tokens is not None):
                self.argmax(entry)
            if self.bool_target and self.broadcast and entry.node.cost <= MAX_RELATION_COST:
                self.relation(entry)
            if self.bool_target and not self.broadcast and entry.node.cost <= MAX_QUANTIFIED_COST:
                self.quantifier(entry)

    # ---- the generic blocks (see blocks.py) ---------------------------------------------

    def _propose_tree(self, node: Node) -> None:
        sem = self.ev.evaluate(node)
        if isinstance(sem, Sem):
            self.propose(node, sem)

    def argmax(self, entry: Entry) -> None:
        """Broadcast target = the token at the position(s) of the best score (ties by token)."""
        assert self.tokens is not None
        tok = self.tokens.sem.codes[: self.n]
        vocab_codes = sorted(self.tokens.sem.vset, key=lambda c: (type(self.u.values[c]).__name__, self.u.values[c]))
        rank = np.zeros(len(self.u), dtype=np.int64)
        rank[vocab_codes] = np.arange(len(vocab_codes))
        score = self.u.as_ints()[entry.sem.codes[: self.n]]
        width = len(vocab_codes) + 1
        for largest in (True, False):
            for smallest_first in (True, False):
                s = (score if largest else -score) * width + (-rank[tok] if smallest_first else rank[tok])
                best = np.where(self.imask, s, np.iinfo(np.int64).min).argmax(-1)
                if (tok[np.arange(self.n), best] == self.row_target).all():
                    self._propose_tree(B.argmax_read(entry.node, self.ev.values(self.tokens.sem.vset),
                                                     largest=largest, ties_to_smallest=smallest_first,
                                                     int_tokens=self.ev.int_valued(self.tokens.sem.vset)))

    def _beyond(self, m: Entry, marks: np.ndarray, direction: str,
                inclusive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(position of the nearest marked j beyond i -- or at i, inclusive --, whether there is one)."""
        found = self._nearest.get((id(m.node), direction, inclusive))
        if found is None:
            width, rows = self.batch.width, len(marks)
            cols = np.broadcast_to(self.cols, marks.shape)
            if direction == "right":
                nxt = np.minimum.accumulate(np.where(marks, cols, width)[:, ::-1], axis=1)[:, ::-1]
                if not inclusive:
                    nxt = np.concatenate([nxt[:, 1:], np.full((rows, 1), width)], axis=1)
                has = nxt < width
            else:
                nxt = np.maximum.accumulate(np.where(marks, cols, -1), axis=1)
                if not inclusive:
                    nxt = np.concatenate([np.full((rows, 1), -1), nxt[:, :-1]], axis=1)
                has = nxt >= 0
            found = (np.clip(nxt, 0, width - 1), has & self.imask)
            self._nearest[(id(m.node), direction, inclusive)] = found
        return found

    def nearest(self, entry: Entry) -> None:
        """Target_i = f_r(token_i), r = a token test read at the nearest marked j beyond i."""
        marks = self.u.as_bools()[entry.sem.codes[: self.n]].astype(bool) & self.imask
        if not marks.any() or (marks == self.imask).all():
            return  # marks nothing or everything: the "nearest" is a fixed neighbour, which plain search finds cheaper
        self.token_tests.append((entry, marks))
        new = len(self.token_tests) - 1
        pairs = [(new, k) for k in range(new + 1)] + [(k, new) for k in range(new)]
        assert self.tokens is not None  # callers ask only once the tokens entry is known
        tok = self.tokens.sem.codes[: self.n]
        for im, iv in pairs:
            m, m_marks = self.token_tests[im]
            v, v_marks = self.token_tests[iv]
            for direction in B.DIRECTIONS:
                pos, has = self._beyond(m, m_marks, direction)
                read = np.take_along_axis(v_marks, pos, axis=1)
                cls = np.where(has, read.astype(np.int64), 2)[self.imask]
                if functional([tok[self.imask], cls], self.flat) is None:
                    continue
                self._propose_nearest(m, v, direction, tok[self.imask], cls)
        for direction in B.DIRECTIONS:
            self._nearest_token(entry, marks, direction, tok)

    def derived_nearest(self, entry: Entry) -> None:
        """Target_i = the token at the last (first) position at or before (after) i that an
        attention-derived test marks: running maxima are the tokens of the last record."""
        marks = self.u.as_bools()[entry.sem.codes[: self.n]].astype(bool) & self.imask
        assert self.tokens is not None  # callers ask only once the tokens entry is known
        tok = self.tokens.sem.codes[: self.n]
        if not marks.any() or (marks == self.imask).all() or (marks & (tok != self.target)).any():
            return  # a marked position reads itself: its own token must be the target there
        self._derived_marks += 1
        for direction in B.DIRECTIONS:
            self._nearest_token(entry, marks, direction, tok, inclusive=True)

    def _nearest_token(self, m: Entry, marks: np.ndarray, direction: str, tok: np.ndarray,
                       inclusive: bool = False) -> None:
        """Target_i = the token at the nearest marked j beyond i (a function of the own
        token when there is none): filling gaps, the next separator..."""
        pos, has = self._beyond(m, marks, direction, inclusive)
        read = np.take_along_axis(tok, pos, axis=1)
        if not ((read == self.target) | ~has | ~self.imask).all() or not has.any():
            return
        missing = ~has & self.imask
        if missing.any():
            mapping = functional([tok[missing]], self.target[missing])
            found = self._case_finishers(mapping) if mapping is not None else []
            if not found:
                return
            fallback = found[0]
        else:
            fallback = P.lam1(lambda x: x, lambda x: x, "own")
        assert self.tokens is not None
        self._propose_tree(B.nearest_read(m.node, self.tokens.node, direction, B.read_or(fallback), inclusive))

    def _propose_nearest(self, m: Entry, v: Entry, direction: str, tok: np.ndarray, cls: np.ndarray) -> None:
        fns: dict[int, Lam] = {}
        for c in (0, 1, 2):
            here = cls == c
            if not here.any():
                continue
            mapping = functional([tok[here]], self.flat[here])
            found = self._case_finishers(mapping) if mapping is not None else []
            if not found:
                return
            fns[c] = found[0]
        identity = next(iter(fns.values()))
        cases = {value: fns.get(c, identity) for c, value in ((1, True), (0, False))}
        combine = B.case_combine(cases, fns.get(2, cases[False]))
        self._propose_tree(B.nearest_read(m.node, v.node, direction, combine))

    def _case_finishers(self, mapping: tuple[tuple[tuple[int, ...], int], ...]) -> list[Lam]:
        """Unary functions of the token onto the target on one case; also a step then a
        modulus ((x + 1) % 10: digit arithmetic), when no single function fits."""
        assert self.tokens is not None
        cached = self._case_cache.get(mapping)
        if cached is not None:
            return cached
        found = self._case_cache[mapping] = self._case_finishers_uncached(mapping)
        return found

    def _case_finishers_uncached(self, mapping: tuple[tuple[tuple[int, ...], int], ...]) -> list[Lam]:
        assert self.tokens is not None
        found = self._finishers(self.tokens.sem.vset, mapping)
        if found:
            return found
        src = [self.u.values[a[0]] for a, _ in mapping]
        dst = [self.u.values[b] for _, b in mapping]
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in src + dst):
            return []
        for step in (1, -1, 2, -2):
            for modulus in self.pools.ints:
                if modulus >= 2 and all((s + step) % modulus == t for s, t in zip(src, dst)):
                    return [then(P.mod_c(modulus), P.add_c(step))]
        return []

    def _marks(self, entry: Entry) -> list[tuple[Lam, np.ndarray]]:
        """(sign test, where it holds) for every sign test that is not constant here."""
        out = []
        for test in self._sign_tests:
            sem = self.ev.map(test, entry.sem)
            if sem is None:
                continue
            m = self.u.as_bools()[sem.codes[: self.n]].astype(bool) & self.imask
            if m.any() and not (m == self.imask).all():
                out.append((test, m))
        return out

    def quantifier(self, entry: Entry) -> None:
        """Sequence target = [own test at i] and/or whether some j in scope has mark(e_j)."""
        marks = self._marks(entry)
        if not marks:
            return
        truth, imask = self.truth, self.imask
        for mark, m in marks:
            key = hash((m.tobytes(), mark.key))
            if key in self._quantified:
                continue
            self._quantified.add(key)
            for scope in B.SCOPES:
                a = _any_in_scope(m, scope) & imask
                if (truth == (~a & imask)).all():
                    self._propose_tree(B.quantified(entry.node, mark, scope, some=False))
                elif (truth == a).all():
                    self._propose_tree(B.quantified(entry.node, mark, scope, some=True))
                elif not (truth & a).any():  # target = own(e_i) and none in scope
                    for own, o in marks:
                        if (truth == (o & ~a & imask)).all():
                            self._propose_tree(B.quantified(entry.node, mark, scope, some=False, own=own))
                elif ((truth | ~a) & imask == imask).all():  # target = own(e_i) or some in scope
                    for own, o in marks:
                        if (truth == ((o | a) & imask)).all():
                            self._propose_tree(B.quantified(entry.node, mark, scope, some=True, own=own))

    def _globals(self) -> list[tuple[Entry, np.ndarray, list[tuple[Entry, Lam]], np.ndarray]]:
        """Context counts that are one number per input (length, how many x...), each with
        its candidate guards g(y, z) against the others, evaluated per input. Cached: the
        context only grows, and only early in the search."""
        if self._globals_cache is not None and self._globals_cache[0] == len(self.context):
            return self._globals_cache[1]
        counts = []
        for w in self.context:
            if w.kind != "int" or w.node.op is not Op.WIDTH:
                continue
            ints = self.u.as_ints()[w.sem.codes[: self.n]]
            if ((ints == ints[:, :1]) | ~self.imask).all():
                counts.append((w, ints[:, 0]))
        out = []
        for y_entry, y in counts:
            others = [(z_entry, z) for z_entry, z in counts if z_entry.node is not y_entry.node]
            guards = [(z_entry, g.lam) for z_entry, _ in others for g in P.INT_COMPARISONS]
            holds = np.array([g.lam.call(y, z) for _, z in others for g in P.INT_COMPARISONS], dtype=bool)
            out.append((y_entry, y, guards, holds.reshape(len(guards), self.n)))
        self._globals_cache = (len(self.context), out)
        return out

    def relation(self, entry: Entry) -> None:
        """Broadcast target = no position j has R(e_j, y) [and a guard g(y, z)]."""
        if entry.node.op is not Op.WIDTH:
            return  # counts per position (balances, ranks) are what is compared with a total
        x = self.u.as_ints()[entry.sem.codes[: self.n]]
        if ((x == x[:, :1]) | ~self.imask).all():
            return  # a global count: nothing to quantify over
        globals_ = self._globals()
        if not globals_:
            return
        target = self.truth[:, 0]
        ys = np.stack([y for _, y, _, _ in globals_])  # [G, n]
        for name, rel in _RELATIONS.items():
            violated = (rel(x[None], ys[:, :, None]) & self.imask[None]).any(-1)  # [G, n]
            # never (always) violated: x adds nothing; violated where the target holds: no fit
            useful = violated.any(1) & ~violated.all(1) & ~(violated & target[None]).any(1)
            for gi in np.flatnonzero(useful):
                y_entry, _, guards, holds = globals_[gi]
                a = violated[gi]
                if y_entry.node is entry.node:
                    continue
                if (target == ~a).all():
                    self._propose_tree(B.none_related(entry.node, y_entry.node, P.BY_NAME[name]))
                    continue
                free = ~a
                for i in np.flatnonzero((holds[:, free] == target[free]).all(-1)) if guards else ():
                    z_entry, g = guards[i]
                    self._propose_tree(B.none_related(entry.node, y_entry.node, P.BY_NAME[name],
                                                      guard=(z_entry.node, g)))

    def finish(self, node: Node, sem: Sem, arr: np.ndarray) -> None:
        """One unary function from this expression onto the target."""
        if len(sem.vset) > 64:
            return
        got = arr[: self.n][self.imask]
        if (got[self.probe_left] == got[self.probe_right]).any():
            return
        mapping = functional([got], self.flat)
        if mapping is None:
            return
        key = (sem.vset, mapping)
        fns = self._unary.get(key)
        if fns is None:
            fns = self._finishers(sem.vset, mapping)
            self._unary[key] = fns
        if not fns and self.tables:
            fns = self._table(node, sem, mapping)
        for fn in fns:
            out = self.ev.map(fn, sem)
            if out is not None:
                self.propose(make(Op.MAP, (node,), fn), out)

    # ---- functions inferred from the data (tables.py) -----------------------------------

    def _reachable(self, node: Node, sem: Sem) -> list[Any]:
        """Values this expression takes on some row (induction or synthetic); all tokens."""
        codes = np.unique(sem.codes[self.mask])
        values = [self.u.values[c] for c in codes.tolist()]
        if node.op is Op.TOKENS:
            values += [self.u.values[c] for c in sem.vset]
        return values

    def _refuse(self, node: Node, why: T.Refusal) -> None:
        if len(self.refusals) < 5:
            from autoconn.inducers.search.lower import describe
            try:
                text = describe(node)
            except Exception:  # noqa: BLE001 - only for the message
                text = node.op.value
            self.refusals.append(f"{text[:60]}: {why}")

    def _fit(self, domain: list[Any]) -> T.Fit:
        def fit(src: list[Any], dst: list[Any]) -> Lam | None:
            kind_values = [v for v in domain if not T.same(v, self.sentinel)] if self.sentinel is not None else domain
            found = self._fit_values(kind_values, src, dst)
            return found[0] if found else None
        return fit

    def _table(self, node: Node, sem: Sem, mapping: Any) -> list[Lam]:
        """Target = f(this expression) with f inferred from the examples (made total)."""
        domain = self.ev.values(sem.vset)
        pairs = {self.u.values[a[0]]: self.u.values[b] for a, b in mapping}
        got = T.infer_unary(domain, pairs, self._reachable(node, sem), self._fit(domain), self.sentinel)
        if isinstance(got, T.Refusal):
            self._refuse(node, got)
            return []
        return [_noted(got.lam, got.note)]

    def _fit_pairs(self, ka: str, kb: str) -> Callable[[list[tuple[Any, Any]], list[Any]], Lam | None]:
        def fit2(pairs: list[tuple[Any, Any]], dst: list[Any]) -> Lam | None:
            kinds = (P.value_kind(a for a, _ in pairs), P.value_kind(b for _, b in pairs))
            pools = P.Pools(self.pools.tokens, tuple(dict.fromkeys(list(self.pools.outputs) + dst)), self.pools.ints,
                            self.pools.sentinels)
            for fn in P.binary_library(kinds[0], kinds[1], pools):
                try:
                    if all(_same(fn.lam.call(x, y), t) for (x, y), t in zip(pairs, dst)):
                        return fn.lam
                except Exception:  # noqa: BLE001
                    continue
            return None
        return fit2

    def _table2(self, a: Entry, b: Entry) -> None:
        """Target = f(a, b) with f inferred from the examples (made total)."""
        av, bv = a.sem.codes[: self.n][self.imask], b.sem.codes[: self.n][self.imask]
        mapping = functional([av, bv], self.flat)
        if mapping is None:
            return
        da, db = self.ev.values(a.sem.vset), self.ev.values(b.sem.vset)
        pairs = {(self.u.values[x], self.u.values[y]): self.u.values[t] for (x, y), t in mapping}
        both = np.unique(a.sem.codes[self.mask].astype(np.int64) * (1 << 20) + b.sem.codes[self.mask])
        reach = [(self.u.values[int(c) >> 20], self.u.values[int(c) & ((1 << 20) - 1)]) for c in both]
        got = T.infer_binary(da, db, pairs, reach, self._fit(db), self._fit_pairs(a.kind, b.kind), self.sentinel)
        if isinstance(got, T.Refusal):
            self._refuse(make(Op.SEQMAP, (a.node, b.node), T.PAIR), got)
            return
        fn = _noted(got.lam, got.note)
        out = self.ev.seqmap(fn, a.sem, b.sem)
        if out is not None:
            self.propose(make(Op.SEQMAP, (a.node, b.node), fn), out)

    def _finishers(self, vset: frozenset[int], mapping: tuple[tuple[tuple[int, ...], int], ...]) -> list[Lam]:
        src = [self.u.values[a[0]] for a, _ in mapping]
        dst = [self.u.values[b] for _, b in mapping]
        return self._fit_values(self.ev.values(vset), src, dst)

    def _fit_values(self, values: list[Any], src: list[Any], dst: list[Any]) -> list[Lam]:
        """Library functions on a value set that map every src onto its dst."""
        extra: list[Any] = list(dict.fromkeys(dst))
        if all(isinstance(v, int) and not isinstance(v, bool) for v in src + dst):
            extra += list(dict.fromkeys([t - s for s, t in zip(src, dst)] + [s + t for s, t in zip(src, dst)]))
        fns = P.unary_library(values, self.pools, outputs=True, extra=extra)
        if len(set(map(repr, dst))) == 2:  # a two-way switch on one value: a if x == c else b
            for c, a in zip(src, dst):
                others = {repr(t): t for s, t in zip(src, dst) if s != c}
                if len(others) == 1 and repr(a) not in others:
                    fns.append(P.switch(c, a, next(iter(others.values()))))
        out = []
        for fn in fns:
            try:
                if all(_same(fn.call(s), t) for s, t in zip(src, dst)):
                    out.append(fn)
            except Exception:  # noqa: BLE001 - not applicable to these values
                continue
        return out[:MAX_FINISHERS]

    def binary_finish(self, entry: Entry) -> None:
        """One SequenceMap of this attention output and a context expression onto the target."""
        got = entry.sem.codes[: self.n][self.imask]
        same = got[self.probe_left] == got[self.probe_right]
        for w, w_same in zip(self.context, self.context_same):
            if w.node is entry.node or (same & w_same).any():
                continue
            mapping = functional([got, w.sem.codes[: self.n][self.imask]], self.flat)
            if mapping is None:
                continue
            fns = self._binary_fns(entry, w, mapping)
            if not fns and self.tables:
                first, second = (entry, w) if entry.node.window or not w.node.window \
                    else (w, entry)
                self._table2(first, second)
                continue
            for fn, swap in fns:
                a, b = (w, entry) if swap else (entry, w)
                out = self.ev.seqmap(fn, a.sem, b.sem)
                if out is not None:
                    self.propose(make(Op.SEQMAP, (a.node, b.node), fn), out)

    def _binary_fns(self, e: Entry, w: Entry, mapping: Any) -> list[tuple[Lam, bool]]:
        key = (e.sem.vset, w.sem.vset, mapping)
        found = self._binary.get(key)
        if found is not None:
            return found
        pairs = [((self.u.values[a], self.u.values[b]), self.u.values[t]) for (a, b), t in mapping]
        dst = list(dict.fromkeys(t for _, t in pairs))
        pools = P.Pools(self.pools.tokens, tuple(dict.fromkeys(list(self.pools.outputs) + dst)), self.pools.ints,
                        self.pools.sentinels)
        found = []
        for swap in (False, True):
            ka, kb = (w.kind, e.kind) if swap else (e.kind, w.kind)
            fns = P.binary_library(ka, kb, pools)
            if ka == kb == "int" and 1 < len(dst) <= 3:
                fns += [P.compare3(*abc) for abc in itertools.permutations(dst + dst[:1] * (3 - len(dst)), 3)]
            for fn in fns:
                try:
                    if all(_same(fn.lam.call(*((y, x) if swap else (x, y))), t) for (x, y), t in pairs):
                        found.append((fn.lam, swap))
                except Exception:  # noqa: BLE001
                    continue
        self._binary[key] = found[:MAX_FINISHERS]
        return self._binary[key]

    def _positions(self, vset: frozenset[int]) -> bool:
        """Whether some values of this set can name positions (ints in 0..max_seq_len-1)."""
        found = self._position_sets.get(vset)
        if found is None:
            ints = self.u.as_ints()[sorted(vset)]
            found = bool(((ints >= 0) & (ints < self.batch.width)).any())
            self._position_sets[vset] = found
        return found

    def source(self, entry: Entry, ints: np.ndarray) -> None:
        """Target[q] = value[e[q]]: read the value at the position e names."""
        if not self.values:
            return
        inside = (ints >= 0) & (ints < self.lengths[:, None])
        if not (inside | ~self.imask).all():
            return
        pos = np.where(self.imask, ints, 0)
        for v, allowed in self.values:
            if (allowed[self.rows, self.cols, pos] | ~self.imask).all():
                select = make(Op.SELECT, (INDICES, entry.node), pred=P.BY_NAME["EQ"])
                self._aggregate(select, v, self.ev.indices, entry.sem)

    def inverse_source(self, entry: Entry, ints: np.ndarray) -> None:
        """Target[e[k]] = value[k]: e is a permutation saying where each value goes."""
        if not self.values:
            return
        expected_sum = self.lengths * (self.lengths - 1) // 2
        if not (np.where(self.imask, ints, 0).sum(-1) == expected_sum).all():
            return
        big = self.batch.width + 1
        sorted_rows = np.sort(np.where(self.imask, ints, big), axis=1)
        if not ((sorted_rows == self.cols) | ~self.imask).all():
            return
        pos = np.where(self.imask, ints, 0)
        moved = np.take_along_axis(self.target, pos, axis=1)
        for v, _ in self.values:
            if ((moved == v.sem.codes[: self.n]) | ~self.imask).all():
                select = make(Op.SELECT, (entry.node, INDICES), pred=P.BY_NAME["EQ"])
                self._aggregate(select, v, entry.sem, self.ev.indices)

    def _aggregate(self, select: Node, v: Entry, keys: Sem, queries: Sem) -> None:
        sel = self.ev.select(select.predicate, keys, queries)
        out = self.ev.aggregate(sel, v.sem) if sel is not None else None
        if out is not None:
            self.propose(make(Op.AGGREGATE, (select, v.node)), out)

    def count(self, entry: Entry, marks: np.ndarray) -> None:
        """Broadcast target = f(number of marked positions)."""
        counts = marks.sum(-1)
        mapping = functional([counts], self.row_target)
        if mapping is None:
            return
        select = make(Op.SELECT, (entry.node, TOKENS), pred=P.KEY_TRUE)
        sel = self.ev.select(P.KEY_TRUE, entry.sem, self.ev.tokens)
        if sel is None:
            return
        width = make(Op.WIDTH, (select,))
        sem = self.ev.width(sel)
        sig, arr = sem.signature(self.mask)
        if (arr[: self.n] == np.where(self.imask, self.target, arr[: self.n])).all():
            self.propose(width, sem)
        else:
            self.finish(width, sem, arr)

    def compare_count(self, entry: Entry, tokens: Entry) -> None:
        """Broadcast target = f(number of positions where moved values equal the tokens),
        e.g. a palindrome: the reversed tokens equal the tokens everywhere."""
        for fn in (P.EQ2, P.NE2):
            sem = self.ev.seqmap(fn.lam, entry.sem, tokens.sem)
            if sem is None:
                continue
            node = make(Op.SEQMAP, (entry.node, tokens.node), fn.lam)
            marks = self.u.as_bools()[sem.codes[: self.n]].astype(bool) & self.imask
            self.count(Entry(node, sem, "bool", None), marks)

    def unique(self, node: Node, sem: Sem, marks: np.ndarray) -> None:
        """Broadcast target = the value at the marked position (or positions, for int
        values that agree)."""
        if not self.values:
            return
        counts = marks.sum(-1)
        if not (counts >= 1).all():
            return
        for v, _ in self.values:
            if not (counts == 1).all() and not self.ev.int_valued(v.sem.vset):
                continue
            if not (marks & (v.sem.codes[: self.n] != self.row_target[:, None])).any():
                select = make(Op.SELECT, (node, TOKENS), pred=P.KEY_TRUE)
                self._aggregate(select, v, sem, self.ev.tokens)
