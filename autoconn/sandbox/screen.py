"""Static screen of candidate source: refuse what a RASP program never needs.

Defence in depth, not the wall: the worker still runs every candidate in an OS sandbox
(Docker or a namespaced, rlimited process). The screen exists to fail fast with a message
an LLM can act on ("line 3: `import os` - only imports from tracr are allowed") and to
make the obvious escapes (dunder walks, exec/eval, open, module chains such as
``rasp.np``) impossible before anything runs.

Standard library only: the worker imports this inside the sandbox image. When tracr is
importable, attribute chains on imported tracr modules are resolved against the real
modules (``rasp.np`` is numpy: refused; ``rasp.Map`` is tracr: fine).
"""

from __future__ import annotations

import ast
import importlib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from autoconn.sandbox.protocol import MAX_SOURCE_BYTES

MAX_AST_DEPTH = 60
MAX_AST_NODES = 20_000
MAX_PROBLEMS = 3

FORBIDDEN_NAMES = frozenset({
    "exec", "eval", "compile", "open", "__import__", "globals", "locals", "vars", "dir",
    "getattr", "setattr", "delattr", "breakpoint", "input", "memoryview", "help",
    "exit", "quit", "license", "copyright", "credits", "reload", "__builtins__", "__loader__",
    "__spec__", "__build_class__",
})
# Non-dunder attributes that reach frames, code, globals or the class hierarchy.
FORBIDDEN_ATTRIBUTES = frozenset({
    "f_globals", "f_locals", "f_builtins", "f_back", "f_code", "f_trace", "gi_frame", "gi_code",
    "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "tb_frame",
    "tb_next", "co_code", "co_consts", "func_globals", "func_code", "mro", "format_map",
    "with_traceback", "modules", "system", "popen", "spawn", "fork", "load_module", "exec_module",
    "format",  # str.format reads attributes named inside the string: "{0.f_globals}".format(frame)
})
# Every field of the syntax tree that holds an identifier, by node type: checked for every
# node, whatever the visitor below does (a name in a match pattern is a plain string in the
# tree, not a Name or Attribute node). Attribute-like fields get the attribute rules.
_NAME_FIELDS = {"id", "name", "asname", "arg", "rest", "names", "module"}
_ATTRIBUTE_FIELDS = {"attr", "kwd_attrs"}
ALLOWED_FOREIGN_MODULES = ("typing", "typing_extensions")  # type hints from rasp.* are harmless


@dataclass(frozen=True)
class ScreenProblem:
    line: int
    what: str  # the offending code, shortened
    why: str  # what is refused and what to do instead

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "source"
        return f"{where}: `{self.what}` - {self.why}"


class _Refused(Exception):
    pass


def _snippet(source_lines: list[str], node: ast.AST) -> str:
    line = getattr(node, "lineno", 0)
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001 - unparse of odd trees; fall back to the raw line
        text = source_lines[line - 1].strip() if 0 < line <= len(source_lines) else ""
    text = " ".join(text.split())
    return text if len(text) <= 70 else text[:67] + "..."


def _is_tracr_module_name(name: str) -> bool:
    if not (name == "tracr" or name.startswith("tracr.")):
        return False
    last = name.rsplit(".", 1)[-1]
    return not (last.endswith("_test") or last.startswith("_"))


def _resolve_module(name: str) -> types.ModuleType | None:
    """Imports a tracr module by name for attribute checks; None when tracr is not here."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _origin_module(value: Any) -> str:
    """The module an object comes from (its own for classes and functions, else its type's)."""
    if isinstance(value, types.ModuleType):
        return value.__name__
    module = getattr(value, "__module__", None) if (isinstance(value, type) or callable(value)) else None
    if not isinstance(module, str):
        module = getattr(type(value), "__module__", "") or ""
    return module


def _tracr_origin(value: Any) -> bool:
    module = _origin_module(value)
    return module == "tracr" or module.startswith("tracr.")


def _attribute_verdict(owner: types.ModuleType, attr: str) -> tuple[str, Any]:
    """('module', mod) | ('ok', value) | ('refuse', reason) for `owner.attr` on a tracr module."""
    if attr.endswith("_test") or attr in ("examples",):
        return "refuse", f"`{attr}` is not part of tracr's API for programs"
    if not hasattr(owner, attr):
        full = f"{owner.__name__}.{attr}"
        if _is_tracr_module_name(full):
            sub = _resolve_module(full)
            if sub is not None:
                return "module", sub
        return "ok", None  # AttributeError at exec time, reported with its line
    value = getattr(owner, attr)
    if isinstance(value, types.ModuleType):
        if _is_tracr_module_name(value.__name__):
            return "module", value
        return "refuse", f"`{owner.__name__.rsplit('.', 1)[-1]}.{attr}` is the module {value.__name__}, not part of tracr's API"
    if isinstance(value, (dict, list, set, bytearray)):
        return "refuse", "module-level containers of tracr must not be read or changed"
    if _tracr_origin(value) or isinstance(value, (int, float, str, bool, type(None), tuple, frozenset)):
        return "ok", value
    module = _origin_module(value)
    if module.split(".")[0] in ALLOWED_FOREIGN_MODULES:
        return "ok", value
    return "refuse", f"`{attr}` comes from {module or type(value).__name__}, not from tracr"


class _Screen(ast.NodeVisitor):
    def __init__(self, source_lines: list[str], resolve: bool) -> None:
        self.lines = source_lines
        self.resolve = resolve
        self.problems: list[ScreenProblem] = []
        self.module_aliases: dict[str, str] = {}  # local name -> tracr module name
        # ids of AST nodes already accounted for (the tree outlives the visit, so ids stay unique)
        self.chain_bases: set[int] = set()  # module names read as `alias.<name>`
        self.chains_checked: set[int] = set()  # inner Attributes of a chain checked from its top

    # -- helpers -----------------------------------------------------------------
    def refuse(self, node: ast.AST, why: str) -> None:
        self.problems.append(ScreenProblem(getattr(node, "lineno", 0), _snippet(self.lines, node), why))
        if len(self.problems) >= MAX_PROBLEMS:
            raise _Refused

    def _check_identifier(self, node: ast.AST, name: str, kind: str) -> None:
        if name.startswith("__"):
            self.refuse(node, f"{kind} `{name}` is refused: names starting with `__` reach interpreter internals")
        elif name in FORBIDDEN_NAMES:
            self.refuse(node, f"`{name}` is not available to RASP programs")

    # -- imports -----------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if not _is_tracr_module_name(alias.name):
                self.refuse(node, f"only imports from tracr are allowed (e.g. `from tracr.rasp import rasp`), not `{alias.name}`")
                continue
            if alias.asname:
                self._check_identifier(node, alias.asname, "name")
                self.module_aliases[alias.asname] = alias.name
            else:
                self.module_aliases[alias.name.split(".")[0]] = alias.name.split(".")[0]

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if node.level or not _is_tracr_module_name(module):
            self.refuse(node, "only imports from tracr are allowed (e.g. `from tracr.rasp import rasp`), "
                              f"not `{'.' * node.level}{module}`")
            return
        for alias in node.names:
            if alias.name == "*":
                self.refuse(node, "star imports are refused: import the names you use, e.g. `from tracr.rasp import rasp`")
                continue
            self._check_identifier(node, alias.name, "name")
            local = alias.asname or alias.name
            self._check_identifier(node, local, "name")
            if not self.resolve:
                if _is_tracr_module_name(f"{module}.{alias.name}"):
                    self.module_aliases[local] = f"{module}.{alias.name}"
                continue
            owner = _resolve_module(module)
            if owner is None:
                continue
            verdict, value = _attribute_verdict(owner, alias.name)
            if verdict == "refuse":
                self.refuse(node, f"importing `{alias.name}` from {module} is refused: {value}")
            elif verdict == "module":
                self.module_aliases[local] = value.__name__

    # -- names and attributes ----------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        self._check_identifier(node, node.id, "name")
        if node.id in self.module_aliases and id(node) not in self.chain_bases:
            if isinstance(node.ctx, ast.Load):
                self.refuse(node, f"use the module `{node.id}` only as `{node.id}.<name>` "
                                  "(it may not be passed around or aliased)")
            else:
                self.refuse(node, f"the imported module name `{node.id}` must not be rebound")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.refuse(node, f"attribute `.{node.attr}` is refused: private and dunder attributes are off limits")
        elif node.attr in FORBIDDEN_ATTRIBUTES:
            self.refuse(node, f"attribute `.{node.attr}` is refused")
        if isinstance(node.ctx, (ast.Store, ast.Del)):
            self.refuse(node, "assigning to or deleting attributes is refused (do not patch tracr): build new SOps instead")
        chain = self._module_chain(node)
        if chain is not None:
            self._check_module_chain(node, *chain)
        self.generic_visit(node)

    def _module_chain(self, node: ast.Attribute) -> tuple[str, list[str]] | None:
        """For `alias.a.b` where alias is an imported tracr module: (alias, [a, b])."""
        attrs: list[str] = []
        current: ast.AST = node
        while isinstance(current, ast.Attribute):
            attrs.append(current.attr)
            current = current.value
        if isinstance(current, ast.Name) and current.id in self.module_aliases:
            self.chain_bases.add(id(current))
            return current.id, list(reversed(attrs))
        return None

    def _check_module_chain(self, node: ast.Attribute, alias: str, attrs: list[str]) -> None:
        if id(node) in self.chains_checked:
            return
        # Mark every inner Attribute of the chain so it is checked once, from the top.
        inner = node.value
        while isinstance(inner, ast.Attribute):
            self.chains_checked.add(id(inner))
            inner = inner.value
        if not self.resolve:
            return
        owner = _resolve_module(self.module_aliases[alias])
        for attr in attrs:
            if owner is None:
                return
            verdict, value = _attribute_verdict(owner, attr)
            if verdict == "refuse":
                self.refuse(node, str(value))
                return
            if verdict != "module":
                return  # past the modules: ordinary attribute rules apply
            owner = value

    # -- statements and other escapes ----------------------------------------------
    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(node.value, ast.Attribute):
            if self._module_chain(node.value) is not None:
                self.refuse(node, "changing tracr's module-level data is refused")
        self.generic_visit(node)

    def visit_Constant(self, node: ast.Constant) -> None:
        if isinstance(node.value, str) and "__" in node.value:
            self.refuse(node, "strings containing `__` are refused (they are used to reach interpreter internals)")
        elif isinstance(node.value, bytes) and len(node.value) > 10_000:
            self.refuse(node, "large byte strings are refused")

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        self._check_identifier(node, node.name, "name")
        if isinstance(node, ast.AsyncFunctionDef):
            self.refuse(node, "async functions are refused: RASP programs are plain expressions")
        self.generic_visit(node)

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _visit_function

    def visit_arg(self, node: ast.arg) -> None:
        self._check_identifier(node, node.arg, "argument")
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None and node.arg.startswith("__"):
            self.refuse(node, f"keyword `{node.arg}` is refused")
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self._check_names(node, node.names)

    def visit_Nonlocal(self, node: ast.Nonlocal) -> None:
        self._check_names(node, node.names)

    def _check_names(self, node: ast.AST, names: list[str]) -> None:
        for name in names:
            self._check_identifier(node, name, "name")

    def visit_Await(self, node: ast.AST) -> None:
        self.refuse(node, "await is refused")

    def visit_Match(self, node: ast.AST) -> None:
        # Class patterns look attributes up by name (`case object(__class__=c)`); a RASP
        # program never needs pattern matching.
        self.refuse(node, "match statements are refused: use if/else inside Map functions")
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        self.generic_visit(node)  # the value and the format spec are ordinary expressions, checked as such

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self._check_identifier(node, node.name, "name")
        self.generic_visit(node)


def _every_identifier(tree: ast.AST) -> Iterator[tuple[ast.AST, str, bool]]:
    """(node, identifier, is_attribute) for every identifier anywhere in the tree, whatever
    the node type: fields named in _NAME_FIELDS / _ATTRIBUTE_FIELDS and the names of
    `global`/`nonlocal`/import aliases (a separate pass from the visitor, so a node type the
    visitor does not know - match patterns, type parameters - cannot carry a name past it)."""
    for node in ast.walk(tree):
        for field_name, value in ast.iter_fields(node):
            attribute = field_name in _ATTRIBUTE_FIELDS
            if not attribute and field_name not in _NAME_FIELDS:
                continue
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, str):
                    yield node, item, attribute


def _identifier_problem(name: str, attribute: bool) -> str:
    if attribute:
        if name.startswith("_"):
            return f"attribute `{name}` is refused: private and dunder attributes are off limits"
        if name in FORBIDDEN_ATTRIBUTES:
            return f"attribute `{name}` is refused"
        return ""
    if name.startswith("__"):
        return f"name `{name}` is refused: names starting with `__` reach interpreter internals"
    return ""


def _depth_and_size(tree: ast.AST) -> tuple[int, int, ast.AST | None]:
    """Deepest nesting, node count and the node where the depth limit was first passed
    (iterative: a hostile tree must not blow the screen's own stack)."""
    deepest, count, culprit = 0, 0, None
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if depth > deepest:
            deepest = depth
            if depth > MAX_AST_DEPTH and culprit is None:
                culprit = node
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))
    return deepest, count, culprit


def _nearest_line(node: ast.AST | None) -> int:
    return getattr(node, "lineno", 0) if node is not None else 0


def screen_source(source: Any, *, resolve: bool = True) -> list[ScreenProblem]:
    """Problems found in `source` (empty list: it passes). Never raises on hostile input."""
    if not isinstance(source, str):
        return [ScreenProblem(0, type(source).__name__, "the candidate source must be a string of Python code")]
    size = len(source.encode("utf-8", "replace"))
    if size > MAX_SOURCE_BYTES:
        return [ScreenProblem(0, f"{size} bytes",
                              f"the source is larger than {MAX_SOURCE_BYTES // 1000} KB: write a shorter program")]
    if "\x00" in source:
        return [ScreenProblem(0, "NUL byte", "the source contains a NUL byte")]
    try:
        tree = ast.parse(source, filename="<candidate>", mode="exec")
    except SyntaxError as err:
        text = (err.text or "").strip()
        return [ScreenProblem(err.lineno or 0, text[:70], f"SyntaxError: {err.msg}")]
    except (RecursionError, MemoryError, ValueError) as err:
        return [ScreenProblem(0, "source", f"the source could not be parsed ({type(err).__name__}: nesting too deep?): "
                                           "simplify the expressions")]
    depth, count, culprit = _depth_and_size(tree)
    lines = source.splitlines()
    if depth > MAX_AST_DEPTH:
        return [ScreenProblem(_nearest_line(culprit), "...",
                              f"expressions nest {depth} levels deep (limit {MAX_AST_DEPTH}): name intermediate SOps instead")]
    if count > MAX_AST_NODES:
        return [ScreenProblem(0, f"{count} nodes",
                              f"the program has more than {MAX_AST_NODES} syntax nodes: write a shorter program")]
    visitor = _Screen(lines, resolve)
    try:
        visitor.visit(tree)
        for node, name, attribute in _every_identifier(tree):
            why = _identifier_problem(name, attribute)
            line = getattr(node, "lineno", 0)
            if why and not any(p.line == line and (name in p.why or name in p.what) for p in visitor.problems):
                visitor.refuse(node, why)
    except _Refused:
        pass
    except RecursionError:
        visitor.problems.append(ScreenProblem(0, "source", "nesting too deep to check: simplify the expressions"))
    return visitor.problems


def screen_error(source: Any, *, resolve: bool = True) -> str | None:
    """The screen's verdict as one message (None when the source passes)."""
    problems = screen_source(source, resolve=resolve)
    if not problems:
        return None
    head = "refused by the static screen: " + "; ".join(str(p) for p in problems)
    return head
