"""Sizes of our CoNNs beside the paper's shipped ones (Neural Comprehension, Weng et al.: the
CoNN_Parity / CoNN_Reverse / CoNN_Last_Letter / CoNN_Copy models on Hugging Face).

    python benchmarks/sizes.py [--lengths 10 16 40] [--json]

What is compiled: OUR trusted programs in rule_examples/reference/ (parity, reverse, last_token,
copy), never a model-written program.py, with the library's compiler settings (mlp_exactness
scaled to the length). Which length: the paper's repository does not state the shipped models'
max length (it lives in each model's Hugging Face config, max_position_embeddings, which this
machine cannot reach); its AutoCoNN code compiles with max_seq_len=10, our library compiles for 16,
and 40 is where our reverse reaches the paper's order of size. All three are printed, each with
the library's vocabulary (a-e letters, 0/1 bits) and with the 26 lowercase letters the paper's
letter tasks use (for parity: 0/1 either way). Parameters count every weight tracr creates
(embeddings, attention, MLPs; not the unembedding, which tracr keeps outside its params) —
the figure conn.json records.
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAPER = {"parity": ("Parity", 2.2e6), "reverse": ("Reverse", 4.3e6), "last_token": ("Last Letter", 62.6e3),
         "copy": ("Copy", 8.8e3)}
LETTERS = list(string.ascii_lowercase)


def load_reference(name: str):
    """Our own trusted program (rule_examples/reference), not the library's program.py."""
    path = REPO / "rule_examples" / "reference" / f"{name}.py"
    namespace: dict = {"__name__": f"reference_{name}"}
    exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), namespace)  # noqa: S102 - trusted file of ours
    return namespace["program"]


def library_vocab(name: str) -> list:
    meta = json.loads((REPO / "tests" / "fixtures" / "library" / name / "conn.json").read_text(encoding="utf-8"))
    return meta["vocab"]


def measure(name: str, vocab: list, length: int) -> dict:
    from autoconn.conn.compile import compile_program, default_settings, model_size

    started = time.perf_counter()
    model = compile_program(load_reference(name), vocab, default_settings(length))
    size = model_size(model)
    return {"conn": name, "vocab": len(vocab), "max_seq_len": length, "layers": size.layers, "heads": size.heads,
            "residual_width": size.residual_width, "mlp_hidden": size.mlp_hidden, "parameters": size.parameters,
            "compile_seconds": round(time.perf_counter() - started, 1)}


def human(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else (f"{n / 1e3:.1f}K" if n >= 1e3 else str(int(n)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[10, 16, 40])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        from autoconn.sandbox import fastinit

        fastinit.install()  # same weights, no eager haiku init (tests/sandbox/test_fastinit.py)
    except Exception:  # noqa: BLE001 - only a speed-up
        pass
    rows = []
    for name, (paper_name, paper_params) in PAPER.items():
        vocabs = {"library": library_vocab(name)}
        if name != "parity":
            vocabs["a-z"] = LETTERS
        for label, vocab in vocabs.items():
            for length in args.lengths:
                row = measure(name, vocab, length) | {"vocab_set": label, "paper": paper_name, "paper_parameters": paper_params}
                row["ratio_to_paper"] = round(row["parameters"] / paper_params, 3)
                rows.append(row)
                if not args.json:
                    print(f"{paper_name:<12} vocab {label:<8}({row['vocab']:>2}) L={length:<3} layers {row['layers']} "
                          f"width {row['residual_width']:>4} mlp {row['mlp_hidden']:>5}  ours {human(row['parameters']):>8}  "
                          f"paper {human(paper_params):>6}  ratio {row['ratio_to_paper']:>6}  ({row['compile_seconds']} s)",
                          flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
