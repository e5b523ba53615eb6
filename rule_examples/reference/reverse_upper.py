"""reverse_upper: reverse, then uppercase. 3 layers (as reverse; the uppercase MLP runs in layer 1)."""
from tracr.rasp import rasp

upper = rasp.categorical(rasp.Map(lambda t: t.upper(), rasp.tokens)).named("upper")
length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
opp = rasp.categorical(rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)).named("opp_index")
program = rasp.categorical(
    rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), upper)).named("reverse_upper")
