"""contains_a: True everywhere iff some token is "a". 2 layers: count the a's, then test > 0."""
from tracr.rasp import rasp

count_a = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == "a")).named("count_a")
program = rasp.categorical(rasp.Map(lambda c: c > 0, count_a)).named("contains_a")
