#!/usr/bin/env python3
"""Writes small task files the offline search was never tuned on (tests/inducers/unseen/).

They exercise the generic building blocks (running balances, argmax, nearest marked
position). Said plainly, so no figure over them over-claims: two are close variants of suite
tasks — prefix_never_more_b is dyck1_prefix's "never below zero" condition with other letters,
most_frequent_ties_last is most_freq with the other tie-break — and two are new rules
(running_max, previous_mark_is_x) built from pieces the suite also uses. Rules nobody here wrote
are in ../shared/suites/. Stdlib only, fixed seeds: rerunning rewrites identical files.

    python tests/inducers/unseen/generate.py
"""

from __future__ import annotations

import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PER_LENGTH = (3, 6, 9, 11, 12, 12, 12, 20)  # as rule_examples: the longest length is held out


def prefix_never_more_b(x: list[str]) -> list[bool]:
    """At i: no prefix 0..j (j <= i) has more b than a."""
    out, balance, ok = [], 0, True
    for t in x:
        balance += 1 if t == "a" else -1
        ok = ok and balance >= 0
        out.append(ok)
    return out


def most_frequent_ties_last(x: list[str]) -> str:
    """The most frequent token; ties go to the alphabetically largest."""
    return max(sorted(set(x)), key=lambda t: (x.count(t), t))


def running_max(x: list[int]) -> list[int]:
    """At i: the largest digit among positions 0..i."""
    return [max(x[: i + 1]) for i in range(len(x))]


def previous_mark_is_x(x: list[str]) -> list[bool]:
    """At i: True iff the nearest non-'-' token left of i is 'x' (False when there is none)."""
    out, last = [], None
    for t in x:
        out.append(last == "x")
        if t != "-":
            last = t
    return out


TASKS: dict[str, tuple[str, list[Any], Callable[[list[Any]], Any]]] = {
    "prefix_never_more_b": ("At i, True iff no prefix 0..j (j <= i) has more 'b' than 'a'.", list("ab"),
                            prefix_never_more_b),
    "most_frequent_ties_last": ("The most frequent token; ties go to the alphabetically largest.", list("xyz"),
                                most_frequent_ties_last),
    "running_max": ("At i, the largest digit among positions 0..i.", [0, 1, 2, 3, 4, 5], running_max),
    "previous_mark_is_x": ("At i, True iff the nearest non-'-' token left of i is 'x'.", list("xy-"),
                           previous_mark_is_x),
}


def rows(name: str, vocab: list[Any], rule: Callable[[list[Any]], Any]) -> list[dict[str, Any]]:
    rng = random.Random(zlib.crc32(name.encode()))
    out, seen = [], set()
    for length, wanted in enumerate(PER_LENGTH, start=1):
        wanted = min(wanted, len(vocab) ** length)
        tries = 0
        while sum(1 for r in out if len(r["input"]) == length) < wanted and tries < 10000:
            tries += 1
            x = [rng.choice(vocab) for _ in range(length)]
            if tuple(x) not in seen:
                seen.add(tuple(x))
                out.append({"input": x, "output": rule(x)})
    return out


def main() -> None:
    for name, (description, vocab, rule) in TASKS.items():
        header = {"name": name, "description": description, "vocab": vocab}
        lines = [json.dumps(header)] + [json.dumps(r) for r in rows(name, vocab, rule)]
        (HERE / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
