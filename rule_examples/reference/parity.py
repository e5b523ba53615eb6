"""parity: number of 1s mod 2, broadcast. 2 layers: count the 1s, then mod 2 (MLP)."""
from tracr.rasp import rasp

ones = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == 1)).named("count_ones")
program = rasp.categorical(rasp.Map(lambda c: c % 2, ones)).named("parity")
