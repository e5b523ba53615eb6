"""reverse: position i gets token length-1-i.

3 layers: length (attention + MLP), the source index length-1-i (MLP), read it (attention).
"""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
opp = rasp.categorical(rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)).named("opp_index")
flip = rasp.Select(rasp.indices, opp, rasp.Comparison.EQ).named("select_opp")
program = rasp.categorical(rasp.Aggregate(flip, rasp.tokens)).named("reverse")
