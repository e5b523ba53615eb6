"""The static screen: what it refuses (with a line and a reason) and what it lets through."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from autoconn.sandbox.screen import MAX_AST_DEPTH, screen_error, screen_source

OK_SOURCES = {
    "rasp_and_lib": "from tracr.rasp import rasp\nfrom tracr.compiler import lib\n"
                    "program = lib.make_sort_unique(rasp.tokens, rasp.tokens)\n",
    "module_import": "import tracr.rasp.rasp as rasp\nprogram = rasp.Map(lambda x: x, rasp.tokens)\n",
    "helpers_and_private_names": "from tracr.rasp import rasp\ndef _twice(x):\n    return 2 * x\n"
                                 "program = rasp.numerical(rasp.Map(_twice, rasp.tokens))\n",
    "comparison_and_select": "from tracr.rasp import rasp\nsel = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)\n"
                             "program = rasp.SelectorWidth(sel)\n",
    "lambda_predicate_and_print": "from tracr.rasp import rasp\nprint('hi')\n"
                                  "program = rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == q), rasp.tokens)\n",
    "type_hint_from_rasp": "from tracr.rasp import rasp\nx: rasp.SOp = rasp.tokens\nprogram = x\n",
}

REFUSED = {
    "import_os": ("import os\n", 1, "only imports from tracr"),
    "from_import_sys": ("from sys import modules\n", 1, "only imports from tracr"),
    "relative_import": ("from . import x\n", 1, "only imports from tracr"),
    "star_import": ("from tracr.rasp.rasp import *\n", 1, "star imports"),
    "numpy_via_rasp": ("from tracr.rasp import rasp\nx = rasp.np.ones(3)\n", 2, "numpy"),
    "numpy_via_from": ("from tracr.rasp.rasp import np\n", 1, "numpy"),
    "absl_via_rasp": ("from tracr.rasp import rasp\nrasp.logging.info('x')\n", 2, "absl"),
    "module_alias": ("from tracr.rasp import rasp\nr = rasp\n", 2, "only as `rasp.<name>`"),
    "module_rebind": ("from tracr.rasp import rasp\nrasp = 1\n", 2, "must not be rebound"),
    "module_passed": ("from tracr.rasp import rasp\nprint(rasp)\n", 2, "only as"),
    "patch_attribute": ("from tracr.rasp import rasp\nrasp.Map = rasp.Full\n", 2, "assigning"),
    "delete_attribute": ("from tracr.rasp import rasp\ndel rasp.tokens.label\n", 2, "assigning"),
    "module_container": ("from tracr.rasp import rasp\nrasp.DEFAULT_ANNOTATORS.clear()\n", 2, "containers"),
    "test_module": ("from tracr.compiler import lib_test\n", 1, "not part of tracr's API"),
    "dunder_attribute": ("x = (1).__class__\n", 1, "__class__"),
    "private_attribute": ("from tracr.rasp import rasp\nx = rasp.tokens._annotations\n", 2, "private"),
    "dunder_name": ("x = __builtins__\n", 1, "__builtins__"),
    "dunder_import": ("m = __import__('os')\n", 1, "__import__"),
    "exec": ("exec('1')\n", 1, "exec"),
    "eval": ("eval('1')\n", 1, "eval"),
    "open": ("open('/etc/passwd')\n", 1, "open"),
    "compile": ("compile('1', 'x', 'eval')\n", 1, "compile"),
    "globals": ("g = globals()\n", 1, "globals"),
    "getattr": ("getattr(1, 'real')\n", 1, "getattr"),
    "setattr": ("setattr(1, 'real', 2)\n", 1, "setattr"),
    "vars": ("vars()\n", 1, "vars"),
    "breakpoint": ("breakpoint()\n", 1, "breakpoint"),
    "input": ("x = input()\n", 1, "input"),
    "memoryview": ("memoryview(b'x')\n", 1, "memoryview"),
    "frame_walk": ("def g():\n    yield 1\nx = g().gi_frame\n", 3, "gi_frame"),
    "format_dunder": ("x = '{0.__class__}'.format(1)\n", 1, "__"),
    "dunder_in_lambda": ("from tracr.rasp import rasp\nprogram = rasp.Map(lambda x: x.__class__, rasp.tokens)\n", 2, "__class__"),
    "syntax_error": ("x = (\n", 1, "SyntaxError"),
    "too_large": ("x = 1\n" * 10000, 0, "KB"),
    "too_deep": ("x = " + "-" * (MAX_AST_DEPTH + 5) + "1\n", 1, "nest"),
    "nul_byte": ("x = 1\x00\n", 0, "NUL"),
    "async": ("async def f():\n    pass\n", 1, "async"),
}


@pytest.mark.parametrize("name", sorted(OK_SOURCES))
def test_screen_lets_rasp_programs_through(name: str) -> None:
    assert screen_error(OK_SOURCES[name]) is None


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_screen_refuses_with_line_and_reason(name: str) -> None:
    source, line, words = REFUSED[name]
    problems = screen_source(source)
    assert problems, f"{name} passed the screen"
    assert problems[0].line == line, problems
    message = screen_error(source)
    assert message is not None and words in message, message
    assert len(message) < 800


def test_screen_never_raises_on_garbage() -> None:
    for source in ["", "(" * 5000, "[" * 300 + "]" * 300, "lambda: " * 2000 + "1", "\ufeffx = 1", b"bytes", None]:
        screen_source(source)  # type: ignore[arg-type]


def test_only_the_worker_executes_candidate_code() -> None:
    """Nothing in autoconn calls exec/eval/compile-to-exec except autoconn/sandbox/worker.py."""
    root = Path(__file__).resolve().parents[2] / "autoconn"
    offenders = []
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("exec", "eval"):
                if path.relative_to(root).as_posix() != "sandbox/worker.py":
                    offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []
