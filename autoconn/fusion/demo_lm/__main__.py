"""``python -m autoconn.fusion.demo_lm train [--steps N] [--out DIR]``: retrain the demo LM and
rewrite its committed weights (progress on stderr, a summary on stdout)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from autoconn.fusion.demo_lm import DEFAULT_DIR, TrainSettings, save_demo_lm, train_demo_lm


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autoconn.fusion.demo_lm")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train the demo LM and write weights.npz + demo_lm.json")
    defaults = TrainSettings()
    train.add_argument("--steps", type=int, default=defaults.steps)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--rules", nargs="+", default=list(defaults.rules), help="library CoNNs whose text to train on")
    train.add_argument("--out", type=Path, default=DEFAULT_DIR, help=f"where to write the files (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    settings = TrainSettings(rules=tuple(args.rules), steps=args.steps, seed=args.seed)
    lm = train_demo_lm(settings)
    meta = save_demo_lm(lm, args.out)
    summary = {k: lm.record[k] for k in ("parameters", "training", "accuracy_at_trained_lengths", "weights_sha256")}
    print(json.dumps(dict(summary, written=str(meta)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
