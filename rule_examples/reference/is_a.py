"""is_a: True where the token is "a". 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x == "a", rasp.tokens)).named("is_a")
