"""increment_digit: each digit plus 1, modulo 10. 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: (x + 1) % 10, rasp.tokens)).named("increment_digit")
