"""Static checks for the mistakes the primer names, run on every extracted candidate before it
is proposed: a candidate that breaks one never costs a sandbox round trip, the model gets the
rule's number and a one-line fix in the next turn instead.

AST only: nothing here imports, compiles or executes the candidate. Only what is certain from
the text is reported (a name bound to ``rasp.numerical(...)`` is numerical; an unknown name is
left alone), so a right program is never held back: the lint reports, the sandbox judges.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

# The primer's rule numbers (autoconn/inducers/prompts/primer.txt) and the one-line fix for each.
RULE_FIXES: dict[int, str] = {
    1: "Select keys and queries must be categorical: turn a numerical value into a categorical one with "
       "rasp.categorical(rasp.Map(lambda x: ..., sop)) before selecting on it.",
    2: "A categorical Aggregate reads the one selected value and keeps default None (no `default=`): make the Select "
       "match exactly one key per query (e.g. an index equal to a target index), or aggregate a numerical 0/1 SOp.",
    3: "A numerical Aggregate averages a numerical 0/1 SOp with default=0: aggregate "
       "rasp.numerical(rasp.Map(lambda x: 1 if ... else 0, sop)) and wrap the Aggregate in rasp.numerical(...).",
    4: "Make every Map/SequenceMap function total: guard divisions and modulos (`x % n if n else 0`) and indexing, "
       "never raise, never return None.",
    5: "A non-linear SequenceMap needs categorical inputs and a categorical output: make both inputs categorical, or "
       "use rasp.LinearSequenceMap(a, b, ca, cb) / a numerical Map for numerical arithmetic.",
    6: "Selector `&` and `|` (SelectorAnd/SelectorOr) do not compile: build one tuple-valued SOp with SequenceMap and "
       "put the whole condition in a single Select predicate `lambda key, query: ...`.",
    7: "An Aggregate's output has the encoding of its input: wrap a numerical Aggregate in rasp.numerical(...) and give "
       "it a numerical input; give a categorical Aggregate a categorical input.",
    8: "Keep value sets small: fewer distinct values per SOp, fewer operations.",
    9: "After a numerical mean only [0, 1] is known: a categorical Map on it must treat every value (e.g. `1 if x > 0 else 0`).",
    10: "Produce exactly the task's output kind and type: ints stay ints (`1 if c else 0`, not `c`), booleans True/False, "
        "strings stay strings; a whole-sequence value at every position.",
    11: "Derive everything from length and indices: the compiled model must be right on every length up to the maximum, "
        "not only the example lengths.",
    12: "`rasp.length` does not compile here: use "
        "`length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))` (or lib.make_length()).",
    13: "Every program must read rasp.tokens somewhere (a program built only from rasp.indices does not compile).",
}

RASP_NAMES = ("rasp",)
NUMERICAL_LIB = {"make_frac_prevs", "make_pair_balance"}
CATEGORICAL_LIB = {"make_length", "make_hist", "make_sort_unique", "make_sort", "make_sort_freq", "shift_by",
                   "make_count", "make_count_less_freq", "make_reverse"}
READS_TOKENS_LIB = {"make_length", "make_hist", "make_shuffle_dyck", "make_shuffle_dyck2", "make_sort_freq",
                    "make_count_less_freq", "make_reverse"}


@dataclass(frozen=True)
class LintProblem:
    line: int
    rule: int | None
    what: str  # the offending code, shortened
    why: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "program"
        rule = f" (rule {self.rule})" if self.rule else ""
        fix = f" Fix: {RULE_FIXES[self.rule]}" if self.rule in RULE_FIXES else ""
        return f"{where}: `{self.what}`{rule}: {self.why}.{fix}"


def _snippet(node: ast.AST) -> str:
    try:
        text = " ".join(ast.unparse(node).split())
    except Exception:  # noqa: BLE001 - odd trees: no snippet
        return ""
    return text if len(text) <= 80 else text[:77] + "..."


def _unnamed(node: ast.AST) -> ast.AST:
    """`x.named("...")` is `x`."""
    while isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "named":
        node = node.func.value
    return node


def _call_name(node: ast.AST) -> tuple[str, str]:
    """('rasp', 'Map') for rasp.Map(...), ('lib', 'make_sort') for lib.make_sort(...), ('', name) for name(...)."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return node.value.id, node.attr
    if isinstance(node, ast.Name):
        return "", node.id
    return "", ""


class _Linter(ast.NodeVisitor):
    """Walks the module in order, tracking what each assigned name certainly is."""

    def __init__(self, max_seq_len: int | None) -> None:
        self.kinds: dict[str, str] = {}  # name -> "numerical" | "categorical" | "selector"
        self.problems: list[LintProblem] = []
        self.max_seq_len = max_seq_len
        self.reads_tokens = False
        self.rasp_aliases = set(RASP_NAMES)
        self.lib_aliases = {"lib"}
        self.aggregates: list[tuple[ast.Call, str]] = []
        self.numerical_nodes: set[int] = set()  # Aggregate calls declared numerical
        self.bound_calls: dict[str, ast.Call] = {}  # name -> the Aggregate / SequenceMap call bound to it

    def add(self, node: ast.AST, rule: int | None, why: str, what: str | None = None) -> None:
        problem = LintProblem(getattr(node, "lineno", 0), rule, what if what is not None else _snippet(node), why)
        if all((p.line, p.rule) != (problem.line, problem.rule) for p in self.problems):
            self.problems.append(problem)

    # -- what an expression certainly is --------------------------------------------------
    def kind(self, node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return self.kinds.get(node.id, "")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in self.rasp_aliases:
            return "categorical" if node.attr in ("tokens", "indices") else ""
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            if "selector" in (self.kind(node.left), self.kind(node.right)):
                return "selector"
            return ""
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
            return "selector" if self.kind(node.operand) == "selector" else ""
        if not isinstance(node, ast.Call):
            return ""
        owner, name = _call_name(node)
        if name == "named" and isinstance(node.func, ast.Attribute):
            return self.kind(node.func.value)
        if owner in self.rasp_aliases:
            if name == "numerical":
                return "numerical"
            if name == "categorical":
                return "categorical"
            if name in ("Select", "SelectorAnd", "SelectorOr", "SelectorNot"):
                return "selector"
            if name in ("Map", "SequenceMap", "SelectorWidth"):
                return "categorical"
            if name == "LinearSequenceMap":
                return "numerical"
            if name == "Aggregate":
                return "categorical"
        if owner in self.lib_aliases:
            if name in NUMERICAL_LIB:
                return "numerical"
            if name in CATEGORICAL_LIB:
                return "categorical"
        return ""

    # -- visitors ----------------------------------------------------------------------
    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name == "tracr.rasp.rasp" and alias.asname:
                self.rasp_aliases.add(alias.asname)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if node.module == "tracr.rasp" and alias.name == "rasp":
                self.rasp_aliases.add(alias.asname or "rasp")
            if node.module == "tracr.compiler" and alias.name == "lib":
                self.lib_aliases.add(alias.asname or "lib")
            if node.module == "tracr.rasp.rasp" and alias.name == "tokens":
                self.reads_tokens = True

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        kind = self.kind(node.value)
        call = _unnamed(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.bound_calls.pop(target.id, None)
                if isinstance(call, ast.Call) and _call_name(call)[0] in self.rasp_aliases \
                        and _call_name(call)[1] in ("Aggregate", "SequenceMap"):
                    self.bound_calls[target.id] = call
                if kind:
                    self.kinds[target.id] = kind
                else:
                    self.kinds.pop(target.id, None)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.value, ast.Name) and node.value.id in self.rasp_aliases:
            if node.attr == "length":
                self.add(node, 12, "rasp.length is not supported by the tracr compiler (\"Unsupported S-Op: length\")")
            if node.attr == "tokens":
                self.reads_tokens = True
        self.generic_visit(node)

    def visit_BinOp(self, node: ast.BinOp) -> None:
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)) and "selector" in (self.kind(node.left), self.kind(node.right)):
            symbol = "&" if isinstance(node.op, ast.BitAnd) else "|"
            self.add(node, 6, f"selectors combined with `{symbol}` do not compile "
                              "(\"Compiling composite Selectors is not supported\")")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        owner, name = _call_name(node)
        args = list(node.args)
        keywords = {k.arg: k.value for k in node.keywords if k.arg}
        if owner in self.rasp_aliases:
            if name in ("SelectorAnd", "SelectorOr"):
                self.add(node, 6, f"rasp.{name} does not compile (\"Compiling composite Selectors is not supported\")")
            elif name == "Select":
                for which, arg in zip(("keys", "queries"), args[:2]):
                    if self.kind(arg) == "numerical":
                        self.add(node, 1, f"the Select {which} `{_snippet(arg)}` are numerical "
                                          "(\"Select keys must be categorical\")")
            elif name == "SequenceMap":
                for arg in args[1:3]:
                    if self.kind(arg) == "numerical":
                        self.add(node, 5, f"SequenceMap input `{_snippet(arg)}` is numerical (\"(Non-linear) SequenceMap only "
                                          "supports categorical inputs/outputs\")")
                        break
            elif name == "numerical" and args:
                inner = _unnamed(args[0])
                if isinstance(inner, ast.Name):  # rasp.numerical(x) is an annotated copy of x; x itself keeps its kind
                    inner = self.bound_calls.get(inner.id, inner)
                inner_owner, inner_name = _call_name(inner)
                if isinstance(inner, ast.Call) and inner_owner in self.rasp_aliases and inner_name == "SequenceMap":
                    self.add(node, 5, "a SequenceMap declared numerical (\"(Non-linear) SequenceMap only supports categorical "
                                      "inputs/outputs\")")
                if isinstance(inner, ast.Call) and inner_owner in self.rasp_aliases and inner_name == "Aggregate":
                    self.numerical_nodes.add(id(inner))
            elif name == "Aggregate":
                self._aggregate(node)
        if owner in self.lib_aliases:
            if name in READS_TOKENS_LIB:
                self.reads_tokens = True
            if name in ("make_sort", "make_sort_freq") and self.max_seq_len:
                given = keywords.get("max_seq_len")
                if given is None and name == "make_sort_freq" and args:
                    given = args[0]
                if isinstance(given, ast.Constant) and isinstance(given.value, int) and given.value < self.max_seq_len:
                    self.add(node, 11, f"lib.{name} is given max_seq_len={given.value} but inputs go up to "
                                       f"{self.max_seq_len} tokens (its tie-breaking keys collide beyond it): pass "
                                       f"max_seq_len={self.max_seq_len}")
        self.generic_visit(node)

    def _aggregate(self, node: ast.Call) -> None:
        """Checked at the end: an Aggregate bound to a name may be declared numerical later."""
        value = node.args[1] if len(node.args) >= 2 else next((k.value for k in node.keywords if k.arg == "sop"), None)
        self.aggregates.append((node, self.kind(value) if value is not None else ""))

    def finish(self) -> None:
        for node, value_kind in self.aggregates:
            value = node.args[1] if len(node.args) >= 2 else None
            default = next((k.value for k in node.keywords if k.arg == "default"), node.args[2] if len(node.args) >= 3 else None)
            shown = _snippet(value) if value is not None else "its input"
            if id(node) in self.numerical_nodes:
                if value_kind == "categorical":
                    self.add(node, 3, f"a numerical Aggregate of the categorical `{shown}` (\"An aggregate's output encoding "
                                      "must match its input encoding\"): aggregate rasp.numerical(rasp.Map(lambda x: 1 if ... "
                                      "else 0, ...))")
                if default is not None and not (isinstance(default, ast.Constant) and default.value == 0
                                                and not isinstance(default.value, bool)):
                    self.add(node, 3, f"a numerical Aggregate with default={_snippet(default)}: it must be default=0")
                continue
            if default is not None and not (isinstance(default, ast.Constant) and default.value is None):
                self.add(node, 2, f"a categorical Aggregate with default={_snippet(default)} (\"Categorical aggregate only "
                                  "supports None as default value\")")
            if value_kind == "numerical":
                self.add(node, 7, f"a categorical Aggregate of the numerical `{shown}` (\"An aggregate's output encoding must "
                                  "match its input encoding\"); wrap the Aggregate in rasp.numerical(...) if you mean a mean")


def lint(source: str, *, max_seq_len: int | None = None) -> list[LintProblem]:
    """The primer's named mistakes found in `source` (empty: nothing certain to report)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [LintProblem(error.lineno or 0, None, (error.text or "").strip()[:80], f"SyntaxError: {error.msg}")]
    linter = _Linter(max_seq_len)
    for statement in tree.body:
        linter.visit(statement)
    linter.finish()
    if not linter.reads_tokens and not any(
            isinstance(n, ast.Attribute) and n.attr in ("make_length", "make_hist") for n in ast.walk(tree)):
        linter.add(tree, 13, "the program never reads rasp.tokens (\"A program must include rasp.tokens to be compiled\")",
                   what="program")
    return sorted(linter.problems, key=lambda p: (p.line, p.rule or 0))


def lint_message(problems: list[LintProblem]) -> str:
    """The feedback text for a candidate the lint stopped (never compiled)."""
    lines = [f"- {p}" for p in problems[:5]]
    return "A static check found mistakes the primer names (the program was not compiled):\n" + "\n".join(lines)
