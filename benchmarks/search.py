#!/usr/bin/env python3
"""Offline search on every rule_examples/*.jsonl task: found? how fast? how big? verified?

For each task: search on the induction split, compile the best program in-process (our own
tree, trusted), run the compiled model on the held-out split. A failing program is fed back
the way the pipeline does it (tried programs are skipped, its counterexamples join the
examples) for up to --rounds rounds. The reference program of the rule, when there is one
(rule_examples/reference/<task>.py, hand-written), is compiled too for its layer count.

    python benchmarks/search.py [--dir rule_examples] [--budget 20] [--tasks reverse,hist] [--json]

Seconds are wall time on this machine; "to verified" counts search, compile and check.
A warm-up compile runs first (a persistent worker keeps JAX warm the same way).
"""

from __future__ import annotations

import argparse
import json
import re
import runpy
import statistics
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from autoconn.conn.compile import compile_program, default_settings, model_size  # noqa: E402
from autoconn.conn.runtime import ConnRuntime  # noqa: E402
from autoconn.conn.verify import verify_outputs  # noqa: E402
from autoconn.inducers.base import Counterexample, Feedback  # noqa: E402
from autoconn.inducers.search import synthesize_task  # noqa: E402
from autoconn.inducers.search.inducer import counterexample_examples  # noqa: E402
from autoconn.task import Task, load_task, split_task  # noqa: E402

TIERS = ("easy", "medium", "hard")


@dataclass
class Row:
    task: str
    tier: str
    found: bool
    first_seconds: float | None
    enumerated: int
    layers: int | None
    reference_layers: int | None
    heldout_accuracy: float | None
    verified: bool
    verified_seconds: float | None
    search_seconds: float
    compile_seconds: float
    rounds: int
    program: str
    stop: str = ""  # why the last search ended (found / budget / exhausted / error)


def tiers_from_readme(directory: Path) -> dict[str, str]:
    """task name -> tier, from a markdown table in README.md whose header has a "tier" column."""
    readme = directory / "README.md"
    if not readme.exists():
        return {}
    out: dict[str, str] = {}
    tier_col = None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if not line.strip().startswith("|"):
            tier_col = None if not line.strip() else tier_col
            continue
        cells = [c.strip().strip("`*").lower() for c in line.strip().strip("|").split("|")]
        if any(c == "tier" for c in cells):
            tier_col = cells.index("tier")
            continue
        if tier_col is None or tier_col >= len(cells) or set(cells[0]) <= set("-: "):
            continue
        name = re.sub(r"[`*\[\]]|\(.*?\)", "", cells[0]).strip().removesuffix(".jsonl")
        tier = cells[tier_col]
        if tier in TIERS:
            out[name] = tier
    return out


def tier_of(task: Task, table: dict[str, str]) -> str:
    if task.name in table:
        return table[task.name]
    stem = Path(task.path).stem
    if stem in table:
        return table[stem]
    for tier in TIERS:
        if re.search(rf"\b{tier}\b", task.description.lower()):
            return tier
    return "?"


def reference_layers(directory: Path, task: Task) -> int | None:
    """Layers of the hand-written reference program (our own repo file), or None."""
    path = directory / "reference" / f"{Path(task.path).stem}.py"
    if not path.exists():
        return None
    try:
        program = runpy.run_path(str(path))["program"]
        model = compile_program(program, task.input_vocab, default_settings(task.max_seq_len))
        return model_size(model).layers
    except Exception as err:  # noqa: BLE001 - a broken reference is reported, not fatal
        print(f"  reference for {task.name} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return None


def run_task(path: Path, table: dict[str, str], budget: float, rounds: int, with_reference: bool) -> Row:
    task = load_task(path)
    split = split_task(task)
    validation, sealed = split_sets(split)
    examples = list(split.induction)
    tried: set[str] = set()
    start = time.perf_counter()
    first_seconds = None
    enumerated = 0
    row = Row(task.name, tier_of(task, table), False, None, 0, None, None, None, False, None, 0.0, 0.0, 0, "")
    for attempt in range(1, rounds + 1):
        remaining = budget - (time.perf_counter() - start)
        if remaining <= 0:
            break
        syn = synthesize_task(task, examples, budget_seconds=remaining, want=1, exclude=tried)
        enumerated += syn.enumerated
        row.search_seconds += syn.seconds
        row.stop = syn.stop_reason if syn.found else syn.why_stopped
        fresh = [f for f in syn.found if f.source not in tried]
        if first_seconds is None and syn.first_match_seconds is not None:
            first_seconds = (time.perf_counter() - start) - syn.seconds + syn.first_match_seconds
        if not fresh:
            break
        best = fresh[0]
        tried.add(best.source)
        row.rounds = attempt
        row.found = True
        row.program = best.summary
        began = time.perf_counter()
        try:
            model = compile_program(best.to_rasp(), task.input_vocab, default_settings(task.max_seq_len))
        except Exception as err:  # noqa: BLE001 - a program tracr refuses is a failed candidate
            row.compile_seconds += time.perf_counter() - began
            row.stop = f"compile error: {type(err).__name__}: {str(err)[:80]}"
            continue
        row.compile_seconds += time.perf_counter() - began
        row.layers = model_size(model).layers
        runtime = ConnRuntime.from_model(model, task.max_seq_len)
        outputs = runtime.run([e.inputs for e in validation])
        check = verify_outputs(validation, outputs, task.output_kind)
        if check.passed:
            final = verify_outputs(sealed, runtime.run([e.inputs for e in sealed]), task.output_kind)
            row.heldout_accuracy = final.accuracy
            row.verified = final.passed
            if final.passed:
                row.verified_seconds = time.perf_counter() - start
            break  # the sealed set gives the verdict once; it is never fed back
        row.heldout_accuracy = check.accuracy
        failures = tuple(Counterexample(tuple(f.inputs), tuple(f.expected), tuple(f.got)) for f in check.failures[:8])
        examples += counterexample_examples(task, [Feedback(best.source, "verify", "held-out mismatch", failures)], examples)
    row.first_seconds = first_seconds
    row.enumerated = enumerated
    if with_reference:
        row.reference_layers = reference_layers(path.parent, task)
    return row


def split_sets(split: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """(validation, sealed) of task.split_task's three-way split."""
    return tuple(split.validation), tuple(split.sealed)


def fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "y" if value else "n"
    return format(value, spec)


def print_table(rows: list[Row]) -> None:
    head = (f"{'task':16s} {'tier':6s} {'found':5s} {'first s':>7s} {'search s':>8s} {'enum':>7s} {'layers':>6s} "
            f"{'ref':>3s} {'heldout':>7s} {'verif s':>7s}  program")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.task:16s} {r.tier:6s} {fmt(r.verified):5s} {fmt(r.first_seconds, '.2f'):>7s} "
              f"{r.search_seconds:>8.2f} {r.enumerated:>7d} {fmt(r.layers):>6s} {fmt(r.reference_layers):>3s} "
              f"{fmt(r.heldout_accuracy, '.2f'):>7s} {fmt(r.verified_seconds, '.2f'):>7s}  {r.program[:70]}")
    print()
    for tier in sorted({r.tier for r in rows}, key=lambda t: (TIERS + ("?",)).index(t) if t in TIERS + ("?",) else 9):
        group = [r for r in rows if r.tier == tier]
        solved = sum(r.verified for r in group)
        print(f"tier {tier:6s}: {solved}/{len(group)} solved")
    solved = [r for r in rows if r.verified]
    print(f"overall    : {len(solved)}/{len(rows)} solved ({100 * len(solved) / max(1, len(rows)):.0f}%)")
    print(f"median seconds to a first match (found tasks): "
          f"{statistics.median([r.first_seconds for r in rows if r.first_seconds is not None] or [0]):.2f}")
    if solved:
        print(f"median search seconds (solved tasks): {statistics.median(r.search_seconds for r in solved):.2f}; "
              f"median compile seconds: {statistics.median(r.compile_seconds for r in solved):.2f}")
        print(f"median seconds to a verified program (solved tasks): {statistics.median(r.verified_seconds for r in solved):.2f}")
        all_times = sorted(r.verified_seconds if r.verified else float("inf") for r in rows)
        print(f"median seconds to a verified program (all tasks, unsolved = inf): {statistics.median(all_times):.2f}")
    larger = [r.task for r in solved if r.reference_layers is not None and r.layers is not None and r.layers > r.reference_layers]
    print(f"solved programs with more layers than the reference: {larger or 'none'}")


def summary(rows: list[Row]) -> dict[str, str]:
    """The headline figures of one suite, as printable strings."""
    solved = [r for r in rows if r.verified]
    out = {
        "tasks": str(len(rows)),
        "verified": f"{len(solved)}/{len(rows)} ({100 * len(solved) / max(1, len(rows)):.0f}%)",
        "median s to verified (solved)": f"{statistics.median([r.verified_seconds for r in solved]):.2f}" if solved else "-",
        "median s to verified (all, unsolved=inf)": (
            f"{statistics.median(sorted(r.verified_seconds if r.verified else float('inf') for r in rows)):.2f}"
            if rows else "-"),
        "found but wrong (registered-but-wrong risk)": str(sum(1 for r in rows if r.found and not r.verified)),
        "stopped: budget / exhausted": (f"{sum(1 for r in rows if not r.found and 'budget' in r.stop)} / "
                                        f"{sum(1 for r in rows if not r.found and 'exhausted' in r.stop)}"),
    }
    by_layers: dict[str, list[Row]] = {}
    for r in rows:
        if r.reference_layers is not None:
            by_layers.setdefault(f"reference {r.reference_layers} layer(s)", []).append(r)
    for key in sorted(by_layers):
        group = by_layers[key]
        out[key] = f"{sum(r.verified for r in group)}/{len(group)}"
    layers = [r.layers for r in solved if r.layers is not None]
    if layers:
        out["layers of verified programs: median / max"] = f"{statistics.median(layers):g} / {max(layers)}"
    return out


def print_side_by_side(results: dict[str, list[Row]]) -> None:
    sums = {name: summary(rows) for name, rows in results.items()}
    keys = list(dict.fromkeys(k for s in sums.values() for k in s))
    width = max(len(k) for k in keys)
    cols = list(sums)
    print(f"{'':{width}s}  " + "  ".join(f"{c[-24:]:>24s}" for c in cols))
    for k in keys:
        print(f"{k:{width}s}  " + "  ".join(f"{sums[c].get(k, '-'):>24s}" for c in cols))


def write_baseline(path: Path, rows: list[Row], budget: float, directory: Path) -> None:
    data = {
        "inducer": "search",
        "suite": str(directory),
        "budget_seconds": budget,
        "note": "benchmarks/search.py: verified = right on the held-out examples with the compiled model "
                "(the files' examples are all there is: no reference program to test fresh inputs against)",
        "tasks": {r.task: {"solved": r.verified, "seconds": None if r.verified_seconds is None else round(r.verified_seconds, 2),
                           "layers": r.layers, "program": r.program[:200], "stop": r.stop} for r in rows},
    }
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dirs", nargs="*", help="task directories (default: rule_examples); figures side by side")
    parser.add_argument("--dir", default="", help="one task directory (same as a positional one)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of search per task (all rounds)")
    parser.add_argument("--rounds", type=int, default=3, help="programs tried per task")
    parser.add_argument("--tasks", default="", help="comma-separated task names (default: all)")
    parser.add_argument("--no-reference", action="store_true", help="skip compiling the reference programs")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON instead of a table")
    parser.add_argument("--baseline", action="append", default=[],
                        help="DIR=PATH: write that suite's per-task results (solved, seconds, layers) to PATH")
    parser.add_argument("--jax-cache", default=str(Path(tempfile.gettempdir()) / "autoconn-jax-cache"),
                        help="JAX persistent compilation cache (a warm cache makes tracr compiles ~5x faster); '' = off")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.jax_cache:
        import jax

        jax.config.update("jax_compilation_cache_dir", args.jax_cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    directories = [Path(d) for d in (args.dirs + ([args.dir] if args.dir else []))] or [REPO / "rule_examples"]
    baselines = dict(b.split("=", 1) for b in args.baseline)
    from tracr.rasp import rasp  # warm-up: JAX tracing is paid once per process

    compile_program(rasp.Map(lambda x: x, rasp.tokens), ["a"], default_settings(4))
    results: dict[str, list[Row]] = {}
    for directory in directories:
        paths = sorted(directory.glob("*.jsonl"))
        if args.tasks:
            wanted = set(args.tasks.split(","))
            paths = [p for p in paths if p.stem in wanted]
        table = tiers_from_readme(directory)
        rows = []
        for path in paths:
            try:
                row = run_task(path, table, args.budget, args.rounds, not args.no_reference)
            except Exception as err:  # noqa: BLE001 - e.g. a file the task loader refuses
                print(f"  {path.stem}: skipped ({type(err).__name__}: {str(err)[:120]})", file=sys.stderr, flush=True)
                continue
            rows.append(row)
            if not args.json:
                print(f"  {row.task}: {'verified' if row.verified else 'not verified'} "
                      f"({fmt(row.verified_seconds, '.1f')} s) {row.program[:80] or row.stop[:80]}", file=sys.stderr,
                      flush=True)
        results[str(directory)] = rows
        for key, target in baselines.items():
            if Path(key).resolve() == directory.resolve():
                write_baseline(Path(target), rows, args.budget, directory)
    if args.json:
        print(json.dumps({d: [asdict(r) for r in rows] for d, rows in results.items()}, indent=1))
        return 0
    for directory, rows in results.items():
        print(f"== {directory}")
        print_table(rows)
        print()
    print_side_by_side(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
