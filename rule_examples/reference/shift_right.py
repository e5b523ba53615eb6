"""shift_right: position 0 gets "_", position i gets token i-1.

1 layer: the attention reads position max(i-1, 0) (always exactly one position, so no
None/default), and the MLP writes "_" at position 0.
"""
from tracr.rasp import rasp

prev = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == max(q - 1, 0)).named("select_prev")
prev_tok = rasp.categorical(rasp.Aggregate(prev, rasp.tokens)).named("prev_token")
program = rasp.categorical(
    rasp.SequenceMap(lambda x, i: "_" if i == 0 else x, prev_tok, rasp.indices)).named("shift_right")
