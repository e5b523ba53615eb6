"""Wall time of one bench of 12 tasks, run three ways, side by side with the speed-up.

    python benchmarks/bench_scale.py [--sandbox process|docker|auto] [--oracles] [--json]

Modes (each is one `autoconn bench` command, timed from start to exit, start-up included):
  1 worker   --workers 1: one process, one warm sandbox, the tasks one after another
  2 workers  --workers 2: a local process pool, a warm sandbox per worker
  ray        --ray --workers 2: a local Ray instance with 2 CPUs, one Ray task per task
The 12 tasks are rule_examples/ tasks the offline search solves in a few seconds each; every
mode must verify the same set (the script says so when they differ). Speed-up = wall time of
1 worker / wall time of the mode. Needs the ray extra for the third mode (skipped without it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
TASKS = ("copy", "length", "reverse", "first_token", "last_token", "index", "is_a", "uppercase", "count_a",
         "contains_a", "dist_to_end", "shift_right")
MODES = {"1 worker": ["--workers", "1"], "2 workers": ["--workers", "2"], "ray (local, 2 CPUs)": ["--ray", "--workers", "2"]}


def run_mode(flags: list[str], tasks: Path, sandbox: str, oracles: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as cwd:
        args = [sys.executable, "-m", "autoconn.cli", "bench", str(tasks), "--inducer", "search", "--sandbox", sandbox,
                "--json", *flags]
        args += ["--oracles", str(REPO / "rule_examples" / "generate.py")] if oracles else ["--oracles", "none"]
        started = time.monotonic()
        result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, env=dict(os.environ), timeout=3600)
        wall = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(flags)} failed:\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout)
    return {"wall_seconds": round(wall, 1), "verified": sorted(r["task"] for r in report["tasks"] if r["solved"]),
            "task_seconds": round(sum(r["seconds"] for r in report["tasks"]), 1), "runner": report["runner"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sandbox", default="process")
    parser.add_argument("--oracles", action="store_true", help="prove each CoNN with its rule from rule_examples/generate.py")
    parser.add_argument("--json", action="store_true")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-scale-tasks-") as folder:
        tasks = Path(folder)
        for name in TASKS:
            shutil.copy(REPO / "rule_examples" / f"{name}.jsonl", tasks / f"{name}.jsonl")
        results: dict[str, Any] = {}
        for mode, flags in MODES.items():
            if "--ray" in flags and importlib.util.find_spec("ray") is None:
                print(f"{mode}: skipped (pip install -e '.[ray]')", file=sys.stderr)
                continue
            print(f"{mode}...", file=sys.stderr, flush=True)
            results[mode] = run_mode(flags, tasks, options.sandbox, options.oracles)
    base = results["1 worker"]["wall_seconds"]
    for figures in results.values():
        figures["speedup"] = round(base / figures["wall_seconds"], 2)
    if options.json:
        print(json.dumps({"tasks": list(TASKS), "cores": len(os.sched_getaffinity(0)), "modes": results}, indent=2))
        return
    print(f"{len(TASKS)} tasks, search inducer, --sandbox {options.sandbox}, {len(os.sched_getaffinity(0))} cores")
    print(f"{'mode':<22}{'wall s':>8}{'speed-up':>10}{'sum of task s':>15}{'verified':>10}")
    for mode, figures in results.items():
        print(f"{mode:<22}{figures['wall_seconds']:>8.1f}{figures['speedup']:>9.2f}x{figures['task_seconds']:>15.1f}"
              f"{len(figures['verified']):>7}/{len(TASKS)}")
    sets = {tuple(f["verified"]) for f in results.values()}
    print("every mode verified the same set" if len(sets) == 1 else f"the verified sets differ: {results}")


if __name__ == "__main__":
    main()
