"""Trusted RASP programs of our own, built in-process for runtime and library tests."""

from __future__ import annotations

from tracr.compiler import lib
from tracr.rasp import rasp


def length() -> rasp.SOp:
    return rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")


def reverse() -> rasp.SOp:
    opp = (length() - rasp.indices).named("opp_index")
    opp = (opp - 1).named("opp_index_minus_1")
    return rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens).named("reverse")


def hist() -> rasp.SOp:
    return rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")


def sort_unique() -> rasp.SOp:
    return lib.make_sort_unique(rasp.tokens, rasp.tokens)


def frac_prevs() -> rasp.SOp:
    return lib.make_frac_prevs(rasp.tokens == "x")


def parity() -> rasp.SOp:
    """Parity of the number of 1s, broadcast: every query selects the keys holding 1."""
    count = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda key, query: key == 1)).named("ones")
    return rasp.Map(lambda c: c % 2, count).named("parity")
