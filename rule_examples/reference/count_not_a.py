"""count_not_a: length minus the number of "a"s = number of non-"a" tokens. 1 layer (SelectorWidth)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k != "a")).named("count_not_a")
