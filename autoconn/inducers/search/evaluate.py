"""Vectorised numpy semantics of the expression language, equal to ``rasp.evaluate``.

Values are interned into integer codes (``Universe``), so a categorical SOp evaluated on a
batch is an int array [rows, max_seq_len] plus its value set (the set tracr infers). A
Map or SequenceMap is evaluated by building its lookup table over that value set, exactly
the way tracr calls the function at compile time: a function that fails or returns None
anywhere on the value set is rejected here, so whatever the search keeps compiles.

The batch holds the induction inputs first and then synthetic inputs (random sequences up
to max_seq_len): synthetic rows have no expected outputs but make observational
equivalence mean "same values on lengths never seen as well", and reveal a categorical
Aggregate whose selector stops picking exactly one position at other lengths ("bad" rows).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autoconn.inducers.search.dsl import Lam, Node, Op, Pred

MISSING = -1  # code written at padded positions when hashing
CODE = np.int32  # value codes: the universe of one search stays far below 2**31


def _intern_key(value: Any) -> tuple[str, Any]:
    """Type-aware identity: True and 1 stay apart (tracr's value sets would merge them,
    so value sets mixing them are rejected), 2 and 2.0 are the same number."""
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, tuple):
        return ("t", tuple(_intern_key(v) for v in value))
    return ("o", repr(value))


class Universe:
    """Interns every value the search meets; codes index the lookup tables."""

    def __init__(self) -> None:
        self.values: list[Any] = []
        self._codes: dict[tuple[str, Any], int] = {}
        self._ints = np.zeros(0, dtype=np.int64)
        self._bools = np.zeros(0, dtype=np.int64)

    def code(self, value: Any) -> int:
        key = _intern_key(value)
        found = self._codes.get(key)
        if found is None:
            found = len(self.values)
            self._codes[key] = found
            self.values.append(value)
        return found

    def __len__(self) -> int:
        return len(self.values)

    def as_bools(self) -> np.ndarray:
        """code -> 1 where the value is True, else 0."""
        if len(self._bools) != len(self.values):
            self._bools = np.array([v is True for v in self.values], dtype=np.int64)
        return self._bools

    def as_ints(self) -> np.ndarray:
        """code -> the value when it is a (non-bool) int, else a large negative sentinel."""
        if len(self._ints) != len(self.values):
            self._ints = np.array([v if isinstance(v, int) and not isinstance(v, bool) else -10**9
                                   for v in self.values], dtype=np.int64)
        return self._ints


@dataclass
class Batch:
    """Input rows padded to max_seq_len: induction rows first, then synthetic rows."""

    inputs: list[tuple[Any, ...]]
    n_induction: int
    width: int  # = max_seq_len
    mask: np.ndarray  # [R, width] bool
    lengths: np.ndarray  # [R]

    @property
    def rows(self) -> int:
        return len(self.inputs)

    @classmethod
    def build(cls, induction: Sequence[Sequence[Any]], vocab: Sequence[Any], max_seq_len: int,
              synthetic: int = 24, seed: int = 0) -> Batch:
        inputs = [tuple(x) for x in induction]
        inputs += synthetic_inputs(inputs, vocab, max_seq_len, synthetic, seed)
        lengths = np.array([len(x) for x in inputs], dtype=np.int64)
        mask = np.arange(max_seq_len)[None, :] < lengths[:, None]
        return cls(inputs, len(induction), max_seq_len, mask, lengths)


def synthetic_inputs(induction: Sequence[tuple[Any, ...]], vocab: Sequence[Any], max_seq_len: int,
                     count: int, seed: int) -> list[tuple[Any, ...]]:
    """Random inputs shaped like the induction ones (distinct tokens if they all are), with
    lengths spread up to max_seq_len; deterministic for a given task."""
    if count <= 0 or not vocab:
        return []
    digest = hashlib.sha256(repr((seed, list(map(repr, vocab)), [list(map(repr, x)) for x in induction])).encode())
    rng = random.Random(int.from_bytes(digest.digest()[:8], "little"))
    distinct = all(len(set(x)) == len(x) for x in induction) and any(len(x) > 1 for x in induction)
    shortest = min((len(x) for x in induction), default=1)
    longest = min(max_seq_len, len(vocab)) if distinct else max_seq_len
    shortest = min(shortest, longest)
    out = []
    for i in range(count):
        n = shortest + round(i * (longest - shortest) / max(1, count - 1))
        if distinct:
            out.append(tuple(rng.sample(list(vocab), n)))
        else:
            out.append(tuple(rng.choice(list(vocab)) for _ in range(n)))
    return out


@dataclass
class Sem:
    """A categorical SOp evaluated on a batch."""

    codes: np.ndarray  # [R, width] CODE array (padded positions hold some code of vset)
    vset: frozenset[int]  # the value set tracr infers, as codes
    bad: np.ndarray | None = None  # [R] rows where a categorical Aggregate did not pick exactly one

    def signature(self, mask: np.ndarray) -> tuple[int, np.ndarray]:
        """(hash over all rows, the masked codes): the caller compares the induction part."""
        arr = np.where(mask, self.codes, MISSING)
        if self.bad is not None:
            arr[self.bad] = MISSING - 1
        return hash(arr.tobytes()), arr


@dataclass
class NumSem:
    """A numerical SOp evaluated on a batch."""

    values: np.ndarray  # [R, width] float
    bad: np.ndarray | None = None


@dataclass
class SelSem:
    """A selector evaluated on a batch: [R, query, key] booleans (padding never selected)."""

    matrix: np.ndarray
    bad: np.ndarray | None = None

    @property
    def width(self) -> np.ndarray:
        return self.matrix.sum(-1)


@dataclass
class Entry:
    """An expression the search keeps: its tree, its values, and what they are."""

    node: Node
    sem: Sem
    kind: str  # value kind of its value set: bool / int / str / mixed
    support: frozenset[str] | None  # inputs of an elementwise expression; None once attention is involved
    ops: int = 0  # Maps and SequenceMaps in an elementwise expression (0 otherwise)


def _or(*bads: np.ndarray | None) -> np.ndarray | None:
    present = [b for b in bads if b is not None]
    if not present:
        return None
    out = present[0].copy()
    for b in present[1:]:
        out |= b
    return out


class Evaluator:
    """Evaluates expressions on one batch, caching every lookup table by value set."""

    def __init__(self, batch: Batch, vocab: Sequence[Any], max_seq_len: int,
                 universe: Universe | None = None, max_values: int | None = None) -> None:
        self.batch = batch
        self.u = universe or Universe()
        self.max_seq_len = max_seq_len
        self.max_values = max_values or max(128, 16 * (max_seq_len + 1))
        self.vocab = tuple(vocab)
        self._map_cache: dict[tuple[str, frozenset[int]], tuple[np.ndarray, frozenset[int]] | None] = {}
        self._seq_cache: dict[tuple[str, frozenset[int], frozenset[int]], tuple[np.ndarray, frozenset[int]] | None] = {}
        self._pred_cache: dict[tuple[str, frozenset[int], frozenset[int]], np.ndarray | None] = {}
        self._pos_cache: dict[frozenset[int], np.ndarray] = {}
        self._memo: dict[int, Any] = {}
        self.pair_mask = batch.mask[:, :, None] & batch.mask[:, None, :]
        self.int_codes = np.array([self.u.code(i) for i in range(max_seq_len + 1)], dtype=CODE)
        self.width_vset = frozenset(int(c) for c in self.int_codes)
        w = batch.width
        tok = np.zeros((batch.rows, w), dtype=CODE)
        fill = self.u.code(self.vocab[0])
        for r, x in enumerate(batch.inputs):
            tok[r, :] = fill
            tok[r, :len(x)] = [self.u.code(t) for t in x]
        self.tokens = Sem(tok, frozenset(self.u.code(t) for t in self.vocab))
        idx = np.broadcast_to(self.int_codes[np.arange(w)][None, :], (batch.rows, w)).copy()
        self.indices = Sem(idx, frozenset(int(c) for c in self.int_codes[:max_seq_len]))

    # ---- value-set helpers ------------------------------------------------------------

    def values(self, vset: frozenset[int]) -> list[Any]:
        return [self.u.values[c] for c in sorted(vset)]

    def _pos(self, vset: frozenset[int]) -> np.ndarray:
        pos = self._pos_cache.get(vset)
        if pos is None:
            pos = np.full(len(self.u), -1, dtype=np.intp)
            ordered = sorted(vset)
            pos[ordered] = np.arange(len(ordered))
            self._pos_cache[vset] = pos
        return pos

    def _accept(self, out_values: list[Any]) -> frozenset[int] | None:
        """The output value set, or None when tracr would mis-handle it (None values, bools
        mixed with numbers, too many values)."""
        kinds = set()
        for v in out_values:
            if v is None:
                return None
            if isinstance(v, bool):
                kinds.add("b")
            elif isinstance(v, (int, float)):
                kinds.add("n")
            else:
                kinds.add("t" if isinstance(v, tuple) else "s")
        if {"b", "n"} <= kinds or ("t" in kinds and len(kinds) > 1):
            return None
        codes = frozenset(self.u.code(v) for v in out_values)
        if len(codes) > self.max_values:
            return None
        return codes

    # ---- primitive operations ----------------------------------------------------------

    def map(self, fn: Lam, x: Sem) -> Sem | None:
        key = (fn.key, x.vset)
        if key not in self._map_cache:
            self._map_cache[key] = self._map_table(fn, x.vset)
        found = self._map_cache[key]
        if found is None:
            return None
        lut, vset = found
        return Sem(lut[x.codes], vset, x.bad)

    def _map_table(self, fn: Lam, vset: frozenset[int]) -> tuple[np.ndarray, frozenset[int]] | None:
        ordered = sorted(vset)
        try:
            outs = [fn.call(self.u.values[c]) for c in ordered]
        except Exception:  # noqa: BLE001 - any failure means tracr could not compile it
            return None
        out_vset = self._accept(outs)
        if out_vset is None:
            return None
        lut = np.zeros(max(ordered) + 1, dtype=CODE)
        lut[ordered] = [self.u.code(v) for v in outs]
        return lut, out_vset

    def seqmap(self, fn: Lam, a: Sem, b: Sem) -> Sem | None:
        key = (fn.key, a.vset, b.vset)
        if key not in self._seq_cache:
            self._seq_cache[key] = self._seq_table(fn, a.vset, b.vset)
        found = self._seq_cache[key]
        if found is None:
            return None
        table, vset = found
        out = table[self._pos(a.vset)[a.codes], self._pos(b.vset)[b.codes]]
        return Sem(out, vset, _or(a.bad, b.bad))

    def _seq_table(self, fn: Lam, va: frozenset[int], vb: frozenset[int]) -> tuple[np.ndarray, frozenset[int]] | None:
        xs, ys = self.values(va), self.values(vb)
        if len(xs) * len(ys) > 4096:
            return None
        try:
            outs = [[fn.call(x, y) for y in ys] for x in xs]
        except Exception:  # noqa: BLE001
            return None
        out_vset = self._accept([v for row in outs for v in row])
        if out_vset is None:
            return None
        table = np.array([[self.u.code(v) for v in row] for row in outs], dtype=CODE)
        return table, out_vset

    def select(self, pred: Pred, k: Sem, q: Sem) -> SelSem | None:
        key = (pred.key, k.vset, q.vset)
        if key not in self._pred_cache:
            self._pred_cache[key] = self._pred_table(pred, k.vset, q.vset)
        table = self._pred_cache[key]
        if table is None:
            return None
        nk = table.shape[1]
        qi = self._pos(q.vset)[q.codes] * nk
        ki = self._pos(k.vset)[k.codes]
        m = table.ravel().take(np.add(qi[:, :, None], ki[:, None, :]))
        m &= self.pair_mask
        return SelSem(m, _or(k.bad, q.bad))

    def _pred_table(self, pred: Pred, vk: frozenset[int], vq: frozenset[int]) -> np.ndarray | None:
        ks, qs = self.values(vk), self.values(vq)
        try:
            return np.array([[bool(pred.lam.call(kv, qv)) for kv in ks] for qv in qs], dtype=bool).reshape(len(qs), len(ks))
        except Exception:  # noqa: BLE001
            return None

    def width(self, sel: SelSem) -> Sem:
        w = sel.width
        return Sem(self.int_codes[w], self.width_vset, sel.bad)

    def aggregate(self, sel: SelSem, v: Sem) -> Sem | None:
        """Categorical Aggregate: None unless, at every induction position, exactly one
        position is selected -- or, for int values, the selected positions all hold the same
        value (the compiled head averages identical one-hot vectors, and rasp.evaluate's
        mean of equal ints is that int). Synthetic rows where this fails become bad rows."""
        ok = self.moves_one_value(sel.matrix, v)
        n = self.batch.n_induction
        if not ok[:n].all():
            return None
        pick = sel.matrix.argmax(-1)
        out = np.take_along_axis(v.codes, pick, axis=1)
        row_bad = np.asarray(~ok.all(-1))
        bad = _or(sel.bad, v.bad, row_bad if row_bad.any() else None)
        return Sem(out, v.vset, bad)

    def moves_one_value(self, matrix: np.ndarray, v: Sem) -> np.ndarray:
        """[R, L]: where the selection reads exactly one value (True at padding)."""
        width = matrix.sum(-1)
        ok = (width == 1) | ~self.batch.mask
        if ok.all() or not self.int_valued(v.vset):
            return ok
        pick = matrix.argmax(-1)
        chosen = np.take_along_axis(v.codes, pick, axis=1)
        differs = matrix & (v.codes[:, None, :] != chosen[:, :, None])
        return ok | ((width >= 1) & ~differs.any(-1))

    def int_valued(self, vset: frozenset[int]) -> bool:
        return all(isinstance(self.u.values[c], int) and not isinstance(self.u.values[c], bool) for c in vset)

    def nummap(self, fn: Lam, x: Sem) -> NumSem | None:
        """A categorical -> numerical Map; only 0/1 results (the only thing tracr averages)."""
        key = (fn.key, x.vset)
        if key not in self._map_cache:
            self._map_cache[key] = self._map_table(fn, x.vset)
        found = self._map_cache[key]
        if found is None:
            return None
        lut, vset = found
        if not all(self.u.values[c] in (0, 1) for c in vset):
            return None
        numbers = np.zeros(max(vset) + 1)
        for c in vset:
            numbers[c] = float(self.u.values[c])
        return NumSem(numbers[lut[x.codes]], x.bad)

    def mean(self, sel: SelSem, x: NumSem) -> NumSem:
        w = sel.width
        total = (sel.matrix * x.values[:, None, :]).sum(-1)
        return NumSem(np.where(w > 0, total / np.maximum(w, 1), 0.0), _or(sel.bad, x.bad))

    # ---- whole expressions -------------------------------------------------------------

    def evaluate(self, node: Node) -> Sem | NumSem | SelSem | None:
        """Evaluates a tree (memoised by node identity); None if some part is rejected."""
        found = self._memo.get(id(node))
        if found is not None and found[0] is node:  # the node is kept, so its id is never reused
            return found[1]
        result = self._evaluate(node)
        self._memo[id(node)] = (node, result)
        return result

    def _evaluate(self, node: Node) -> Any:
        if node.op is Op.TOKENS:
            return self.tokens
        if node.op is Op.INDICES:
            return self.indices
        # The op fixes each child's kind (Sem, NumSem or SelSem): the search builds only well-kinded nodes.
        kids: list[Any] = [self.evaluate(c) for c in node.children]
        if any(k is None for k in kids):
            return None
        if node.op is Op.MAP:
            return self.map(node.function, kids[0])
        if node.op is Op.NUMMAP:
            return self.nummap(node.function, kids[0])
        if node.op is Op.SEQMAP:
            return self.seqmap(node.function, kids[0], kids[1])
        if node.op is Op.SELECT:
            return self.select(node.predicate, kids[0], kids[1])
        if node.op is Op.WIDTH:
            return self.width(kids[0])
        if node.op is Op.AGGREGATE:
            return self.aggregate(kids[0], kids[1])
        if node.op is Op.MEAN:
            return self.mean(kids[0], kids[1])
        raise ValueError(f"unknown op {node.op}")

    def decode(self, sem: Sem | NumSem, row: int) -> list[Any]:
        n = int(self.batch.lengths[row])
        if isinstance(sem, NumSem):
            return [float(v) for v in sem.values[row, :n]]
        return [self.u.values[c] for c in sem.codes[row, :n]]
