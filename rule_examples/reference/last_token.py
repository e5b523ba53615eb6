"""last_token: the last token, broadcast. 2 layers: length, then read position length-1."""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
last = rasp.Select(rasp.indices, length, lambda k, q: k == q - 1).named("select_last")
program = rasp.categorical(rasp.Aggregate(last, rasp.tokens)).named("last_token")
