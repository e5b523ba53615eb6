"""majority: "a", "b" or "tie" (equal counts), broadcast.

2 layers: count a's and b's (two SelectorWidths side by side), compare them (MLP).
(A mean-of-indicator version would be one attention shorter but is wrong in tracr: see README.)
"""
from tracr.rasp import rasp

n_a = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "a")).named("n_a")
n_b = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "b")).named("n_b")
program = rasp.categorical(rasp.SequenceMap(
    lambda a, b: "a" if a > b else ("b" if b > a else "tie"), n_a, n_b)).named("majority")
