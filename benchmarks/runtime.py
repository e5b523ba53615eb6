"""Inputs per second, side by side from one run: tracr's own model.apply loop, our runtime end to
end (encode + forward + decode), the forward pass alone, and the rate the model's FLOPs allow on
this CPU.

    python benchmarks/runtime.py [--inputs 10240] [--naive-inputs 100] [--repeats 5] [--lengths 10 32] [--json]

For reverse, hist and sort at each max_seq_len. Rates are medians over --repeats timings (the
end-to-end and forward-only timings interleaved, so machine load hits both alike). The FLOP bound
is this CPU's measured float32 matmul peak (numpy and XLA, the better one) divided by the FLOPs of
one input's forward pass as the runtime executes it (runtime.forward_flops: empty sublayers and
dead MLP units removed, padded length max_seq_len+1). Outputs of model.apply and the runtime are
compared too (a fast wrong answer is no answer), as are the numpy and jax backends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from tracr.rasp import rasp

from autoconn.conn.compile import compile_program, default_settings
from autoconn.conn.runtime import ConnRuntime


def reverse_program() -> rasp.SOp:
    length = rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)).named("length")
    opp = ((length - rasp.indices).named("opp") - 1).named("opp_index")
    return rasp.Aggregate(rasp.Select(rasp.indices, opp, rasp.Comparison.EQ), rasp.tokens).named("reverse")


def hist_program() -> rasp.SOp:
    return rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)).named("hist")


def sort_program() -> rasp.SOp:
    """Sort with duplicates kept (the fixture library's sort program, tests/fixtures/library/sort)."""
    pair = rasp.SequenceMap(lambda x, y: (x, y), rasp.tokens, rasp.indices).named("tok_pair_idx")
    smaller = rasp.SelectorWidth(rasp.Select(pair, pair, rasp.Comparison.LT)).named("n_smaller")
    return rasp.categorical(rasp.Aggregate(rasp.Select(smaller, rasp.indices, rasp.Comparison.EQ), rasp.tokens)).named("sort")


CASES: dict[str, tuple[Callable[[], rasp.SOp], list]] = {
    "reverse": (reverse_program, list("abcde")),
    "hist": (hist_program, list("abcde")),
    "sort": (sort_program, list(range(6))),
}


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


class MatmulPeak:
    """This CPU's float32 matmul rate (FLOP/s) on 1024x1024 products, numpy (OpenBLAS) and XLA:
    the hardware's ceiling for these models, which are all matrix products. Sampled between the
    runtime's timings, so the bound sees the same machine load."""

    def __init__(self, size: int = 1024) -> None:
        import jax
        import jax.numpy as jnp

        self.a = np.random.default_rng(0).standard_normal((size, size), dtype=np.float32)
        self.ja = jnp.asarray(self.a)
        self.mm = jax.jit(lambda x: x @ x)
        self.mm(self.ja).block_until_ready()
        self.flops = 2 * size ** 3
        self.samples: list[float] = []

    def sample(self) -> float:
        numpy_rate = self.flops / median_seconds(lambda: self.a @ self.a, 1)
        xla_rate = self.flops / median_seconds(lambda: self.mm(self.ja).block_until_ready(), 1)
        self.samples.append(max(numpy_rate, xla_rate))
        return self.samples[-1]


def measure(name: str, max_seq_len: int, args: argparse.Namespace, peak: MatmulPeak, progress: Progress) -> dict[str, Any]:
    build, vocab = CASES[name]
    rng = random.Random(0)
    inputs = [[rng.choice(vocab) for _ in range(rng.randint(1, max_seq_len))] for _ in range(args.inputs)]
    start = time.perf_counter()
    model = compile_program(build(), vocab, default_settings(max_seq_len))
    compile_seconds = time.perf_counter() - start
    runtime = ConnRuntime.from_model(model, max_seq_len)
    ids = runtime.encode(inputs)
    batched = runtime.run(inputs, backend="jax")  # traces every bucket it needs, as a long-lived runtime would have
    runtime.forward(ids[:1], backend="jax")
    numpy_out = runtime.run(inputs[:2000], backend="numpy")
    e2e, forward_only, numpy_e2e, peaks = [], [], [], []
    timings = {"e2e": (e2e, lambda: runtime.run(inputs, backend="jax")),
               "forward": (forward_only, lambda: runtime.forward(ids, backend="jax"))}
    for repeat in range(args.repeats):  # interleaved, so load swings hit all four alike
        order = ("e2e", "forward") if repeat % 2 == 0 else ("forward", "e2e")  # neither always goes first
        for key in order:
            times, fn = timings[key]
            times.append(median_seconds(fn, 1))
        first_1024 = median_seconds(lambda: runtime.run(inputs[:1024], backend="numpy"), 1)
        numpy_e2e.append(first_1024 * len(inputs) / min(1024, len(inputs)))
        peaks.append(peak.sample())
        time.sleep(0.2)  # let BLAS/XLA worker threads stop spinning before the next timing
    single = median_seconds(lambda: runtime.run(inputs[:1]), max(args.repeats, 20))  # auto: the numpy path
    task = progress.add_task(f"{name} L={max_seq_len}: model.apply loop", total=args.naive_inputs)
    start = time.perf_counter()
    naive = []
    for tokens in inputs[:args.naive_inputs]:
        naive.append(model.apply(["BOS"] + tokens).decoded[1:])
        progress.advance(task)
    naive_seconds = time.perf_counter() - start
    progress.remove_task(task)
    agree = sum(a == b for a, b in zip(naive, batched))
    flops = runtime.flops_per_input
    rates = {"apply": args.naive_inputs / naive_seconds, "e2e": args.inputs / statistics.median(e2e),
             "forward": args.inputs / statistics.median(forward_only), "numpy_e2e": args.inputs / statistics.median(numpy_e2e),
             "bound": statistics.median(peaks) / flops}
    return {"program": name, "max_seq_len": max_seq_len, "parameters": runtime.parameters, "compile_s": compile_seconds,
            "mflop_per_input": flops / 1e6, "apply_per_s": rates["apply"], "e2e_per_s": rates["e2e"],
            "forward_per_s": rates["forward"], "numpy_e2e_per_s": rates["numpy_e2e"], "flop_bound_per_s": rates["bound"],
            "e2e_of_forward": rates["e2e"] / rates["forward"], "forward_of_bound": rates["forward"] / rates["bound"],
            "e2e_over_apply": rates["e2e"] / rates["apply"], "single_input_ms": single * 1e3,
            "forward_gflops": rates["forward"] * flops / 1e9, "matmul_gflops": statistics.median(peaks) / 1e9,
            "e2e_best_per_s": args.inputs / min(e2e), "forward_best_per_s": args.inputs / min(forward_only),
            "apply_agrees": f"{agree}/{args.naive_inputs}", "numpy_equals_jax": numpy_out == batched[:len(numpy_out)],
            "inputs": args.inputs, "naive_inputs": args.naive_inputs, "repeats": args.repeats}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10240, help="inputs per timing of the runtime (default: 20 batches of 512)")
    parser.add_argument("--naive-inputs", type=int, default=100, help="inputs for the model.apply loop")
    parser.add_argument("--repeats", type=int, default=5, help="timings per rate (the median is reported)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 32], help="max_seq_len values")
    parser.add_argument("--programs", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    err = Console(stderr=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    peak = MatmulPeak()
    with Progress(console=err, transient=True) as progress:
        rows = [measure(name, length, args, peak, progress) for length in args.lengths for name in args.programs]
    machine = {"cpus": os.cpu_count(), "processor": _cpu_name(), "load_before": load,
               "load_after": os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan"),
               "matmul_gflops_median": statistics.median(peak.samples) / 1e9, "matmul_gflops_max": max(peak.samples) / 1e9}
    if args.json:
        json.dump({"machine": machine, "rows": rows}, sys.stdout, indent=2)
        print()
        return
    table = Table(title=f"CoNN runtime, inputs per second (medians of {args.repeats}; {args.inputs} inputs of random length "
                        f"1..L; model.apply on {args.naive_inputs})", title_justify="left")
    columns = ("program", "L", "params", "MFLOP /input", "model.apply loop /s", "runtime e2e /s", "forward only /s",
               "FLOP bound /s", "e2e / forward", "forward / bound", "e2e / apply", "numpy e2e /s", "1 input (auto) ms",
               "apply agrees", "numpy == jax")
    for column in columns:
        table.add_column(column, justify="right")
    for r in rows:
        table.add_row(r["program"], str(r["max_seq_len"]), f"{r['parameters']:,}", f"{r['mflop_per_input']:.2f}",
                      f"{r['apply_per_s']:.1f}", f"{r['e2e_per_s']:,.0f}", f"{r['forward_per_s']:,.0f}",
                      f"{r['flop_bound_per_s']:,.0f}", f"{100 * r['e2e_of_forward']:.0f}%", f"{100 * r['forward_of_bound']:.0f}%",
                      f"{r['e2e_over_apply']:,.0f}x", f"{r['numpy_e2e_per_s']:,.0f}", f"{r['single_input_ms']:.2f}",
                      r["apply_agrees"], "yes" if r["numpy_equals_jax"] else "NO")
    console = Console(width=220)
    console.print(table)
    console.print(f"CPU: {machine['cpus']} cores ({machine['processor']}); float32 1024x1024 matmul, better of numpy and XLA, "
                  f"sampled between timings: median {machine['matmul_gflops_median']:.0f} GFLOP/s, best "
                  f"{machine['matmul_gflops_max']:.0f} GFLOP/s (the FLOP bound uses each row's own median). Load average "
                  f"{machine['load_before']:.1f} before, {machine['load_after']:.1f} after: other jobs share the cores, "
                  "rates are noisy.", highlight=False)
    console.print("e2e = encode + forward + decode (jax backend); forward only = the jitted forward on pre-encoded ids; "
                  "numpy e2e = the jax-free backend (first 1024 inputs, scaled); 1 input = run() of one input (auto: numpy).",
                  highlight=False)


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
