"""Neural Comprehension, measured: the demo LM alone against the demo LM fused with the library's CoNNs.

    python benchmarks/fusion.py [--per-length 50] [--seed 0] [--rules parity reverse]
                                [--plot benchmarks/fusion.png] [--json]

For each rule the demo LM was trained on (operand lengths 1-8 by default), and for every
operand length from 2 to the CoNN's max_seq_len, draws N random operands (fixed seed) and
decodes the prompt ``rule(operand)=`` greedily with the fusion core's decoder, with and
without the CoNNs. A completion is right when it equals the reference answer and then ends
(end_of_text). The reference answer is computed independently of the CoNN whenever the
entry's task is one of rule_examples/ (its plain-Python rule in rule_examples/generate.py):
the CoNNs were verified only up to length 8, so lengths 9-16 test them as well as the hand-off
(gate, CoNN answer, the LM ending the line). Other entries fall back to the CoNN's own outputs
and the report says so (`reference`).

Prints a length x rule table (LM alone | fused) on stdout, or one JSON object with --json,
and writes a PNG of accuracy against length with the trained lengths shaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from autoconn.conn.artifact import Library
from autoconn.fusion.conn_tool import load_fused_conns
from autoconn.fusion.demo_lm import DEFAULT_DIR, DemoLM, corpus, load_demo_lm, stale_rules
from autoconn.fusion.metadata import spec_of_meta
from autoconn.fusion.token_level import FusionResult, fuse_decode

REPO = Path(__file__).resolve().parent.parent
EXTRA_CHARS = 4
GENERATOR = REPO / "rule_examples" / "generate.py"


def python_rules() -> dict[str, tuple[Callable[[list[Any]], Any], bool]]:
    """task name -> (plain-Python rule, broadcast?) from the suite's generator (an oracle that shares no code with the CoNNs)."""
    spec = importlib.util.spec_from_file_location("rule_examples_generate", GENERATOR)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: (rule, broadcast) for name, _tier, _desc, _vocab, _sampler, rule, broadcast in module.TASKS}


def reference_answers(entry: Any, examples: Sequence[Any], rules: dict[str, Any]) -> tuple[list[str], str]:
    """The expected answer text of each example and where it came from ("python rule" or "conn")."""
    task_name = (entry.meta.get("task") or {}).get("name", entry.name)
    if task_name not in rules:
        return [e.answer for e in examples], "conn"
    rule, broadcast = rules[task_name]
    spec = spec_of_meta(entry.name, entry.meta)
    answers = []
    for example in examples:
        value = rule(list(example.operand))
        answers.append(spec.render_output([value] * len(example.operand) if broadcast else list(value)))
    return answers, "python rule"  # room past the answer, so a completion that does not stop shows what the LM wrote instead


def right(result: FusionResult, answer: str) -> bool:
    return result.stop == "end_of_text" and result.completion == answer


def measure_rule(lm: DemoLM, library: Library, rule: str, conns: Sequence[Any], per_length: int,
                 seed: int, min_length: int, oracles: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per operand length: accuracy of the LM alone and fused, and why fused rows failed."""
    entry = library.get(rule)
    rng = random.Random(f"{seed}:{rule}")
    vocab = list(entry.meta["vocab"])
    rows = []
    for length in range(min_length, int(entry.meta["max_seq_len"]) + 1):
        examples = corpus.examples_for(entry, corpus.sample_operands(vocab, [length], per_length, rng))
        answers, reference = reference_answers(entry, examples, oracles)
        prompts = [e.prompt for e in examples]
        budget = max(len(e.answer) for e in examples) + EXTRA_CHARS
        alone = fuse_decode(lm, conns, prompts, max_new_chars=budget, use_conns=False)
        fused = fuse_decode(lm, conns, prompts, max_new_chars=budget, use_conns=True)
        rows.append({
            "rule": rule, "length": length, "examples": len(examples), "reference": reference,
            "lm_alone": sum(right(r, a) for r, a in zip(alone, answers)) / len(examples),
            "fused": sum(right(r, a) for r, a in zip(fused, answers)) / len(examples),
            "conn_matches_reference": sum(e.answer == a for e, a in zip(examples, answers)) / len(examples),
            "fused_conn_fired": sum(bool(r.spans) for r in fused) / len(examples),
            "fused_no_stop_after_answer": sum(r.completion.startswith(a) and not right(r, a)
                                              for r, a in zip(fused, answers)) / len(examples),
            "sample_failure": next(({"prompt": e.prompt, "expected": a, "lm_alone": x.completion, "fused": f.completion}
                                    for x, f, e, a in zip(alone, fused, examples, answers)
                                    if not (right(x, a) and right(f, a))), None),
        })
    return rows


def print_table(rows: list[dict[str, Any]], rules: Sequence[str], trained: Sequence[int], console: Console) -> None:
    table = Table(title="Exact match, demo LM alone vs fused with CoNNs", caption="* = a length the LM was trained on")
    table.add_column("length", justify="right")
    for rule in rules:
        table.add_column(f"{rule}: LM", justify="right")
        table.add_column(f"{rule}: fused", justify="right")
    lengths = sorted({r["length"] for r in rows})
    by_key = {(r["rule"], r["length"]): r for r in rows}
    for length in lengths:
        cells = [f"{length}{'*' if length in trained else ' '}"]
        for rule in rules:
            row = by_key.get((rule, length))
            cells += [f"{row['lm_alone']:.0%}", f"{row['fused']:.0%}"] if row else ["", ""]
        table.add_row(*cells)
    console.print(table)


def plot(rows: list[dict[str, Any]], rules: Sequence[str], trained: Sequence[int], path: Path, per_length: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rules), figsize=(5 * len(rules), 3.8), sharey=True, squeeze=False)
    for ax, rule in zip(axes[0], rules):
        mine = sorted((r for r in rows if r["rule"] == rule), key=lambda r: r["length"])
        lengths = [r["length"] for r in mine]
        ax.axvspan(min(trained) - 0.5, max(trained) + 0.5, color="0.9", label="trained lengths")
        ax.plot(lengths, [r["fused"] for r in mine], "o-", color="tab:blue", label="LM + CoNN (fused)")
        ax.plot(lengths, [r["lm_alone"] for r in mine], "s--", color="tab:red", label="LM alone")
        ax.set_title(rule)
        ax.set_xlabel("operand length")
        ax.set_xlim(min(lengths) - 0.5, max(lengths) + 0.5)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"exact match ({per_length} examples per length)")
    axes[0][0].legend(loc="lower left", fontsize=8)
    fig.suptitle(f"Demo char LM (trained on operand lengths {min(trained)}-{max(trained)}) alone vs fused with the library CoNNs",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-length", type=int, default=50, help="examples per rule and length")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rules", nargs="+", help="library CoNNs to measure (default: the ones the demo LM was trained on)")
    parser.add_argument("--min-length", type=int, default=2)
    parser.add_argument("--library", type=Path, default=REPO / "tests" / "fixtures" / "library",
                        help="library holding the rules (default: the tracked fixture library)")
    parser.add_argument("--lm", type=Path, default=DEFAULT_DIR, help="folder of the demo LM's weights.npz + demo_lm.json")
    parser.add_argument("--plot", type=Path, default=REPO / "benchmarks" / "fusion.png", help="where to write the PNG")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args(argv)
    err = Console(stderr=True)
    lm = load_demo_lm(args.lm)
    settings = lm.record["settings"]
    rules = args.rules or list(settings["rules"])
    trained = list(settings["lengths"])
    library = Library(args.library)
    stale = stale_rules(lm, library)
    if stale:
        err.print(f"[yellow]warning:[/] the fusion text format of {', '.join(stale)} changed since the demo LM was trained; "
                  f"retrain it with `python -m autoconn.fusion.demo_lm train`")
    conns = load_fused_conns(rules, library)
    oracles = python_rules()
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    with err.status("decoding") as status:
        for rule in rules:
            status.update(f"decoding {rule}: lengths {args.min_length}..{library.get(rule).meta['max_seq_len']}, "
                          f"{args.per_length} each, LM alone and fused")
            rows += measure_rule(lm, library, rule, conns, args.per_length, args.seed, args.min_length, oracles)
    seconds = time.perf_counter() - start
    plot(rows, rules, trained, args.plot, args.per_length)
    report = {"rules": rules, "trained_lengths": trained, "per_length": args.per_length, "seed": args.seed,
              "lm": {"parameters": lm.parameters, "weights_sha256": lm.record.get("weights_sha256")},
              "seconds": round(seconds, 1), "plot": str(args.plot), "rows": rows}
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    else:
        print_table(rows, rules, trained, Console())
        sources = {r["rule"]: r["reference"] for r in rows}
        agree = min((r["conn_matches_reference"] for r in rows if r["reference"] != "conn"), default=None)
        print(f"plot: {args.plot}   ({seconds:.0f} s; reference answers: "
              + ", ".join(f"{rule} from its {source}" for rule, source in sources.items())
              + (f"; the CoNNs' answers agree with the python rules on at least {agree:.0%} of the examples at each length)"
                 if agree is not None else ")"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
