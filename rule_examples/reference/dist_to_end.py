"""dist_to_end: length - i - 1. 2 layers: length, then an MLP over (length, index)."""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
program = rasp.categorical(rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)).named("dist_to_end")
