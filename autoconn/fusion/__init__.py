"""Neural Comprehension: a language model plus registered CoNNs (arXiv 2304.01665).

One module per job:
  metadata.py     the fusion spec in conn.json ("fusion"): operand start, trigger, split,
                  token map, output format; defaults and validation
  gate.py         β from the context: which CoNN fires, its operand, or why it cannot
  conn_tool.py    a library CoNN with its spec: parsed operand -> compiled model -> answer text
  marks.py        Span / Fallback records shared by both decoders
  token_level.py  fuse_decode: lockstep greedy decoding with any CharLM (lm.py), CoNNs writing
                  one-hot where the gate opens
  text_level.py   fuse_chat: a chat model over an OpenAI-compatible API, triggers as stop sequences
  lm.py           the CharLM protocol; demo_lm/ the in-process demo character LM
"""
