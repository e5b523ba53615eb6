"""`autoconn bench DIR`: what a batch of tasks is (one job per task file) and what its report says
(one row per task, the success rate per tier). autoconn.parallel runs the jobs.

Each worker keeps one warm sandbox for all its tasks, so the figures measure induction rather
than worker start-up; the library is frozen for the LLM's demonstrations (autoconn.parallel.batch).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autoconn.oracle import OracleSpec, has_rule
from autoconn.parallel.jobs import TaskJob

TIERS = ("easy", "medium", "hard")


@dataclass
class BenchRow:
    task: str
    tier: str
    solved: bool
    seconds: float
    attempts: int
    layers: int | None
    parameters: int | None
    heldout_accuracy: float | None
    reason: str | None
    verified_length: int | None = None  # inputs up to this length are proven
    compiled_length: int | None = None
    verified_how: str | None = None  # examples | oracle
    rounds: int = 0  # inducer calls (LLM rounds)
    calls: int = 0  # LLM API calls
    tokens: int = 0  # LLM prompt + completion tokens
    key: str = ""  # the task file's stem (the bench report's key)
    worker: str = ""  # host:pid of the process that ran it
    retries: int = 0  # times it was started again after its worker died
    registered: str | None = None  # the registered program.py
    not_registered: str | None = None  # why a verified CoNN was not registered (e.g. the name exists)
    run_id: str | None = None
    statement: str | None = None


def read_tiers(directory: Path) -> dict[str, str]:
    """Tier of each task from the folder's README table (a row naming `<task>.jsonl` and a tier)."""
    readme = directory / "README.md"
    tiers: dict[str, str] = {}
    if not readme.exists():
        return tiers
    for line in readme.read_text(encoding="utf-8").splitlines():
        if not line.lstrip().startswith("|"):
            continue
        cells = [c.strip(" `*") for c in line.strip().strip("|").split("|")]
        names = [m.group(1) for c in cells for m in [re.search(r"([\w.-]+)\.jsonl", c)] if m]
        tier = next((c.lower() for c in cells if c.lower() in TIERS), None)
        if names and tier:
            tiers[names[0]] = tier
    return tiers


def task_files(directory: Path, only: list[str] | None = None) -> list[Path]:
    files = sorted(directory.glob("*.jsonl"))
    if only:
        wanted = set(only)
        files = [f for f in files if f.stem in wanted]
    return files


def oracle_for(oracle_file: Path | None, stem: str) -> str | None:
    """FILE.py:stem when the oracle file defines a function named like the task (else None)."""
    if oracle_file is None:
        return None
    spec = OracleSpec(str(oracle_file), stem)
    return str(spec) if stem.isidentifier() and has_rule(spec) else None


def plan_jobs(files: list[Path], *, tiers: dict[str, str], inducer: str, sandbox: str, budget: float, max_attempts: int,
              oracle_file: Path | None = None, oracle_func: str | None = None, sealed: bool = True,
              llm_options: dict[str, Any] | None = None, runs_dir: Path | None = None) -> list[TaskJob]:
    """One self-contained job per task file (its text travels with it). The oracle is
    `oracle_file:oracle_func` when a function is named, else the file's function named like the
    task (when it has one). A file that cannot be read becomes a job whose worker reports why."""
    jobs = []
    oracle_text = oracle_file.read_text(encoding="utf-8") if oracle_file else None
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""  # the worker reads the file itself and reports what is wrong with it
        func = oracle_func or (path.stem if oracle_for(oracle_file, path.stem) else None)
        jobs.append(TaskJob(key=path.stem, tier=tiers.get(path.stem, "?"), task_file=str(path), task_text=text,
                            inducer=inducer, sandbox=sandbox, budget=budget, max_attempts=max_attempts,
                            oracle_file=str(oracle_file) if oracle_file and func else None, oracle_func=func,
                            oracle_text=oracle_text if func else None, sealed=sealed, llm=dict(llm_options or {}),
                            runs_dir=str(runs_dir) if runs_dir else None))
    return jobs


def usage_columns(usage: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Rounds summed over inducers; calls and tokens are the LLM's (zero for the search)."""
    return {"rounds": int(sum(u.get("rounds", 0) for u in usage.values())),
            "calls": int(sum(u.get("calls", 0) for u in usage.values())),
            "tokens": int(sum(u.get("tokens", 0) for u in usage.values()))}


def rates(rows: list[BenchRow]) -> dict[str, Any]:
    """Success rate overall and per tier, and the median seconds of the solved tasks."""
    def rate(subset: list[BenchRow]) -> dict[str, Any]:
        solved = sum(r.solved for r in subset)
        return {"solved": solved, "total": len(subset), "rate": solved / len(subset) if subset else 0.0}

    by_tier = {tier: rate([r for r in rows if r.tier == tier]) for tier in sorted({r.tier for r in rows})}
    solved_seconds = [r.seconds for r in rows if r.solved]
    every_length = [r.task for r in rows if r.solved and r.verified_length is not None and r.verified_length == r.compiled_length]
    return {"overall": rate(rows), "tiers": by_tier,
            "median_seconds_solved": statistics.median(solved_seconds) if solved_seconds else None,
            "proven_every_length": len(every_length),
            "not_proven_every_length": [r.task for r in rows if r.solved and r.task not in every_length]}


def to_json(rows: list[BenchRow]) -> dict[str, Any]:
    return {"tasks": [asdict(r) for r in rows], **rates(rows)}
