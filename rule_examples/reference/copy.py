"""copy: the input token at each position (identity). 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x, rasp.tokens)).named("copy")
