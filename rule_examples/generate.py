#!/usr/bin/env python3
"""Writes the AutoCoNN task suite: one JSONL task file per rule into this directory.

Run: ``python rule_examples/generate.py`` (stdlib only, deterministic: the same files
every time). Each file starts with a header line ``{"name", "description", "vocab"}``
(no ``max_seq_len``: the tool defaults to twice the longest example, i.e. 16), followed by
one ``{"input": [...], "output": ...}`` line per example. ``output`` is a per-position list,
or a single value for broadcast rules (that value at every position).

Every task has 60-120 distinct inputs of lengths 1..8, with the largest group at length 8
(the loader holds out the longest length for verification). Hand-written reference RASP
programs for each task live in ``reference/<task>.py``; see README.md for the table.
"""

from __future__ import annotations

import json
import random
import string
import sys
import zlib
from pathlib import Path
from typing import Any, Callable, List, Sequence

HERE = Path(__file__).resolve().parent
MAX_LEN = 8
# Distinct examples wanted per input length (fewer when the length has fewer inputs).
QUOTA = {1: 3, 2: 6, 3: 9, 4: 11, 5: 12, 6: 12, 7: 12, 8: 20}

LETTERS5 = list("abcde")
ABC = list("abc")
DIGITS = list(range(10))


# --------------------------------------------------------------------------- samplers

def uniform(vocab: Sequence[Any]) -> Callable[[random.Random, int], List[Any]]:
    def sample(rng: random.Random, n: int) -> List[Any]:
        return [rng.choice(vocab) for _ in range(n)]
    return sample


def distinct(vocab: Sequence[Any]) -> Callable[[random.Random, int], List[Any]]:
    def sample(rng: random.Random, n: int) -> List[Any]:
        return rng.sample(list(vocab), n)
    return sample


def with_or_without(vocab: Sequence[Any], token: Any) -> Callable[[random.Random, int], List[Any]]:
    """Half the draws avoid `token`, half contain it at least once."""
    others = [t for t in vocab if t != token]

    def sample(rng: random.Random, n: int) -> List[Any]:
        if rng.random() < 0.5:
            return [rng.choice(others) for _ in range(n)]
        seq = [rng.choice(vocab) for _ in range(n)]
        seq[rng.randrange(n)] = token
        return seq
    return sample


def palindromes(vocab: Sequence[Any]) -> Callable[[random.Random, int], List[Any]]:
    def sample(rng: random.Random, n: int) -> List[Any]:
        if rng.random() < 0.5:
            half = [rng.choice(vocab) for _ in range((n + 1) // 2)]
            return half + half[: n // 2][::-1]
        return [rng.choice(vocab) for _ in range(n)]
    return sample


def _random_dyck_shape(rng: random.Random, n: int) -> List[bool]:
    """A uniformly-ish random balanced open(True)/close(False) shape of even length n."""
    seq, depth = [], 0
    for pos in range(n):
        remaining = n - pos
        if depth == 0:
            step = True
        elif depth == remaining:
            step = False
        else:
            step = rng.random() < 0.5
        seq.append(step)
        depth += 1 if step else -1
    return seq


def dyck1_balanced_sampler(rng: random.Random, n: int) -> List[str]:
    r = rng.random()
    if n % 2 == 0 and r < 0.5:
        return ["(" if s else ")" for s in _random_dyck_shape(rng, n)]
    if n % 2 == 0 and r < 0.75:  # near miss: a balanced string with one token flipped or two swapped
        seq = ["(" if s else ")" for s in _random_dyck_shape(rng, n)]
        if rng.random() < 0.5:
            i = rng.randrange(n)
            seq[i] = "(" if seq[i] == ")" else ")"
        else:
            i, j = rng.sample(range(n), 2)
            seq[i], seq[j] = seq[j], seq[i]
        return seq
    return [rng.choice("()") for _ in range(n)]


def dyck1_prefix_sampler(rng: random.Random, n: int) -> List[str]:
    if rng.random() < 0.6:  # a walk that never goes below zero
        seq, depth = [], 0
        for _ in range(n):
            step = True if depth == 0 else rng.random() < 0.5
            seq.append("(" if step else ")")
            depth += 1 if step else -1
        return seq
    return [rng.choice("()") for _ in range(n)]


PAIRS = {"(": ")", "[": "]"}


def dyck2_sampler(rng: random.Random, n: int) -> List[str]:
    r = rng.random()
    if n % 2 == 0 and r < 0.75:
        shape = _random_dyck_shape(rng, n)
        seq, stack = [], []
        for step in shape:
            if step:
                t = rng.choice("([")
                stack.append(t)
                seq.append(t)
            else:
                seq.append(PAIRS[stack.pop()])
        if r >= 0.45:  # hard negative: same bracket shape, one bracket of the other type
            i = rng.randrange(n)
            seq[i] = {"(": "[", "[": "(", ")": "]", "]": ")"}[seq[i]]
        return seq
    return [rng.choice("()[]") for _ in range(n)]


def carry_sampler(rng: random.Random, n: int) -> List[int]:
    """Per-position digit sums 0..18, with many 9s (carry propagates) and sums >= 10."""
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            out.append(9)
        elif r < 0.6:
            out.append(rng.randint(10, 18))
        else:
            out.append(rng.randint(0, 8))
    return out


# --------------------------------------------------------------------------- rules

def r_copy(xs): return list(xs)
def r_increment(xs): return [(x + 1) % 10 for x in xs]
def r_upper(xs): return [x.upper() for x in xs]
def r_index(xs): return list(range(len(xs)))
def r_first(xs): return xs[0]
def r_last(xs): return xs[-1]
def r_length(xs): return len(xs)
def r_count_a(xs): return xs.count("a")
def r_is_a(xs): return [x == "a" for x in xs]
def r_is_even(xs): return [x % 2 == 0 for x in xs]
def r_contains_a(xs): return "a" in xs
def r_add_index(xs): return [(x + i) % 10 for i, x in enumerate(xs)]

def r_reverse(xs): return list(reversed(xs))
def r_rotate_left(xs): return list(xs[1:]) + [xs[0]]
def r_shift_right(xs): return ["_"] + list(xs[:-1])
def r_hist(xs): return [xs.count(x) for x in xs]
def r_parity(xs): return sum(xs) % 2
def r_sort(xs): return sorted(xs)
def r_rank(xs): return [sum(1 for y in xs if y < x) for x in xs]
def r_dist_to_end(xs): return [len(xs) - i - 1 for i in range(len(xs))]
def r_reverse_upper(xs): return [x.upper() for x in reversed(xs)]
def r_count_not_a(xs): return sum(1 for x in xs if x != "a")
def r_prefix_count_a(xs): return [xs[: i + 1].count("a") for i in range(len(xs))]
def r_count_distinct(xs): return len(set(xs))
def r_max(xs): return max(xs)


def r_frac_prevs(xs):
    out = []
    for i in range(len(xs)):
        k = xs[: i + 1].count("x")
        out.append(k // (i + 1) if k % (i + 1) == 0 else k / (i + 1))
    return out


def r_most_freq(xs):
    best = max(xs.count(x) for x in xs)
    return min(x for x in xs if xs.count(x) == best)


def r_double_hist(xs):
    counts = {x: xs.count(x) for x in xs}
    return [sum(1 for y in counts if counts[y] == counts[x]) for x in xs]


def _depths(xs, opens=("(",)):
    d, out = 0, []
    for x in xs:
        d += 1 if x in opens else -1
        out.append(d)
    return out


def r_dyck1_balanced(xs):
    ds = _depths(xs)
    return min(ds) >= 0 and ds[-1] == 0


def r_dyck1_prefix(xs):
    out, neg = [], False
    for d in _depths(xs):
        neg = neg or d < 0
        out.append(d == 0 and not neg)
    return out


def r_dyck2_balanced(xs):
    stack = []
    for x in xs:
        if x in PAIRS:
            stack.append(x)
        elif not stack or PAIRS[stack.pop()] != x:
            return False
    return not stack


def r_add_carry(xs):
    """xs[i] = a_i + b_i (0..18), most significant digit first. Output: the digits of a + b
    at the same positions (carry out of the first position is dropped)."""
    out, carry = [0] * len(xs), 0
    for i in range(len(xs) - 1, -1, -1):
        total = xs[i] + carry
        out[i] = total % 10
        carry = 1 if total >= 10 else 0
    return out


def r_majority(xs):
    a, b = xs.count("a"), xs.count("b")
    return "a" if a > b else "b" if b > a else "tie"


def r_palindrome(xs): return list(xs) == list(reversed(xs))


# --------------------------------------------------------------------------- the suite

# (name, tier, description, vocab, sampler, rule, broadcast)
TASKS = [
    # easy
    ("copy", "easy", "Output the input token at each position (identity).",
     LETTERS5, uniform(LETTERS5), r_copy, False),
    ("increment_digit", "easy", "Add 1 to each digit, modulo 10.",
     DIGITS, uniform(DIGITS), r_increment, False),
    ("uppercase", "easy", "Uppercase each letter (a -> A).",
     list("abcdef"), uniform(list("abcdef")), r_upper, False),
    ("index", "easy", "Output the position index (0-based) at each position.",
     ABC, uniform(ABC), r_index, False),
    ("first_token", "easy", "The first token of the sequence, at every position.",
     LETTERS5, uniform(LETTERS5), r_first, True),
    ("last_token", "easy", "The last token of the sequence (last letter), at every position.",
     LETTERS5, uniform(LETTERS5), r_last, True),
    ("length", "easy", "The length of the sequence, at every position.",
     ABC, uniform(ABC), r_length, True),
    ("count_a", "easy", "How many tokens are \"a\", at every position.",
     ABC, uniform(ABC), r_count_a, True),
    ("is_a", "easy", "True where the token is \"a\", False elsewhere.",
     ABC, uniform(ABC), r_is_a, False),
    ("is_even_digit", "easy", "True where the digit is even, False where it is odd.",
     DIGITS, uniform(DIGITS), r_is_even, False),
    ("contains_a", "easy", "True at every position if any token is \"a\", else False.",
     LETTERS5, with_or_without(LETTERS5, "a"), r_contains_a, True),
    ("add_index_mod10", "easy", "Each digit plus its position index (0-based), modulo 10.",
     DIGITS, uniform(DIGITS), r_add_index, False),
    # medium
    ("reverse", "medium", "Reverse the sequence.",
     LETTERS5, uniform(LETTERS5), r_reverse, False),
    ("rotate_left", "medium", "Rotate left by one: position i gets token i+1, the last position gets the first token.",
     LETTERS5, uniform(LETTERS5), r_rotate_left, False),
    ("shift_right", "medium", "Shift right by one: position 0 gets the fill token \"_\", position i gets token i-1.",
     LETTERS5, uniform(LETTERS5), r_shift_right, False),
    ("hist", "medium", "At each position, how many times that position's token occurs in the sequence.",
     LETTERS5, uniform(LETTERS5), r_hist, False),
    ("parity", "medium", "Parity of the number of 1s in a 0/1 sequence (0 even, 1 odd), at every position.",
     [0, 1], uniform([0, 1]), r_parity, True),
    ("sort_unique", "medium", "Sort distinct digits ascending.",
     DIGITS, distinct(DIGITS), r_sort, False),
    ("rank_unique", "medium", "For distinct letters: at each position, how many letters in the sequence are smaller (0-based rank).",
     list("abcdefghij"), distinct(list("abcdefghij")), r_rank, False),
    ("frac_prevs", "medium", "At position i, the fraction of tokens at positions 0..i that are \"x\" (numerical).",
     list("xyz"), uniform(list("xyz")), r_frac_prevs, False),
    ("dist_to_end", "medium", "At position i, the number of positions after it (length - i - 1).",
     ABC, uniform(ABC), r_dist_to_end, False),
    ("reverse_upper", "medium", "Reverse the sequence, then uppercase each letter.",
     LETTERS5, uniform(LETTERS5), r_reverse_upper, False),
    ("count_not_a", "medium", "Length minus the number of \"a\" tokens, at every position.",
     ABC, uniform(ABC), r_count_not_a, True),
    ("prefix_count_a", "medium", "At position i, how many of the tokens at positions 0..i are \"a\".",
     ABC, uniform(ABC), r_prefix_count_a, False),
    ("count_distinct", "medium", "The number of distinct tokens in the sequence, at every position.",
     LETTERS5, uniform(LETTERS5), r_count_distinct, True),
    ("max_digit", "medium", "The largest digit of the sequence, at every position.",
     DIGITS, uniform(DIGITS), r_max, True),
    # hard
    ("sort", "hard", "Sort the digits ascending (duplicates kept).",
     list(range(6)), uniform(list(range(6))), r_sort, False),
    ("most_freq", "hard", "The most frequent token, at every position; ties go to the alphabetically smallest.",
     list("abcd"), uniform(list("abcd")), r_most_freq, True),
    ("double_hist", "hard", "At each position, how many distinct tokens occur exactly as often as this position's token.",
     list("abcd"), uniform(list("abcd")), r_double_hist, False),
    ("dyck1_prefix", "hard", "At position i, True iff the prefix 0..i is a balanced '(' ')' string.",
     list("()"), dyck1_prefix_sampler, r_dyck1_prefix, False),
    ("dyck1_balanced", "hard", "True at every position iff the whole '(' ')' string is balanced.",
     list("()"), dyck1_balanced_sampler, r_dyck1_balanced, True),
    ("dyck2_balanced", "hard", "True at every position iff the string of '()' and '[]' brackets is balanced and properly nested.",
     list("()[]"), dyck2_sampler, r_dyck2_balanced, True),
    ("add_carry", "hard", "Input: per-position digit sums (0..18) of two numbers, most significant first. "
     "Output: the digits of the sum after resolving carries; a carry out of the first position is dropped.",
     list(range(19)), carry_sampler, r_add_carry, False),
    ("majority", "hard", "The majority token of an a/b sequence at every position; \"tie\" when equally many.",
     list("ab"), uniform(list("ab")), r_majority, True),
    ("palindrome", "hard", "True at every position iff the sequence reads the same backwards.",
     ABC, palindromes(ABC), r_palindrome, True),
]


# --------------------------------------------------------------------------- oracles

def _oracle(rule: Callable[[List[Any]], Any], distinct_only: bool) -> Callable[[List[Any]], Any]:
    """The rule as an oracle for `autoconn`: inputs outside its domain (a repeated token where the
    task is defined on distinct tokens) answer None, which the verifier counts but never scores."""
    def oracle(xs: List[Any]) -> Any:
        if distinct_only and len(set(xs)) != len(xs):
            return None
        return rule(list(xs))
    return oracle


DISTINCT_TASKS = ("sort_unique", "rank_unique")

# One function per task, named like its file: `autoconn bench rule_examples` finds them here, and
# `autoconn induce rule_examples/sort.jsonl --oracle rule_examples/generate.py:sort` uses one directly.
for _name, _tier, _description, _vocab, _sampler, _rule, _broadcast in TASKS:
    globals()[_name] = _oracle(_rule, _name in DISTINCT_TASKS)


def examples_for(name: str, vocab, sampler, distinct_tokens: bool) -> List[List[Any]]:
    rng = random.Random(zlib.crc32(name.encode()))
    inputs: List[List[Any]] = []
    for n in range(1, MAX_LEN + 1):
        if distinct_tokens:
            space = 1
            for k in range(n):
                space *= len(vocab) - k
        else:
            space = len(vocab) ** n
        want = min(QUOTA[n], space)
        seen = set()
        attempts = 0
        while len(seen) < want and attempts < 100_000:
            attempts += 1
            xs = sampler(rng, n)
            key = tuple(xs)
            if key not in seen:
                seen.add(key)
                inputs.append(list(xs))
        if len(seen) < want:
            raise RuntimeError(f"{name}: only {len(seen)} distinct inputs of length {n}")
    return inputs


def main() -> int:
    for name, tier, description, vocab, sampler, rule, broadcast in TASKS:
        is_distinct = name in DISTINCT_TASKS
        lines = [json.dumps({"name": name, "description": description, "vocab": list(vocab)})]
        for xs in examples_for(name, vocab, sampler, is_distinct):
            out = rule(xs)
            if not broadcast:
                assert isinstance(out, list) and len(out) == len(xs), name
            lines.append(json.dumps({"input": xs, "output": out}))
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(f"{name:18s} {tier:6s} {len(lines) - 1:3d} examples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
