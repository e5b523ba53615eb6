"""rotate_left: position i gets token (i+1) mod length.

3 layers: length, the source index (MLP, guarded modulo), read it (attention).
"""
from tracr.rasp import rasp

length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
src = rasp.categorical(
    rasp.SequenceMap(lambda n, i: (i + 1) % n if n else 0, length, rasp.indices)).named("src_index")
program = rasp.categorical(
    rasp.Aggregate(rasp.Select(rasp.indices, src, rasp.Comparison.EQ), rasp.tokens)).named("rotate_left")
