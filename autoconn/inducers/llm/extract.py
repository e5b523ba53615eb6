"""Pull the program out of a model's reply, whatever shape the reply took.

Models fence code (```python, ```py, bare ```), forget to fence it, or answer in prose only.
The rule: prefer a fenced block that binds `program`; else the last fenced block that looks
like RASP; else unfenced text from the first tracr import on. No code at all returns None,
which the inducer turns into a feedback turn rather than an error.
"""

from __future__ import annotations

import re

FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)
BINDS_PROGRAM = re.compile(r"^\s*program\s*(?::[^=]+)?=", re.MULTILINE)
TRACR_IMPORT = re.compile(r"^\s*(from\s+tracr[\w.]*\s+import|import\s+tracr)", re.MULTILINE)
THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL | re.IGNORECASE)


def extract_program(reply: str) -> str | None:
    """The candidate source in `reply`, or None when the reply holds no usable code."""
    text = THINK_BLOCK.sub("", reply or "")
    blocks = [(lang.lower(), body.strip("\n")) for lang, body in FENCE.findall(text)]
    code_blocks = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    binding = [body for body in code_blocks if BINDS_PROGRAM.search(body)]
    if binding:
        return _with_import(binding[-1])
    rasp_like = [body for body in code_blocks if "rasp." in body]
    if rasp_like:
        return _with_import(rasp_like[-1])
    if blocks:
        return None
    start = TRACR_IMPORT.search(text)
    if start and BINDS_PROGRAM.search(text[start.start():]):
        return _with_import(_code_lines(text[start.start():]))
    return None


def _code_lines(text: str) -> str:
    """Unfenced code: keep lines up to the last one that is plausibly Python."""
    lines = text.splitlines()
    last = 0
    for number, line in enumerate(lines):
        if BINDS_PROGRAM.match(line):
            last = number
    end = last + 1
    while end < len(lines) and (lines[end].startswith((" ", "\t", ")")) or lines[end].strip() in ("", ")")):
        if lines[end].strip() == "":
            break
        end += 1
    return "\n".join(lines[:end]).strip("\n")


def _with_import(source: str) -> str:
    """Models often drop the import line; the rasp import is always safe to add."""
    if "rasp." in source and not re.search(r"from\s+tracr\.rasp\s+import\s+rasp|import\s+tracr", source):
        source = "from tracr.rasp import rasp\n\n" + source
    return source.strip() + "\n"
