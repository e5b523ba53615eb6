"""add_index_mod10: (digit + position index) mod 10. 1 layer (one MLP over token x index)."""
from tracr.rasp import rasp

program = rasp.categorical(
    rasp.SequenceMap(lambda x, i: (x + i) % 10, rasp.tokens, rasp.indices)).named("add_index_mod10")
