"""index: the position index (0-based). 1 layer (one MLP over token x index).

tracr refuses a program that never reads rasp.tokens, so the MLP takes the token and ignores it.
"""
from tracr.rasp import rasp

program = rasp.categorical(rasp.SequenceMap(lambda t, i: i, rasp.tokens, rasp.indices)).named("index")
