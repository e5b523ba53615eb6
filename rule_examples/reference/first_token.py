"""first_token: the first token, broadcast. 1 layer (one attention head that reads position 0)."""
from tracr.rasp import rasp

first = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0).named("select_first")
program = rasp.categorical(rasp.Aggregate(first, rasp.tokens)).named("first_token")
