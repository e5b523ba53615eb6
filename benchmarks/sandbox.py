"""Seconds per candidate through the sandbox, side by side, from one run.

    python benchmarks/sandbox.py [--modes fresh,process,docker,host,host-fast] [--json]

Modes (each runs the same 20 small candidates, written below, once):
  fresh      a fresh process-backend worker per job (start, import jax, one job, exit)
  process    the warm process worker (one worker for all jobs)
  docker     the warm Docker worker (one container for all jobs)
  host       in the host process: exec (trusted programs) + evaluate + compile_program +
             ConnRuntime, with a warm on-disk JAX cache (read-write) - the baseline
  host-fast  the same, with the worker's fast haiku init (autoconn.sandbox.fastinit)
The sandbox modes' seconds include the host verdict (the returned weights checked, loaded and
run on the host: autoconn.checking.host_runtime), as every check pays it. The in-host modes run
in their own subprocess each, started with a copy of the trusted warm cache and one warm-up
job, so they start as warm as a sandbox worker. Prints median and total seconds per mode and
the ratio warm-worker / host.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

R = "from tracr.rasp import rasp\n"
RL = "from tracr.rasp import rasp\nfrom tracr.compiler import lib\n"
LENGTH = "length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE))\n"

# name, source, vocab, max_seq_len
CANDIDATES: list[tuple[str, str, list, int]] = [
    ("reverse", R + LENGTH + "opp = rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)\n"
     "program = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)\n", ["a", "b", "c"], 5),
    ("hist", R + "program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ))\n", ["a", "b", "c"], 5),
    ("length", R + LENGTH + "program = length\n", ["a", "b", "c", "d"], 6),
    ("sort_unique", RL + "program = lib.make_sort_unique(rasp.tokens, rasp.tokens)\n", [1, 2, 3, 4, 5], 5),
    ("frac_prevs", R + "is_a = rasp.numerical(rasp.Map(lambda t: 1 if t == 'a' else 0, rasp.tokens))\n"
     "prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)\n"
     "program = rasp.numerical(rasp.Aggregate(prevs, is_a, default=0))\n", ["a", "b"], 8),
    ("parity_of_ones", R + "ones = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == '1'))\n"
     "program = rasp.Map(lambda n: n % 2, ones)\n", ["0", "1"], 6),
    ("copy", R + "program = rasp.Map(lambda t: t, rasp.tokens)\n", ["a", "b", "c"], 5),
    ("upper", R + "program = rasp.Map(lambda t: t.upper(), rasp.tokens)\n", ["a", "b", "c"], 5),
    ("shift_right", R + "prev = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == q - 1)\n"
     "program = rasp.Aggregate(prev, rasp.tokens)\n", ["a", "b", "c"], 6),
    ("first_token", R + "first = rasp.Select(rasp.indices, rasp.indices, lambda k, q: k == 0)\n"
     "program = rasp.Aggregate(first, rasp.tokens)\n", ["a", "b", "c", "d"], 6),
    ("last_token", R + LENGTH + "last = rasp.Map(lambda n: n - 1, length)\n"
     "program = rasp.Aggregate(rasp.Select(rasp.indices, last, rasp.Comparison.EQ), rasp.tokens)\n", ["a", "b", "c"], 6),
    ("count_a", R + "program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: k == 'a'))\n",
     ["a", "b"], 7),
    ("sort", RL + "program = lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1)\n", [1, 2, 3, 4], 5),
    ("sort_freq", RL + "program = lib.make_sort_freq(max_seq_len=5)\n", ["a", "b", "c"], 5),
    ("double_hist", R + "hist = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ))\n"
     "program = rasp.SelectorWidth(rasp.Select(hist, hist, rasp.Comparison.EQ))\n", ["a", "b", "c"], 5),
    ("frac_same_before", R + "first_b = rasp.numerical(rasp.Map(lambda t: 1 if t == 'b' else 0, rasp.tokens))\n"
     "prefix = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)\n"
     "program = rasp.numerical(rasp.Aggregate(prefix, first_b, default=0))\n",
     ["a", "b", "c"], 6),
    ("reverse_10", R + LENGTH + "opp = rasp.SequenceMap(lambda n, i: n - i - 1, length, rasp.indices)\n"
     "program = rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens)\n", ["w", "x", "y", "z"], 10),
    ("hist_10", R + "program = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ))\n",
     ["a", "b", "c", "d", "e"], 10),
    ("is_a", R + "program = rasp.Map(lambda t: t == 'a', rasp.tokens)\n", ["a", "b"], 8),
    ("mask_odd", R + "program = rasp.SequenceMap(lambda t, i: t if i % 2 == 0 else 'x', rasp.tokens, rasp.indices)\n",
     ["a", "b", "c"], 6),
]


def _inputs(vocab: list, max_len: int, seed: int, unique: bool = False) -> list[list]:
    rng = random.Random(seed)
    rows = []
    for _ in range(8):
        n = rng.randint(1, max_len)
        rows.append(rng.sample(vocab, min(n, len(vocab))) if unique else [rng.choice(vocab) for _ in range(n)])
    return rows


def jobs() -> list[Any]:
    from autoconn.conn.compile import default_settings
    from autoconn.sandbox import Job

    out = []
    for index, (name, source, vocab, max_len) in enumerate(CANDIDATES):
        unique = name.startswith("sort")
        out.append(Job(job_id=name, source=source, vocab=vocab, settings=default_settings(max_len).to_json(),
                       inputs=_inputs(vocab, max_len, index, unique), want_weights=True, timeout_seconds=300))
    return out


def host_verdict(job: Any, result: Any) -> tuple[Any, bool]:
    """The host's side of every check (issue 12), by the pipeline's own path: the returned weights
    are validated against their spec and loaded (checking.host_runtime), then run here on the
    job's inputs (conn.verify.score_runtime). (result, True) when they were accepted and ran
    (scored against rasp.evaluate's outputs, where a None - an empty selection - matches nothing:
    the score itself is not what is timed); a refusal comes back as a failed result."""
    from autoconn.checking import host_runtime
    from autoconn.conn.compile import CompileSettings
    from autoconn.conn.verify import score_runtime
    from autoconn.task import Example, Task

    settings = CompileSettings.from_json(job.settings)
    examples = tuple(Example(tuple(x), tuple(y)) for x, y in zip(job.inputs, result.rasp_outputs or []))
    lengths = [len(x) for x in job.inputs] or [0]
    task = Task(name=job.job_id, path="", description="", examples=examples, input_vocab=tuple(job.vocab),
                output_vocab=(), output_kind=result.output_encoding or "categorical", output_shape="sequence",
                min_length=min(lengths), max_length=max(lengths), max_seq_len=settings.max_seq_len)
    result, runtime = host_runtime(result, task, settings)
    if runtime is None:
        return result, False
    return result, score_runtime(runtime, examples, task.output_kind).total == len(job.inputs)


def run_sandbox(kind: str, fresh: bool) -> dict[str, Any]:
    """Seconds per candidate: the sandbox job plus the host verdict on the returned weights
    (what a check costs end to end); `sandbox_times` holds the sandbox job alone."""
    from autoconn.sandbox import open_sandbox

    options: dict[str, Any] = {"prewarm": False} if fresh else {}
    times, sandbox_times, oks, errors = {}, {}, 0, []
    with open_sandbox(kind, **options) as sandbox:
        if not fresh:
            sandbox.warm_up()
        for job in jobs():
            started = time.monotonic()
            result = sandbox.run(job)
            sandbox_times[job.job_id] = time.monotonic() - started
            ok = bool(result.ok)
            if ok:
                result, ok = host_verdict(job, result)
            if fresh:
                sandbox._drop_worker()  # the next job starts (and pays for) a new process
            times[job.job_id] = time.monotonic() - started
            oks += ok
            if not ok:
                errors.append(f"{job.job_id}: {result.stage}: {result.error[:120]}")
    return {"times": times, "sandbox_times": sandbox_times, "ok": oks, "errors": errors}


def run_host(fast: bool) -> dict[str, Any]:
    """Runs in a subprocess of its own (see main): in-host compile with a warm rw cache."""
    import jax

    cache = tempfile.mkdtemp(prefix="autoconn-bench-cache-")
    from autoconn.sandbox.process import ensure_warm_cache

    trusted = ensure_warm_cache()
    if trusted is not None:
        shutil.copytree(trusted, cache, dirs_exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    from tracr.rasp import rasp

    from autoconn.conn.compile import CompileSettings, compile_program
    from autoconn.conn.runtime import ConnRuntime

    if fast:
        from autoconn.sandbox import fastinit

        fastinit.install()

    def one(job: Any) -> bool:
        namespace: dict[str, Any] = {}
        exec(compile(job.source, job.job_id, "exec"), namespace)  # noqa: S102 - our own benchmark programs
        program = namespace["program"]
        rasp_out = [rasp.evaluate(program, x) for x in job.inputs]
        settings = CompileSettings.from_json(job.settings)
        model = compile_program(program, job.vocab, settings)
        runtime = ConnRuntime.from_model(model, settings.max_seq_len)
        model_out = runtime.run(job.inputs)
        with tempfile.TemporaryDirectory() as scratch:
            runtime.save_weights(os.path.join(scratch, "weights.npz"))
        return rasp_out is not None and model_out is not None

    from autoconn.conn.compile import default_settings
    from autoconn.sandbox import Job
    from autoconn.sandbox.worker import WARM_PROGRAMS  # same warm-up as a worker's prewarm

    one(Job(job_id="warm", source=WARM_PROGRAMS["reverse"], vocab=["a", "b", "c"],
            settings=default_settings(5).to_json(), inputs=[["a", "b"]]))
    times, oks = {}, 0
    for job in jobs():
        started = time.monotonic()
        oks += one(job)
        times[job.job_id] = time.monotonic() - started
    shutil.rmtree(cache, ignore_errors=True)
    return {"times": times, "ok": oks, "errors": []}


LABELS = {"fresh": "(a) fresh process/job", "process": "(b) warm process worker", "docker": "(c) warm docker worker",
          "host": "(d) in-host, warm cache", "host-fast": "(d') in-host + fast init"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--modes", default="fresh,process,docker,host,host-fast")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--inner", choices=("host", "host-fast"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.inner:
        print(json.dumps(run_host(fast=args.inner == "host-fast")))
        return 0
    from autoconn.sandbox.docker_backend import docker_status

    results: dict[str, dict[str, Any]] = {}
    load_before = os.getloadavg()[0]
    for mode in args.modes.split(","):
        print(f"running {mode} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        if mode in ("host", "host-fast"):
            done = subprocess.run([sys.executable, __file__, "--inner", mode], capture_output=True, text=True)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                continue
            results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        elif mode == "docker" and not docker_status()["usable"]:
            print(f"skipping docker: {docker_status()['reason']}", file=sys.stderr)
            continue
        else:
            results[mode] = run_sandbox("process" if mode == "fresh" else mode, fresh=mode == "fresh")
        results[mode]["wall"] = time.monotonic() - started
    names = [c[0] for c in CANDIDATES]
    modes = list(results)
    if args.json:
        print(json.dumps({"results": results, "load": load_before}, indent=1))
        return 0
    width = 17
    print(f"\n{len(names)} candidates; machine load average at start {load_before:.1f} on {os.cpu_count()} cores\n")
    print("candidate".ljust(18) + "".join(m.rjust(width) for m in modes))
    for name in names:
        print(name.ljust(18) + "".join(f"{results[m]['times'].get(name, float('nan')):{width}.2f}" for m in modes))
    print("-" * (18 + width * len(modes)))
    medians = {m: statistics.median(results[m]["times"].values()) for m in modes}
    totals = {m: sum(results[m]["times"].values()) for m in modes}
    print("median s".ljust(18) + "".join(f"{medians[m]:{width}.2f}" for m in modes))
    print("total s".ljust(18) + "".join(f"{totals[m]:{width}.1f}" for m in modes))
    print("ok".ljust(18) + "".join(f"{results[m]['ok']:>{width}}" for m in modes))
    print()
    for m in modes:
        print(f"  {m:<10} {LABELS.get(m, m)}")
    sandbox_medians = {m: statistics.median(results[m]["sandbox_times"].values()) for m in modes
                       if results[m].get("sandbox_times")}
    for base in ("host", "host-fast"):
        if base in medians:
            for worker in ("process", "docker"):
                if worker in medians:
                    print(f"median {worker} / {base}: {medians[worker] / medians[base]:.2f}x "
                          f"(sandbox job alone, without the host verdict: {sandbox_medians[worker] / medians[base]:.2f}x)")
    for m in modes:
        for error in results[m]["errors"]:
            print(f"  {m} failed {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
