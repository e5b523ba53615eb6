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
                                  "program = rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == q),"
                                  " rasp.tokens)\n",
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
    # issue 12: names the syntax tree keeps as plain strings (match patterns) and format strings
    "match_class_keyword": ("match 1:\n    case object(__class__=c):\n        pass\n", 1, "__class__"),
    "match_class_frame_attr": ("match 1:\n    case object(f_globals=g):\n        pass\n", 1, "match"),
    "match_capture_dunder": ("match 1:\n    case __x:\n        pass\n", 1, "__x"),
    "match_mapping_rest": ("match {}:\n    case {**__rest}:\n        pass\n", 1, "__rest"),
    "match_star_dunder": ("match []:\n    case [*__s]:\n        pass\n", 1, "__s"),
    "fstring_format_spec": ("y = 1\nx = f'{1:{y.__class__}}'\n", 2, "__class__"),
    "str_format_method": ("x = '{0.real}'.format(1)\n", 1, "format"),
    "global_dunder": ("def f():\n    global __g\n", 2, "__g"),
    "except_as_dunder": ("try:\n    pass\nexcept Exception as __e:\n    pass\n", 3, "__e"),
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


def test_the_reported_match_escape_is_refused() -> None:
    """The walk-around from issue 12: a class pattern's keyword is a plain string in the tree."""
    source = ("from tracr.rasp import rasp\n"
              "match ():\n"
              "    case object(__class__=c):\n"
              "        pass\n"
              "program = rasp.tokens\n")
    message = screen_error(source)
    assert message is not None and "__class__" in message and "match" in message, message


def test_every_identifier_field_is_walked() -> None:
    """Every node field that holds an identifier (whatever the node type) is seen by the screen."""
    from autoconn.sandbox.screen import _every_identifier

    tree = ast.parse("match x:\n    case C(a=1, b=2) | {**r} | [*s] | t:\n        pass\n")
    found = {name for _, name, _ in _every_identifier(tree)}
    assert {"x", "C", "a", "b", "r", "s", "t"} <= found
