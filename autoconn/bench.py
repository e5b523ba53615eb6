"""`autoconn bench DIR`: induce every task in a folder and measure the success rate.

Runs go to a scratch library (the user's generated_conns/ is not touched unless asked) and
share one warm sandbox, so the figures measure induction rather than worker start-up.
"""

from __future__ import annotations

import re
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from autoconn.api import RunRequest, prepare_run, start_run
from autoconn.conn.artifact import LibraryError
from autoconn.oracle import OracleError, OracleSpec, has_rule
from autoconn.task import TaskError

TIERS = ("easy", "medium", "hard")


@dataclass
class BenchRow:
    task: str
    tier: str
    solved: bool
    seconds: float
    attempts: int
    layers: Optional[int]
    parameters: Optional[int]
    heldout_accuracy: Optional[float]
    reason: Optional[str]
    verified_length: Optional[int] = None  # inputs up to this length are proven
    compiled_length: Optional[int] = None
    verified_how: Optional[str] = None  # examples | oracle
    rounds: int = 0  # inducer calls (LLM rounds)
    calls: int = 0  # LLM API calls
    tokens: int = 0  # LLM prompt + completion tokens


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


def task_files(directory: Path, only: Optional[list[str]] = None) -> list[Path]:
    files = sorted(directory.glob("*.jsonl"))
    if only:
        wanted = set(only)
        files = [f for f in files if f.stem in wanted]
    return files


def oracle_for(oracle_file: Optional[Path], stem: str) -> Optional[str]:
    """FILE.py:stem when the oracle file defines a function named like the task (else None)."""
    if oracle_file is None:
        return None
    spec = OracleSpec(str(oracle_file), stem)
    return str(spec) if stem.isidentifier() and has_rule(spec) else None


def failed_row(path: Path, tier: str, why: str) -> BenchRow:
    return BenchRow(path.stem, tier, False, 0.0, 0, None, None, None, why)


def run_bench(directory: Path, *, inducer: str, open_sandbox: Callable[[], Any], budget: float, max_attempts: int,
              only: Optional[list[str]] = None, on_task: Callable[[str, Optional[BenchRow]], None] = lambda n, r: None,
              workdir: Optional[Path] = None, llm_options: Optional[dict[str, Any]] = None,
              oracle_file: Optional[Path] = None) -> list[BenchRow]:
    """Each task against the same frozen library: registrations go to a scratch library, so no
    task's CoNN becomes a demonstration for the next one. A bad task file (or oracle) is that
    task's failure, with the reason; the others still run."""
    tiers = read_tiers(directory)
    scratch = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="autoconn-bench-"))
    rows: list[BenchRow] = []
    sandbox = open_sandbox()
    try:
        for path in task_files(directory, only):
            on_task(path.stem, None)
            tier = tiers.get(path.stem, "?")
            request = RunRequest(task_path=str(path), library_dir=str(scratch / "conns"), runs_dir=str(scratch / "runs"),
                                 inducer=inducer, budget_seconds=budget, max_attempts=max_attempts, force=True,
                                 oracle=oracle_for(oracle_file, path.stem), llm=dict(llm_options or {}))
            try:
                prepared = prepare_run(request)
            except (TaskError, OracleError) as error:
                rows.append(failed_row(path, tier, f"bad task file: {error}"))
                on_task(path.stem, rows[-1])
                continue
            try:
                summary = start_run(prepared, sandbox=sandbox).summary()
            except (TaskError, OracleError, LibraryError) as error:
                rows.append(failed_row(path, tier, f"{type(error).__name__}: {error}"))
                on_task(path.stem, rows[-1])
                continue
            task = prepared.task
            rows.append(BenchRow(task=task.name, tier=tier, solved=summary["status"] == "verified",
                                 seconds=float(summary["seconds"]), attempts=int(summary["attempts"]),
                                 layers=summary["layers"], parameters=summary["parameters"],
                                 heldout_accuracy=summary["heldout_accuracy"], reason=summary["reason"],
                                 verified_length=summary["verified_length"], compiled_length=summary["compiled_max_seq_len"],
                                 verified_how=summary["verified_how"], **usage_columns(summary["inducer_usage"])))
            on_task(path.stem, rows[-1])
    finally:
        sandbox.close()
    return rows


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
