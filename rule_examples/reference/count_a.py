"""count_a: number of "a" tokens, broadcast. 1 layer (SelectorWidth)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "a")).named("count_a")
