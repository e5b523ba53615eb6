"""uppercase: a -> A at each position. 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x.upper(), rasp.tokens)).named("uppercase")
