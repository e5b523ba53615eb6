"""Wall time of `autoconn run`, one input and a file of inputs, warm and cold, medians over runs.

    python benchmarks/cli.py [--runs 5] [--conn sort] [--file-inputs 1000] [--json]

Each figure is a fresh process, timed from spawn to exit. Warm: one untimed run first, so the
files it reads are in the page cache. Cold: before every timed run, the files the command
reads (Python modules and their .pyc, shared libraries, the CoNN's files) are dropped from the
page cache with posix_fadvise(DONTNEED) - pages other processes have mapped stay, so this is as
cold as a shared machine allows without root. For comparison: `python -c pass`, `python -c
"import jax"` (what any jax-based path pays before its first forward pass), and the same run
through the jitted backend.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]


def autoconn_command() -> list[str]:
    script = Path(sys.executable).with_name("autoconn")
    if script.exists():
        return [sys.executable, str(script)]  # the console script, under this interpreter
    return [sys.executable, "-c", "import sys; from autoconn.cli import app; sys.argv[0] = 'autoconn'; app()"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


def files_read(command: list[str]) -> list[str]:
    """Every file a run of `command` has open or mapped at exit, plus its modules' sources and .pyc."""
    probe = ("import atexit, sys, os, importlib.util\n"
             "def dump():\n"
             "    paths = set()\n"
             "    for m in list(sys.modules.values()):\n"
             "        f = getattr(m, '__file__', None)\n"
             "        if f:\n"
             "            paths.add(f)\n"
             "            try: paths.add(importlib.util.cache_from_source(f))\n"
             "            except Exception: pass\n"
             "    for line in open('/proc/self/maps'):\n"
             "        parts = line.split()\n"
             "        if len(parts) >= 6 and parts[5].startswith('/'): paths.add(parts[5])\n"
             "    with open(os.environ['AUTOCONN_PROBE_OUT'], 'w') as out: out.write('\\n'.join(sorted(paths)))\n"
             "atexit.register(dump)\n"
             f"sys.argv = {command[1:]!r}\n"
             "exec(compile(open(sys.argv[0]).read(), sys.argv[0], 'exec'), {'__name__': '__main__'})\n")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "files.txt"
        script = command[1] if len(command) > 1 and command[1].endswith("autoconn") else None
        if script is None:
            return []
        subprocess.run([sys.executable, "-c", probe], env={**env(), "AUTOCONN_PROBE_OUT": str(out)},
                       capture_output=True, text=True, timeout=300)
        return [p for p in out.read_text().splitlines() if os.path.isfile(p)] if out.exists() else []


def evict(paths: list[str]) -> None:
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed(command: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=env(), input=stdin, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return seconds


def series(command: list[str], runs: int, cold_files: list[str] | None = None, stdin: str | None = None) -> dict[str, Any]:
    if cold_files is None:
        timed(command, stdin)  # warm the page cache
    times = []
    for _ in range(runs):
        if cold_files is not None:
            evict(cold_files)
        times.append(timed(command, stdin))
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "runs": times}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--conn", default="sort", help="a CoNN in --out (default sort)")
    parser.add_argument("--out", default=str(REPO / "tests" / "fixtures" / "library"),
                        help="library (default: the tracked fixture library)")
    parser.add_argument("--file-inputs", type=int, default=1000, help="lines in the --input-file case")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from autoconn.conn.artifact import Library

    entry = Library(args.out).get(args.conn)
    vocab, max_len = entry.spec.vocab, entry.spec.max_seq_len
    rng = random.Random(0)
    one = [str(rng.choice(vocab)) for _ in range(5)]
    lines = "".join(" ".join(str(rng.choice(vocab)) for _ in range(rng.randint(1, max_len))) + "\n"
                    for _ in range(args.file_inputs))
    cli = autoconn_command()
    run_one = [*cli, "run", args.conn, *one, "--out", args.out]
    run_file = [*cli, "run", args.conn, "--input-file", "-", "--json", "--out", args.out]
    tokens = [parse(t, vocab) for t in one]
    jax_one = [sys.executable, "-c", "from autoconn.conn.artifact import Library; "
               f"print(Library({args.out!r}).get({args.conn!r}).runtime().run([{tokens!r}], backend='jax'))"]
    err = Console(stderr=True)
    err.print("finding the files `autoconn run` reads ...", highlight=False)
    cold_files = files_read(run_one) + [str(p) for p in Path(entry.path).iterdir()] + [str(Path(args.out) / "index.json")]
    rows = []
    cases = [
        ("python -c pass", [sys.executable, "-c", "pass"], None, False),
        ("python -c 'import jax'", [sys.executable, "-c", "import jax"], None, False),
        (f"autoconn run {args.conn} {' '.join(one)}", run_one, None, True),
        (f"autoconn run {args.conn} --input-file ({args.file_inputs} lines) --json", run_file, lines, True),
        ("same one input via the jitted backend (python -c)", jax_one, None, False),
    ]
    for label, command, stdin, cold_too in cases:
        err.print(f"timing {label} ...", highlight=False)
        row = {"command": label, "warm": series(command, args.runs, None, stdin)}
        if cold_too:
            row["cold"] = series(command, args.runs, cold_files, stdin)
        rows.append(row)
    load = os.getloadavg()[0]
    if args.json:
        json.dump({"rows": rows, "cpus": os.cpu_count(), "load": load, "evicted_files": len(cold_files)}, sys.stdout, indent=2)
        print()
        return
    table = Table(title=f"Wall time of a fresh process, median of {args.runs} runs (min-max)", title_justify="left")
    for column in ("command", "warm", "cold (page cache dropped)"):
        table.add_column(column, justify="right" if column != "command" else "left")
    for row in rows:
        cells = [f"{row[k]['median_s']:.2f} s ({row[k]['min_s']:.2f}-{row[k]['max_s']:.2f})" if k in row else "-"
                 for k in ("warm", "cold")]
        table.add_row(row["command"], *cells)
    console = Console(width=160)
    console.print(table)
    console.print(f"{os.cpu_count()} cores, load average {load:.1f} at the end (other jobs share this machine: times are noisy); "
                  f"cold = {len(cold_files)} files dropped from the page cache before each run.", highlight=False)


def parse(text: str, vocab: list[Any]) -> Any:
    for token in vocab:
        if str(token) == text:
            return token
    return text


if __name__ == "__main__":
    main()
