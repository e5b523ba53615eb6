"""is_even_digit: True where the digit is even. 1 layer (one MLP)."""
from tracr.rasp import rasp

program = rasp.categorical(rasp.Map(lambda x: x % 2 == 0, rasp.tokens)).named("is_even_digit")
