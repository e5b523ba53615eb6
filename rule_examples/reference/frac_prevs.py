"""frac_prevs: fraction of tokens at positions 0..i equal to "x" (numerical output).

2 layers: a numerical 0/1 indicator (MLP), then a mean over positions <= i (attention).
"""
from tracr.rasp import rasp

is_x = rasp.numerical(rasp.Map(lambda t: 1 if t == "x" else 0, rasp.tokens)).named("is_x")
prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ).named("prevs")
program = rasp.numerical(rasp.Aggregate(prevs, is_x, default=0)).named("frac_prevs")
