"""The sandbox worker: one long-lived process that checks candidate RASP programs.

    python -m autoconn.sandbox.worker [--cache-dir DIR] [--cache-mode ro|rw|off] [--exchange DIR]
    python -m autoconn.sandbox.worker --warm --cache-dir DIR     (fill the JAX cache, then exit)

It reads one Job (JSON) per line on stdin and answers one result line on a private copy
of the original stdout; fd 0, fd 1 and ``sys.stdout`` are pointed elsewhere before any
candidate runs, so nothing a candidate prints or reads can touch the protocol. Per job:
screen -> exec in a fresh namespace -> ``program`` must be a rasp.SOp -> evaluate every
input (memoised, with checks for tracr's silent traps) -> compile -> run the compiled
model -> write weights.npz. It always runs inside an OS sandbox (a container or a
namespaced, rlimited process): this file is the only place in AutoCoNN that ``exec``s
candidate code.

jax and tracr are imported once, at start, and two trusted programs are compiled before
"ready" (so no candidate's time limit pays for JAX's first use). JAX's persistent
compilation cache is read only for jobs (``--cache-mode ro``): it is filled by ``--warm`` at
image build (or first start of the process backend) by trusted programs; executables that
jobs compile are kept in this worker's memory only, so a replaced worker starts again from
the trusted cache. tracr's eager haiku init is replaced by an abstract trace
(:mod:`autoconn.sandbox.fastinit`, identical weights), which takes a new program's compile
from seconds to a fraction of one.

After every job the worker checks that the candidate left the interpreter as it found it
(modules, builtins, sys hooks, signal handlers, limits, threads, children); if not - or
after a timeout, a limit or a crash - it answers and exits, and the host starts a new one.
"""

from __future__ import annotations

import argparse
import builtins
import gc
import io
import json
import os
import resource
import signal
import sys
import threading
import time
import traceback
from typing import Any

from autoconn.conn.compare import values_match
from autoconn.sandbox.protocol import MAX_SOURCE_BYTES, Job, JobResult, decode_line, encode_line, valid_job_id
from autoconn.sandbox.screen import screen_error

CANDIDATE_FILE = "<candidate>"
LOG_CAP = 4096  # characters of candidate output kept per job (the rest is counted, dropped)
ERROR_CAP = 600  # characters of an exception message kept in an error text
CPU_MARGIN_SECONDS = 10
LIFETIME_CPU_SECONDS = 4 * 3600  # hard RLIMIT_CPU of a worker; it recycles itself well before
MAX_JOBS_PER_WORKER = 400
MAX_RSS_BYTES = int(2.3 * 1024**3)


# ---------------------------------------------------------------------------------------
# Output isolation
# ---------------------------------------------------------------------------------------

class _CappedLog(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: keeps the first LOG_CAP characters of a job's
    output for the result, counts and drops the rest (printing forever cannot fill memory
    or reach the protocol)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, text: Any) -> int:
        text = text if isinstance(text, str) else str(text)
        room = LOG_CAP - self.kept
        if room > 0:
            piece = text[:room]
            self.parts.append(piece)
            self.kept += len(piece)
            self.dropped += len(text) - len(piece)
        else:
            self.dropped += len(text)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def take(self) -> str:
        text = "".join(self.parts)
        if self.dropped:
            text += f"\n[... {self.dropped} more characters of output dropped]"
        self.parts, self.kept, self.dropped = [], 0, 0
        return text


class _Protocol:
    """The private channel to the host: duplicates of the original fds 0 and 1."""

    def __init__(self) -> None:
        self.out_fd = os.dup(1)
        self.in_file = os.fdopen(os.dup(0), "rb", buffering=0)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)  # a candidate reading stdin gets EOF, not the next job
        os.dup2(2, 1)  # C-level writes to fd 1 land on stderr, which the host drains
        os.close(devnull)
        for fd in (self.out_fd, self.in_file.fileno()):
            os.set_inheritable(fd, False)
        self._buffer = b""

    def send(self, obj: dict[str, Any]) -> None:
        data = encode_line(obj)
        view = memoryview(data)
        while view:
            written = os.write(self.out_fd, view)
            view = view[written:]

    def receive(self) -> bytes | None:
        while b"\n" not in self._buffer:
            chunk = self.in_file.read(1 << 16)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


# ---------------------------------------------------------------------------------------
# Limits and interpreter integrity
# ---------------------------------------------------------------------------------------

class JobTimeout(BaseException):
    """Raised by SIGALRM when a job runs past its time (BaseException: `except Exception`
    in candidate or library code does not swallow it)."""


class CpuLimit(BaseException):
    """Raised by SIGXCPU when a job used more CPU time than it was given."""


def _on_alarm(signum: int, frame: Any) -> None:
    raise JobTimeout()


def _on_xcpu(signum: int, frame: Any) -> None:
    raise CpuLimit()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _set_cpu_budget(seconds: float) -> None:
    """Soft RLIMIT_CPU = used so far + this job's budget (the hard limit caps the worker's life)."""
    try:
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        want = int(_cpu_seconds() + seconds) + 1
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        resource.setrlimit(resource.RLIMIT_CPU, (want, hard))
    except (ValueError, OSError):
        pass


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _child_pids() -> list[int]:
    pids: list[int] = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as handle:
                pids.extend(int(p) for p in handle.read().split())
    except OSError:
        pass
    return pids


_WATCHED_SIGNALS = [s for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGCHLD,
                                signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2)]
_WATCHED_MODULE_PREFIXES = ("tracr", "autoconn", "builtins", "numpy", "jax", "haiku")


class Integrity:
    """A snapshot of what a job could tamper with in this interpreter (modules' globals,
    classes of tracr and autoconn, builtins, sys hooks, signal handlers, limits, threads
    and children). A job that changed any of it gets the worker replaced."""

    def __init__(self) -> None:
        self.modules = self._module_state()
        self.sys_state = self._sys_state()
        self.signals = {s: signal.getsignal(s) for s in _WATCHED_SIGNALS}
        self.limits = self._limits()
        self.threads = threading.active_count()

    @staticmethod
    def _watched(name: str) -> bool:
        top = name.split(".")[0]
        if top in ("jax", "numpy"):
            return name in ("jax", "jax.numpy", "numpy")  # their internals change lazily
        return top in _WATCHED_MODULE_PREFIXES

    def _module_state(self) -> dict[str, tuple[int, dict[str, int]]]:
        state: dict[str, tuple[int, dict[str, int]]] = {}
        for name, module in list(sys.modules.items()):
            if module is None or not self._watched(name):
                continue
            entries = {k: id(v) for k, v in list(vars(module).items())}
            state[name] = (id(module), entries)
            if name.startswith(("tracr", "autoconn")):
                for key, value in list(vars(module).items()):
                    if isinstance(value, type) and getattr(value, "__module__", "") == name:
                        state[f"{name}:{key}"] = (id(value), {k: id(v) for k, v in list(vars(value).items())})
        return state

    @staticmethod
    def _sys_state() -> dict[str, Any]:
        return {
            "modules": id(sys.modules), "path": tuple(sys.path), "meta_path": tuple(id(x) for x in sys.meta_path),
            "path_hooks": tuple(id(x) for x in sys.path_hooks), "excepthook": id(sys.excepthook),
            "displayhook": id(sys.displayhook), "trace": id(sys.gettrace()), "profile": id(sys.getprofile()),
            "recursionlimit": sys.getrecursionlimit(), "audit": None,
        }

    @staticmethod
    def _limits() -> dict[int, tuple[int, int]]:
        names = [resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE, resource.RLIMIT_NOFILE]
        return {n: resource.getrlimit(n) for n in names}

    def changes(self) -> list[str]:
        found: list[str] = []
        now = self._module_state()
        for name, (module_id, entries) in self.modules.items():
            current = now.get(name)
            if current is None or current[0] != module_id:
                found.append(f"{name} was replaced or removed")
                continue
            for key, value_id in entries.items():
                if current[1].get(key) != value_id:
                    found.append(f"{name.replace(':', '.')}.{key} was changed")
                    break
            if len(found) >= 3:
                return found
        sys_now = self._sys_state()
        found += [f"sys.{k} was changed" for k, v in self.sys_state.items() if sys_now[k] != v]
        found += [f"the handler of {signal.Signals(s).name} was changed"
                  for s, h in self.signals.items() if signal.getsignal(s) != h]
        limits = self._limits()
        found += ["a resource limit was changed" for n, v in self.limits.items() if limits[n][1] != v[1]][:1]
        if threading.active_count() > self.threads:
            found.append("threads were left running")
        if _child_pids():
            found.append("child processes were left running")
        return found


# ---------------------------------------------------------------------------------------
# Errors in words an LLM can repair from
# ---------------------------------------------------------------------------------------

def _shorten(text: object, cap: int = ERROR_CAP) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= cap else text[: cap - 3] + "..."


class _Context:
    """Maps tracr expressions and candidate frames back to the candidate's lines."""

    def __init__(self, source: str) -> None:
        self.lines = source.splitlines()
        self.labels: dict[str, str] = {}  # expr label -> "`var` (line N)"

    def line_text(self, lineno: int) -> str:
        if 0 < lineno <= len(self.lines):
            return f"line {lineno}: `{_shorten(self.lines[lineno - 1].strip(), 120)}`"
        return f"line {lineno}"

    def learn_names(self, namespace: dict[str, Any], tree_lines: dict[str, int], rasp: Any) -> None:
        for name, value in namespace.items():
            if isinstance(value, rasp.RASPExpr):
                where = f"(`{name}`" + (f", line {tree_lines[name]})" if name in tree_lines else ")")
                self.labels.setdefault(value.label, where)

    def describe(self, expr: Any) -> str:
        kind = type(expr).__name__
        text = f"{kind} '{expr.label}'"
        where = self.labels.get(expr.label)
        fn = getattr(expr, "f", None) or getattr(expr, "predicate", None)
        fn = getattr(fn, "__wrapped__", fn)
        code = getattr(fn, "__code__", None)
        if where:
            text += f" {where}"
        elif code is not None and code.co_filename == CANDIDATE_FILE:
            text += f" (line {code.co_firstlineno})"
        return text

    def exception(self, err: BaseException) -> str:
        """'Type: message (line N: `code`)' with the innermost candidate line, if any."""
        message = f"{type(err).__name__}: {_shorten(err)}" if str(err) else type(err).__name__
        lineno = None
        for frame, line in traceback.walk_tb(err.__traceback__):
            if frame.f_code.co_filename == CANDIDATE_FILE:
                lineno = line
        if lineno is None and isinstance(err, SyntaxError) and err.filename == CANDIDATE_FILE:
            lineno = err.lineno
        if lineno is not None:
            message += f" ({self.line_text(lineno)})"
        if isinstance(err, RecursionError):
            message += (" - the program nests too deeply (tracr merges a chain of Maps into one nested function): "
                        "use fewer chained Maps")
        for label, where in self.labels.items():
            if label in message and where not in message:
                message += f" [{label} is {where}]"
                break
        return message


class _Trap(Exception):
    """A program tracr would compile silently wrong (found while evaluating it)."""


def _assigned_lines(tree: Any) -> dict[str, int]:
    import ast

    lines: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Name):
                        lines[sub.id] = node.lineno
    return lines


def _json_value(value: Any) -> Any:
    """Values that survive JSON: numpy scalars become Python ones, odd objects their repr."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            value = item()
            if value is None or isinstance(value, (bool, int, float, str)):
                return value
        except Exception:  # noqa: BLE001
            pass
    return _shorten(repr(value), 80)


# ---------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------

class Worker:
    def __init__(self, exchange: str | None) -> None:
        self.exchange = exchange
        self.log = _CappedLog()
        sys.stdout = self.log
        sys.stderr = self.log
        self.jobs = 0
        # heavy imports once
        import numpy as np
        from tracr.compiler import compiling, lib  # noqa: F401 - imported so candidates find them warm
        from tracr.rasp import rasp

        from autoconn.conn.compile import CompileSettings, compile_program, model_size
        from autoconn.conn.runtime import ConnRuntime
        from autoconn.sandbox import fastinit

        self.fast_init = fastinit.install()  # tracr's eager haiku init -> abstract trace (same weights)
        self.np, self.rasp = np, rasp
        from autoconn.conn.graph import graph_facts

        self.CompileSettings, self.compile_program, self.model_size = CompileSettings, compile_program, model_size
        self.graph_facts = graph_facts
        self.ConnRuntime = ConnRuntime
        self.safe_builtins = self._safe_builtins()
        self.evaluator_class = self._make_evaluator_class()
        gc.collect()
        gc.freeze()  # the warm interpreter's objects are never scanned again: per-job collections stay cheap
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.signal(signal.SIGXCPU, _on_xcpu)
        sys.setrecursionlimit(max(sys.getrecursionlimit(), 3000))

    def _graph_facts(self, model: Any, graph: Any, sources: Any) -> Any:
        """The graph facts for the review; a program whose graph cannot be described still compiles."""
        try:
            return self.graph_facts(model, graph, sources)
        except Exception:  # noqa: BLE001 - display only
            return None

    @staticmethod
    def _safe_builtins() -> dict[str, Any]:
        from autoconn.sandbox.screen import FORBIDDEN_NAMES

        safe = {k: v for k, v in vars(builtins).items() if k not in FORBIDDEN_NAMES}
        real_import = builtins.__import__

        def guarded_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            top = name.split(".")[0]
            if level != 0 or top != "tracr" or any(part.endswith("_test") for part in name.split(".")):
                raise ImportError(f"only imports from tracr are allowed, not {name!r}")
            return real_import(name, globals, locals, fromlist, level)

        safe["__import__"] = guarded_import
        safe["__build_class__"] = builtins.__build_class__
        return safe

    def _make_evaluator_class(self) -> type:
        rasp = self.rasp
        base: Any = rasp.DefaultRASPEvaluator  # tracr is imported at run time, under the worker's guards

        class Evaluator(base):
            """rasp.evaluate, memoised per node (shared sub-expressions are evaluated once)
            and iterative over the graph (deep programs do not exhaust the stack), with the
            silent-miscompile traps turned into errors."""

            def __init__(self, context: _Context) -> None:
                super().__init__()
                self.context = context
                self.memo: dict[int, Any] = {}

            def evaluate(self, expr: Any, xs: Any) -> Any:
                key = id(expr)
                if key not in self.memo:
                    self.memo[key] = self._eval_fn_by_expr_type[type(expr)](expr, xs)
                return self.memo[key]

            def run(self, program: Any, xs: Any) -> Any:
                self.memo = {}
                order, seen, stack = [], set(), [(program, False)]
                while stack:  # post-order without recursion
                    expr, expanded = stack.pop()
                    if expanded:
                        order.append(expr)
                        continue
                    if id(expr) in seen:
                        continue
                    seen.add(id(expr))
                    stack.append((expr, True))
                    stack.extend((child, False) for child in expr.children)
                for expr in order:
                    self.evaluate(expr, xs)
                return self.memo[id(program)]

            def eval_map(self, sop: Any, xs: Any) -> Any:
                out = []
                for x in self.evaluate(sop.inner, xs):
                    y = sop.f(x) if x is not None else None
                    if y is None and x is not None:
                        raise _Trap(f"{self.context.describe(sop)} returned None for the value {x!r}: every Map must "
                                    "return a value for every input (tracr compiles a None result silently wrong)")
                    out.append(y)
                return out

            def eval_sequence_map(self, sop: Any, xs: Any) -> Any:
                out = []
                for x, y in zip(self.evaluate(sop.fst, xs), self.evaluate(sop.snd, xs)):
                    z = sop.f(x, y) if None not in (x, y) else None
                    if z is None and None not in (x, y):
                        raise _Trap(f"{self.context.describe(sop)} returned None for the values ({x!r}, {y!r}): every "
                                    "SequenceMap must return a value for every pair (tracr compiles None silently wrong)")
                    out.append(z)
                return out

            def eval_aggregate(self, sop: Any, xs: Any) -> Any:
                if not rasp.is_categorical(sop):
                    return super().eval_aggregate(sop, xs)
                rows = self.evaluate(sop.selector, xs)
                values = self.evaluate(sop.sop, xs)
                out = []
                for query, row in enumerate(rows):
                    picked = [(k, v) for k, (s, v) in enumerate(zip(row, values)) if s]
                    distinct = {repr(v) for _, v in picked}
                    if len(distinct) > 1:
                        positions = [k for k, _ in picked][:6]
                        shown = [v for _, v in picked][:6]
                        raise _Trap(f"categorical {self.context.describe(sop)} selects {len(picked)} positions {positions} "
                                    f"holding different values {shown} for query position {query} of input {list(xs)}: the "
                                    "compiled model would average them (silently wrong). Make the Select match exactly one "
                                    "key per query, or aggregate a numerical 0/1 SOp with rasp.numerical(...)")
                    out.append(picked[0][1] if picked else sop.default)
                return out

        return Evaluator

    def prewarm(self) -> float:
        """Compiles and runs trusted programs before the first job (the same ones the cache was
        warmed with, so they hit it), so a candidate's time limit never pays for JAX's
        first-use initialisation."""
        started = time.monotonic()
        for name in ("reverse", "frac_prevs"):
            self.run_job(_warm_job(name, WARM_VOCABS[0], WARM_LENGTHS[0]))
        self.jobs = 0
        return time.monotonic() - started

    def _watch_for_none(self, program: Any) -> list[tuple[Any, tuple]]:
        """Wraps every Map/SequenceMap function of the program so that a None result while
        tracr compiles (which it drops silently) is recorded; returns the record."""
        rasp = self.rasp
        hits: list[tuple[Any, tuple]] = []
        seen, stack = set(), [program]
        while stack:
            expr = stack.pop()
            if id(expr) in seen:
                continue
            seen.add(id(expr))
            stack.extend(expr.children)
            if isinstance(expr, (rasp.Map, rasp.SequenceMap)) and callable(getattr(expr, "f", None)):
                def watched(*args: Any, _f: Any = expr.f, _expr: Any = expr) -> Any:
                    value = _f(*args)
                    if value is None and len(hits) < 5:
                        hits.append((_expr, args))
                    return value

                watched.__wrapped__ = expr.f  # type: ignore[attr-defined]  # describe() finds the candidate's line
                expr.f = watched
        return hits

    # -- stages --------------------------------------------------------------------
    def run_job(self, job: Job) -> tuple[JobResult, list[str]]:
        """Returns the result and the reasons to recycle this worker (empty: keep it)."""
        started = time.monotonic()
        integrity = Integrity()
        recycle: list[str] = []
        result = self._guarded(job, started, recycle)
        result.seconds = round(time.monotonic() - started, 4)
        result.log = self.log.take()
        sys.stdout = sys.stderr = self.log
        changes = integrity.changes()
        if changes:
            recycle.append("tampering: " + "; ".join(changes))
            if result.ok or result.stage not in ("timeout", "limit", "crash"):
                result = JobResult.failure(job.job_id, "exec", "the candidate changed the interpreter ("
                                           + "; ".join(changes[:3]) + "); RASP programs must not modify modules, "
                                           "builtins or signals", result.seconds, log=result.log)
        self.jobs += 1
        if self.jobs >= MAX_JOBS_PER_WORKER:
            recycle.append("job count")
        if _rss_bytes() > MAX_RSS_BYTES:
            recycle.append("memory growth")
        return result, recycle

    def _guarded(self, job: Job, started: float, recycle: list[str]) -> JobResult:
        timeout = max(0.5, float(job.timeout_seconds))
        _set_cpu_budget(timeout * 2 + CPU_MARGIN_SECONDS)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        context = _Context(job.source if isinstance(job.source, str) else "")
        stage_box = ["screen"]
        self.namespace: dict[str, Any] = {}
        try:
            result = self._stages(job, context, stage_box)
            self._cleanup()  # still under the timer: finalizers the candidate left run now
            return result
        except JobTimeout:
            recycle.append("timeout")
            return JobResult.failure(job.job_id, "timeout", f"the candidate ran longer than {timeout:g} s (during "
                                     f"{stage_box[0]}): look for endless loops or very large programs")
        except CpuLimit:
            recycle.append("cpu limit")
            return JobResult.failure(job.job_id, "limit",
                                     f"the candidate used more CPU time than allowed (during {stage_box[0]})")
        except MemoryError:
            recycle.append("memory")
            return JobResult.failure(job.job_id, "limit", f"MemoryError during {stage_box[0]}: the candidate needs more "
                                     "memory than the sandbox allows; write a smaller program")
        except RecursionError as err:
            recycle.append("recursion")
            return JobResult.failure(job.job_id, stage_box[0] if stage_box[0] != "screen" else "exec",
                                     context.exception(err))
        except _Trap as err:
            return JobResult.failure(job.job_id, "evaluate", str(err))
        except BaseException as err:  # noqa: BLE001 - anything a candidate raises is its failure
            return JobResult.failure(job.job_id, stage_box[0], context.exception(err))
        finally:
            try:
                self._cleanup()
            except BaseException:  # noqa: BLE001 - a finalizer that hangs or raises: start afresh
                recycle.append("cleanup")
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                _set_cpu_budget(LIFETIME_CPU_SECONDS)

    def _cleanup(self) -> None:
        self.namespace.clear()
        gc.collect()

    def _stages(self, job: Job, context: _Context, stage: list[str]) -> JobResult:
        rasp = self.rasp
        source = job.source
        # -- screen
        if not isinstance(source, str):
            return JobResult.failure(job.job_id, "screen", "the source must be a string of Python code")
        if len(source.encode("utf-8", "replace")) > MAX_SOURCE_BYTES:
            return JobResult.failure(job.job_id, "screen", f"the source is larger than {MAX_SOURCE_BYTES // 1000} KB")
        if job.screen:
            problem = screen_error(source)
            if problem:
                return JobResult.failure(job.job_id, "screen", problem)
        # -- exec
        stage[0] = "exec"
        import ast

        tree = ast.parse(source, filename=CANDIDATE_FILE)
        code = compile(tree, CANDIDATE_FILE, "exec", dont_inherit=True)
        namespace = self.namespace
        # job.screen False (tests of the OS walls only) also lifts the restricted builtins
        namespace.update({"__builtins__": self.safe_builtins if job.screen else builtins, "__name__": "candidate"})
        exec(code, namespace)  # noqa: S102 - the one exec of candidate code, inside the sandbox
        context.learn_names(namespace, _assigned_lines(tree), rasp)
        program = namespace.get("program")
        if program is None:
            return JobResult.failure(job.job_id, "exec", "the source does not bind `program`: end with `program = <a rasp.SOp>`")
        if not isinstance(program, rasp.SOp):
            kind = "a Selector" if isinstance(program, rasp.Selector) else f"a {type(program).__name__}"
            hint = " (wrap it: rasp.Aggregate(selector, sop) or rasp.SelectorWidth(selector))" if kind == "a Selector" else ""
            return JobResult.failure(job.job_id, "exec", f"`program` is {kind}, not a rasp.SOp{hint}")
        encoding = rasp.get_encoding(program).value
        # -- evaluate
        stage[0] = "evaluate"
        evaluator = self.evaluator_class(context)
        rasp_outputs = []
        for xs in job.inputs:
            try:
                values = evaluator.run(program, list(xs))
            except _Trap:
                raise
            except Exception as err:  # noqa: BLE001
                _reraise_limits(err)
                return JobResult.failure(job.job_id, "evaluate", f"on input {list(xs)}: {context.exception(err)}",
                                         output_encoding=encoding)
            rasp_outputs.append([_json_value(v) for v in values])
        # -- compile
        stage[0] = "compile"
        settings = self.CompileSettings.from_json(job.settings)
        none_results = self._watch_for_none(program)
        try:
            model, graph, sources = self.compile_program(program, job.vocab, settings, with_graph=True)
        except Exception as err:  # noqa: BLE001
            _reraise_limits(err)
            return JobResult.failure(job.job_id, "compile", context.exception(err), rasp_outputs=rasp_outputs,
                                     output_encoding=encoding)
        if none_results:
            expr, args = none_results[0]
            shown = repr(args[0]) if len(args) == 1 else repr(args)
            return JobResult.failure(job.job_id, "compile", f"{context.describe(expr)} returned None for {shown} while "
                                     "tracr compiled it (tracr calls every Map on every value its input can take, "
                                     "and drops None silently): return a value for every possible input",
                                     rasp_outputs=rasp_outputs, output_encoding=encoding)
        # -- run
        stage[0] = "run"
        extra = {}
        if getattr(settings, "sharpen_attention", None) is not None:  # newer CompileSettings carry it
            extra["sharpen"] = settings.sharpen_attention
        runtime = self.ConnRuntime.from_model(model, settings.max_seq_len, settings.causal, **extra)
        size = self.model_size(model).to_json()
        try:
            rows = runtime.run([list(x) for x in job.inputs]) if job.inputs else []
            model_outputs = [[_json_value(v) for v in row] for row in rows]
        except Exception as err:  # noqa: BLE001
            _reraise_limits(err)
            return JobResult.failure(job.job_id, "run", context.exception(err), rasp_outputs=rasp_outputs,
                                     output_encoding=encoding, size=size)
        mismatch = _first_mismatch(job.inputs, rasp_outputs, model_outputs, runtime.spec.output_kind)
        weights_rel = None
        if job.want_weights and self.exchange:
            stage[0] = "run"
            directory = os.path.join(self.exchange, job.job_id)
            os.makedirs(directory, exist_ok=True)
            os.chmod(directory, 0o777)  # the host (another uid outside a container) clears it between jobs
            weights_rel = f"{job.job_id}/weights.npz"
            with open(os.path.join(self.exchange, weights_rel), "wb") as handle:
                # Any: numpy's stub types **kwds against savez's allow_pickle flag too
                arrays: dict[str, Any] = dict(runtime.weights)
                self.np.savez(handle, **arrays)
        common = dict(rasp_outputs=rasp_outputs, model_outputs=model_outputs, output_encoding=encoding, size=size,
                      spec=runtime.spec.to_json(), weights_path=weights_rel, graph=self._graph_facts(model, graph, sources))
        if mismatch:
            return JobResult.failure(job.job_id, "run", mismatch, **common)
        return JobResult(job_id=job.job_id, ok=True, stage=None, error="", **common)


def _reraise_limits(err: BaseException) -> None:
    """Running out of memory is a limit, whichever stage it happened in."""
    if isinstance(err, MemoryError):
        raise err


def _first_mismatch(inputs: list, rasp_outputs: list, model_outputs: list, kind: str) -> str:
    """Where the compiled model disagrees with rasp.evaluate (a silent miscompile). A None
    from rasp (an Aggregate that selected nothing) is left to verification."""
    for xs, want, got in zip(inputs, rasp_outputs, model_outputs):
        for position, (w, g) in enumerate(zip(want, got)):
            if w is not None and not values_match(w, g, kind):
                return (f"the compiled model disagrees with rasp.evaluate on input {list(xs)} at position {position}: "
                        f"rasp gives {w!r}, the model {g!r} (tracr compiled this program wrongly; numerical SOps need "
                        "values in [0, 1] for Aggregates, categorical ones exactly one selected position)")
    return ""


# ---------------------------------------------------------------------------------------
# Warm-up (trusted programs only) and the main loop
# ---------------------------------------------------------------------------------------

WARM_PROGRAMS = {
    "reverse": ("from tracr.rasp import rasp\n"
                "length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))\n"
                "opp = rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)\n"
                "program = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)\n"),
    "hist": ("from tracr.rasp import rasp\n"
             "program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ))\n"),
    "frac_prevs": ("from tracr.rasp import rasp\n"
                   "is_a = rasp.numerical(rasp.Map(lambda t: 1 if t == 'a' else 0, rasp.tokens))\n"
                   "prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)\n"
                   "program = rasp.numerical(rasp.Aggregate(prevs, is_a, default=0))\n"),
    "sort": ("from tracr.rasp import rasp\nfrom tracr.compiler import lib\n"
             "program = lib.make_sort_unique(rasp.tokens, rasp.tokens)\n"),
    "map": ("from tracr.rasp import rasp\n"
            "program = rasp.Map(lambda t: t == 'a', rasp.tokens)\n"),
}


CACHE_RECIPE = "r2"  # bump when the warm-up programs or the compile path change: names a fresh cache dir
WARM_VOCABS = (["a", "b", "c"],)
WARM_LENGTHS = (5, 10)


def _warm_job(name: str, vocab: list, max_len: int) -> Job:
    settings = {"max_seq_len": max_len, "mlp_exactness": max(100, 2 * (max_len + 1) * (max_len + 2)),
                "compiler_bos": "BOS", "compiler_pad": "PAD", "causal": False}
    inputs = [vocab[: n % len(vocab) + 1] for n in range(max_len)]
    return Job(job_id=f"warm-{name}-{len(vocab)}-{max_len}", source=WARM_PROGRAMS[name], vocab=vocab, settings=settings,
               inputs=inputs, want_weights=False, timeout_seconds=600)


def warm(cache_dir: str | None) -> dict[str, float]:
    """Compiles and runs trusted programs so JAX's persistent cache holds the common
    executables. Run by the image build and by the process backend's first start."""
    worker = Worker(exchange=None)
    timings: dict[str, float] = {}
    for vocab in WARM_VOCABS:
        for max_len in WARM_LENGTHS:
            for name in WARM_PROGRAMS:
                job = _warm_job(name, vocab, max_len)
                result, _ = worker.run_job(job)
                timings[job.job_id] = result.seconds
                if not result.ok:
                    print(f"warm-up {job.job_id} failed: {result.stage}: {result.error}", file=sys.__stderr__)
    return timings


class _MemoryOverDisk:
    """JAX compilation cache for jobs: reads the trusted on-disk cache (filled by the
    warm-up), never writes it; executables compiled by jobs are kept in this worker's
    memory only, so later jobs of the same worker reuse them and a replaced worker starts
    again from the trusted cache."""

    def __init__(self, disk: Any, budget_bytes: int = 256 * 1024 * 1024) -> None:
        self._disk = disk
        self._memory: dict[str, bytes] = {}
        self._bytes = 0
        self._budget = budget_bytes

    @property
    def _path(self) -> Any:
        return self._disk._path

    def get(self, key: str) -> bytes | None:
        value = self._memory.get(key)
        if value is not None:
            return value
        try:
            return self._disk.get(key)
        except Exception:  # noqa: BLE001 - an unreadable entry is a miss
            return None

    def put(self, key: str, value: bytes) -> None:
        if key in self._memory or len(value) > self._budget:
            return
        while self._memory and self._bytes + len(value) > self._budget:
            _, dropped = self._memory.popitem()
            self._bytes -= len(dropped)
        self._memory[key] = value
        self._bytes += len(value)

    def clear(self) -> None:
        self._memory.clear()
        self._bytes = 0


def _configure_jax(cache_dir: str | None, cache_mode: str) -> str:
    """Returns the cache mode in force: rw (trusted warm-up only), ro (disk read-only,
    job entries in memory), off."""
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import warnings

    import jax

    warnings.filterwarnings("ignore", message=".*persistent compilation cache.*")
    jax.config.update("jax_platforms", "cpu")
    if not cache_dir or cache_mode == "off" or not os.path.isdir(cache_dir) and cache_mode == "ro":
        return "off"
    jax.config.update("jax_compilation_cache_dir", cache_dir)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    if cache_mode == "rw":
        return "rw"
    try:  # private JAX API (pinned version): put an in-memory layer over the read-only disk cache
        from jax._src import compilation_cache

        compilation_cache._initialize_cache()
        if compilation_cache._cache is None:
            raise RuntimeError("no cache")
        layered_class = type("MemoryOverDiskCache", (_MemoryOverDisk, compilation_cache.CacheInterface), {})
        compilation_cache._cache = layered_class(compilation_cache._cache)
        return "ro+memory"
    except Exception:  # noqa: BLE001 - fall back to a plain read-only disk cache: never write
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1e9)
        return "ro"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoconn.sandbox.worker")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--cache-mode", choices=("ro", "rw", "off"), default="ro")
    parser.add_argument("--exchange", default=None, help="directory where weights.npz files are written")
    parser.add_argument("--warm", action="store_true", help="fill the JAX cache with trusted programs, then exit")
    parser.add_argument("--seccomp", action="store_true",
                        help="install the seccomp filter (autoconn.sandbox.seccomp) on this process before any job")
    parser.add_argument("--no-prewarm", dest="prewarm", action="store_false",
                        help="skip compiling a trusted program before announcing readiness")
    args = parser.parse_args(argv)
    started = time.monotonic()
    os.umask(0o022)
    if args.warm:
        _configure_jax(args.cache_dir, "rw")
        timings = warm(args.cache_dir)
        print(json.dumps({"warmed": len(timings), "seconds": round(time.monotonic() - started, 1)}), file=sys.__stderr__)
        return 0
    protocol = _Protocol()
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ValueError, OSError):
        pass
    cache_mode = _configure_jax(args.cache_dir, args.cache_mode)
    worker = Worker(exchange=args.exchange)
    import jax

    # The host runtime's lazy state (which BLAS call pins a thread), filled by trusted code now:
    # filled during a job, the integrity check would take it for the candidate's tampering.
    from autoconn.conn.runtime import prepare_threading

    prepare_threading()
    if args.seccomp:  # before the first compile and every job: nothing a candidate runs escapes it
        from autoconn.sandbox import seccomp

        seccomp.install()
    prewarm_seconds = worker.prewarm() if args.prewarm else 0.0

    from autoconn.sandbox.seccomp import status as _kernel_status

    protocol.send({"type": "ready", "pid": os.getpid(), "python": sys.version.split()[0], "jax": jax.__version__,
                   "kernel": _kernel_status(),
                   "cache": cache_mode, "prewarm_seconds": round(prewarm_seconds, 3),
                   "startup_seconds": round(time.monotonic() - started, 3)})
    while True:
        line = protocol.receive()
        if line is None:
            return 0
        if not line.strip():
            continue
        try:
            job = Job.from_json(decode_line(line))
        except Exception as err:  # noqa: BLE001 - the host is trusted; say what was wrong
            failure = JobResult.failure("?", "crash", f"bad job line: {_shorten(err)}")
            protocol.send({"type": "result", "result": failure.to_json(), "recycle": []})
            continue
        recycle: list[str] = []
        if not valid_job_id(job.job_id):
            result = JobResult.failure(str(job.job_id)[:80], "crash", "invalid job_id (use letters, digits, . _ -)")
        else:
            result, recycle = worker.run_job(job)
        protocol.send({"type": "result", "result": result.to_json(), "recycle": recycle})
        if recycle:
            return 0  # the host starts a fresh worker for the next job


if __name__ == "__main__":
    sys.exit(main())
