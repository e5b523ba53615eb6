"""Inputs per second: tracr's own model.apply loop against the batched, jitted runtime.

    python benchmarks/runtime.py [--inputs 1000] [--naive-inputs 1000] [--json]

Prints both rates and their ratio side by side, from one run, for reverse at max_seq_len 10
and hist. Outputs of both paths are compared too (a fast wrong answer is no answer).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any

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


CASES = {"reverse": (reverse_program, list("abcde"), 10), "hist": (hist_program, list("abcde"), 10)}


def measure(name: str, inputs_count: int, naive_count: int, progress: Progress) -> dict[str, Any]:
    build, vocab, max_seq_len = CASES[name]
    rng = random.Random(0)
    inputs = [[rng.choice(vocab) for _ in range(rng.randint(1, max_seq_len))] for _ in range(inputs_count)]
    model = compile_program(build(), vocab, default_settings(max_seq_len))
    runtime = ConnRuntime.from_model(model, max_seq_len)
    runtime.run(inputs[:1])  # trace the small bucket once, as a long-lived runtime would have
    runtime.run(inputs[:600])  # and the large one
    start = time.perf_counter()
    batched = runtime.run(inputs)
    batched_seconds = time.perf_counter() - start
    task = progress.add_task(f"{name}: model.apply loop", total=naive_count)
    start = time.perf_counter()
    naive = []
    for tokens in inputs[:naive_count]:
        naive.append(model.apply(["BOS"] + tokens).decoded[1:])
        progress.advance(task)
    naive_seconds = time.perf_counter() - start
    agree = sum(a == b for a, b in zip(naive, batched))
    batched_rate, naive_rate = inputs_count / batched_seconds, naive_count / naive_seconds
    return {"program": name, "max_seq_len": max_seq_len, "naive_inputs": naive_count, "naive_per_s": naive_rate,
            "batched_inputs": inputs_count, "batched_per_s": batched_rate, "ratio": batched_rate / naive_rate,
            "outputs_agree": f"{agree}/{naive_count}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1000, help="inputs for the batched runtime")
    parser.add_argument("--naive-inputs", type=int, default=1000, help="inputs for the model.apply loop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    err = Console(stderr=True)
    with Progress(console=err, transient=True) as progress:
        rows = [measure(name, args.inputs, args.naive_inputs, progress) for name in CASES]
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return
    table = Table(title="CoNN runtime: inputs per second (one run, 2-core CPU)")
    for column in ("program", "max_seq_len", "model.apply loop /s", "batched runtime /s", "ratio", "outputs agree"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["program"], str(row["max_seq_len"]), f"{row['naive_per_s']:.2f}", f"{row['batched_per_s']:,.0f}",
                      f"{row['ratio']:,.0f}x", row["outputs_agree"])
    Console().print(table)


if __name__ == "__main__":
    main()
