"""length: the sequence length, broadcast. 1 layer (SelectorWidth of an all-true selector)."""
from tracr.rasp import rasp

program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
