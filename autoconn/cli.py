"""Command line: parse, call the library, print. Results on stdout, progress on stderr.

Exit codes (DESIGN.md): 0 success, 1 nothing verified, 2 bad input or usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from autoconn.conn.artifact import Library, LibraryError
from autoconn.task import TaskError


class ClearErrors(TyperGroup):
    """Every known error of a command becomes one clear line and its exit code, never a traceback:
    bad input or usage (task files, names, the library, oracles, fusion specs, an unusable
    sandbox, a full or read-only disk) exits 2."""

    def invoke(self, ctx: Any) -> Any:
        import errno

        try:
            return super().invoke(ctx)
        except usage_error_types() as error:
            fail_usage(str(error))
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EACCES, errno.EPERM, errno.EROFS, errno.EDQUOT):
                raise
            from autoconn.conn.artifact import os_problem

            fail_usage(os_problem(error, "writing"))


app = typer.Typer(cls=ClearErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="AutoCoNN: induce, compile, verify and register compiled transformers (CoNNs).")
sandbox_app = typer.Typer(cls=ClearErrors, add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                          help="The isolation that runs candidate programs.")
app.add_typer(sandbox_app, name="sandbox")

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)  # no 80-column cut in pipes
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MODEL_HELP = "LLM model name at the OpenAI-compatible endpoint (default: $AUTOCONN_MODEL)."
BASE_URL_HELP = "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)."
SAMPLES_HELP = "LLM candidates sampled per round (default 4, or $AUTOCONN_LLM_SAMPLES)."
TEMPERATURE_HELP = ("LLM sampling temperature (default: 0.2 for 1 sample, 0.5 for 2-3, 0.8 for 4 or more; "
                    "or $AUTOCONN_LLM_TEMPERATURE).")
MAX_TOKENS_HELP = "Most tokens the LLM may write per reply (default 4096, or $AUTOCONN_LLM_MAX_TOKENS)."
SANDBOX_HELP = "auto (Docker when the engine and image are there, else a locked-down process), docker, or process."
TRIGGER_HELP = "Fusion: text that closes the operand and calls the CoNN (default ')=')."
OPERAND_START_HELP = "Fusion: text that opens the operand (default NAME followed by '(')."
SPLIT_HELP = "Fusion: how the operand becomes tokens: char (one per character) or space (whitespace-separated)."
POSITIONS_HELP = "Fusion: which outputs the CoNN writes: all, first or last (default all for sequences, first for one value)."
JOIN_HELP = ("Fusion: what separates written outputs: '' or ' ' "
             "(default '' when tokens and outputs are single characters, else ' ').")


# Flags several commands share, declared once.
LibraryDir = Annotated[Path, typer.Option("--out", help="Library folder.")]
Trigger = Annotated[str | None, typer.Option("--trigger", help=TRIGGER_HELP)]
OperandStart = Annotated[str | None, typer.Option("--operand-start", help=OPERAND_START_HELP)]
Split = Annotated[str | None, typer.Option("--split", help=SPLIT_HELP)]
OutputPositions = Annotated[str | None, typer.Option("--output-positions", help=POSITIONS_HELP)]
OutputJoin = Annotated[str | None, typer.Option("--output-join", help=JOIN_HELP)]
Model = Annotated[str | None, typer.Option("--model", help=MODEL_HELP)]
BaseUrl = Annotated[str | None, typer.Option("--base-url", help=BASE_URL_HELP)]
Samples = Annotated[int | None, typer.Option("--samples", min=1, max=16, help=SAMPLES_HELP)]
Temperature = Annotated[float | None, typer.Option("--temperature", min=0.0, max=2.0, help=TEMPERATURE_HELP)]
MaxTokens = Annotated[int | None, typer.Option("--max-tokens", min=1, help=MAX_TOKENS_HELP)]
Sandbox = Annotated[str, typer.Option("--sandbox", help=SANDBOX_HELP)]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def fail_usage(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(EXIT_USAGE)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fusion_overrides(trigger: str | None, operand_start: str | None, split: str | None,
                     output_positions: str | None, output_join: str | None) -> Any:
    """The fusion flags as FusionOverrides (validated against the CoNN later, by build_spec)."""
    from autoconn.fusion.metadata import FusionOverrides

    return FusionOverrides(operand_start=operand_start, trigger=trigger, split=split,
                           output_positions=output_positions, output_join=output_join)


def check_fusion(name: str, task: Any, overrides: dict[str, Any]) -> None:
    """Refuses fusion flags that cannot work for this CoNN, before any work (exit 2)."""
    from autoconn.checking import fusion_for_task
    from autoconn.fusion.metadata import FusionSpecError

    try:
        fusion_for_task(name, task, overrides)
    except FusionSpecError as error:
        fail_usage(f"fusion: {error}")


def parse_token(text: str, vocab: list[Any]) -> Any:
    """`autoconn run` takes tokens as words; map each back to the vocab's own type."""
    for token in vocab:
        if isinstance(token, bool):
            if text.lower() == str(token).lower():
                return token
        elif str(token) == text:
            return token
    return text


ORACLE_HELP = ("Your rule in Python, FILE.py:FUNCTION (tokens in; a list, one value, or None outside its domain out): "
               "the compiled CoNN is checked at every length up to max_seq_len, and its inputs become the sealed test.")
NO_SEALED_HELP = "Use no sealed test set (for a file too small for three sets): the verdict is then NOT held out, and says so."
LIMIT_HELP = "Raise a task-size limit: line-bytes=N, examples=N, output-values=N, max-seq-len=N (repeatable)."
QUIET_HELP = "No progress on stderr."
WORKERS_HELP = "Tasks run at once, each in its own worker process with its own sandbox (default: the cores available)."
RAY_HELP = ("Run the tasks as Ray tasks: 'local' (a local Ray instance with --workers CPUs; also what a bare --ray means), "
            "'auto' (the cluster this machine belongs to) or an address HOST:PORT. Needs the ray extra.")


def parse_limits(items: list[str]) -> Any:
    from autoconn.task import Limits

    try:
        return Limits.parse(items)
    except ValueError as error:
        fail_usage(str(error))


def finite_budget(budget: float) -> None:
    import math

    if not math.isfinite(budget) or budget <= 0:
        fail_usage(f"--budget {budget}: give a finite number of seconds above 0")


@app.command()
def induce(
    task_files: list[Path] | None = typer.Argument(None, metavar="TASK.jsonl...",
                                                   help="Input/output examples of the rule (several files, or a folder: "
                                                        "all induced at once, see --workers)."),
    name: str | None = typer.Option(None, "--name", help="Library name (default: the header's name or the file's stem)."),
    description: str | None = typer.Option(None, "--description", help="What the rule is, in words."),
    inducer: str = typer.Option("auto", "--inducer", help="auto (the LLM when configured, else search), search, llm, or files."),
    candidates: list[Path] = typer.Option([], "--candidate",
                                          help="With --inducer files: a program to try (repeatable, in order)."),
    sandbox: Sandbox = "auto",
    max_seq_len: int | None = typer.Option(None, "--max-seq-len", help="Compiled length (default: twice the longest example)."),
    oracle: str | None = typer.Option(None, "--oracle", metavar="FILE.py:FUNC", help=ORACLE_HELP),
    no_sealed: bool = typer.Option(False, "--no-sealed", help=NO_SEALED_HELP),
    out_dir: LibraryDir = Path("generated_conns"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run logs and checkpoints go."),
    budget: float = typer.Option(300.0, "--budget", help="Seconds of work before giving up."),
    max_attempts: int = typer.Option(40, "--max-attempts", help="Candidates to check before giving up."),
    force: bool = typer.Option(False, "--force", help="Replace an existing CoNN of the same name (also with --resume)."),
    resume: str | None = typer.Option(None, "--resume", help="Continue an interrupted run (its RUN_ID)."),
    limit: list[str] = typer.Option([], "--limit", metavar="NAME=N", help=LIMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
    quiet: bool = typer.Option(False, "--quiet", help=QUIET_HELP),
    trigger: Trigger = None,
    operand_start: OperandStart = None,
    split: Split = None,
    output_positions: OutputPositions = None,
    output_join: OutputJoin = None,
    model: Model = None,
    base_url: BaseUrl = None,
    samples: Samples = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    workers: int | None = typer.Option(None, "--workers", min=1, help="With several task files: " + WORKERS_HELP),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help="With several task files: " + RAY_HELP),
) -> None:
    """Find a RASP program for the examples, compile it, verify it on a sealed test set (and your
    oracle, if given) by running the compiled model, and register it.

    The examples split by a hash of each input into three sets: induction (what the inducer
    sees), validation (held out; its counterexamples may be shown for repair) and sealed (never
    shown to any inducer; only it, and the oracle, give the verdict). The longest length goes
    to validation and sealed both. The CoNN records the length it is proven up to and refuses
    longer inputs unless asked for."""
    from autoconn import api

    if len(task_files or []) > 1 or any(path.is_dir() for path in task_files or []) or workers or ray:
        one_task_only = {"--name": name, "--description": description, "--candidate": candidates, "--max-seq-len": max_seq_len,
                         "--resume": resume, "--limit": limit, "--trigger": trigger, "--operand-start": operand_start,
                         "--split": split, "--output-positions": output_positions, "--output-join": output_join}
        _induce_many(task_files or [], one_task_only, inducer=inducer, sandbox=sandbox, oracle=oracle, sealed=not no_sealed,
                     out_dir=out_dir, runs_dir=runs_dir, budget=budget, max_attempts=max_attempts, force=force, as_json=as_json,
                     quiet=quiet, workers=workers, ray=ray, llm={"model": model, "base_url": base_url, "samples": samples,
                                                                 "temperature": temperature, "max_tokens": max_tokens})
    task_file = task_files[0] if task_files else None
    limits = parse_limits(limit)
    llm = {"model": model, "base_url": base_url, "samples": samples, "temperature": temperature, "max_tokens": max_tokens}
    progress = InductionProgress(err, budget, quiet=quiet)
    if resume:
        with progress:
            outcome = api.resume_run(resume, runs_dir=str(runs_dir), force=force, llm=llm, on_event=progress.event)
    else:
        if task_file is None:
            fail_usage("give a TASK.jsonl file (or --resume RUN_ID)")
        request = api.RunRequest(
            task_path=str(task_file), name=name, description=description, max_seq_len=max_seq_len,
            library_dir=str(out_dir), runs_dir=str(runs_dir), inducer=inducer, candidates=tuple(str(p) for p in candidates),
            sandbox=sandbox, budget_seconds=budget, max_attempts=max_attempts, force=force, oracle=oracle,
            sealed=not no_sealed, limits=limits,
            fusion=fusion_overrides(trigger, operand_start, split, output_positions, output_join).to_json(), llm=llm)
        prepared = api.prepare_run(request, check_oracle_with=_checked_oracle)
        with progress:
            outcome = api.start_run(prepared, on_event=progress.event)
    summary = outcome.summary()
    if as_json:
        emit_json(summary)
    else:
        _print_induce(summary)
    raise typer.Exit(EXIT_OK if summary["status"] == "verified" else EXIT_FAILED)


def _checked_oracle(spec: Any, task: Any) -> Any:
    """The oracle checked against every example of the task, with a status line while it runs."""
    from autoconn.oracle import check_oracle

    with err.status(f"checking the oracle {spec} against {len(task.examples)} examples..."):
        return check_oracle(spec, task)


class InductionProgress:
    """Progress on stderr. On a terminal, one live line (stage, candidates checked, the best so
    far, seconds left of the budget), redrawn as time passes; elsewhere one log line per stage
    change, so a log file shows where a run is."""

    def __init__(self, console: Console, budget: float, *, quiet: bool = False) -> None:
        self.console, self.budget, self.quiet = console, budget, quiet
        self.live = console.is_terminal and not quiet
        self.stage, self.detail, self.attempts, self.best = "starting", "", 0, ""
        self.base_elapsed, self.stage_started, self.last_logged = 0.0, 0.0, ""
        self._status: Any = None

    def __enter__(self) -> InductionProgress:
        import time

        self.stage_started = time.monotonic()
        if self.live:
            self._status = self.console.status(self)
            self._status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._status is not None:
            self._status.__exit__(*exc)

    def __rich__(self) -> str:
        import time

        spent = self.base_elapsed + time.monotonic() - self.stage_started
        best = f" | best: {self.best}" if self.best else ""
        detail = f" ({self.detail})" if self.detail else ""
        return (f"{self.stage}{detail} | {self.attempts} candidate(s) checked{best} | "
                f"{max(0.0, self.budget - spent):.0f} s of {self.budget:.0f} s left")

    def event(self, kind: str, data: dict[str, Any]) -> None:
        import time

        if kind == "stage":
            self.stage, self.detail = data["stage"], ""
            self.attempts, self.best = data.get("attempts", 0), data.get("best") or self.best
            self.base_elapsed, self.stage_started = float(data.get("elapsed", 0.0)), time.monotonic()
            self.budget = float(data.get("budget", self.budget))
        elif kind == "check":
            self.detail = f"attempt {data['attempt']}: {str(data.get('summary', ''))[:50]}"
        if self.quiet or self.live:
            return
        line = self.__rich__()
        if line.split(" | ")[0] != self.last_logged.split(" | ")[0]:
            self.console.print(f"autoconn: {line}", highlight=False, markup=False, soft_wrap=True)
            self.last_logged = line


def _print_induce(summary: dict[str, Any]) -> None:
    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    if summary["status"] == "verified":
        out.print(f"[green]verified[/] {escape(summary['name'])}: {escape(summary['statement'] or '')}", highlight=False)
        if not summary.get("held_out"):
            out.print("  [bold yellow]not held out:[/] the verdict used examples whose counterexamples could be shown "
                      "to the inducer",
                      highlight=False)
        say(f"  split:    {summary['split']['induction']} induction, {summary['split']['validation']} validation, "
            f"{summary['split']['sealed']} sealed examples; "
            f"{summary['validation_revealed']} validation counterexample(s) revealed")
        say(f"  program:  {summary['program']}")
        say(f"  model:    {summary['layers']} layers, {summary['parameters']} parameters")
    else:
        out.print(f"[red]no CoNN verified[/] for {escape(summary['name'])}: {escape(str(summary['reason']))}", highlight=False)
        for item in summary["last_feedback"]:
            say(f"  last feedback ({item['stage']}): {item['message'][:200]}")
    say(f"  found by: {summary['inducer']} after {summary['attempts']} candidate(s) in {summary['seconds']} s")
    llm = (summary.get("inducer_usage") or {}).get("llm")
    if llm:
        say(f"  llm:      {llm.get('model')}: {llm.get('rounds', 0)} round(s), {llm.get('calls', 0)} call(s), "
            f"{llm.get('tokens', 0)} tokens, {llm.get('seconds', 0)} s waiting")
    say(f"  run log:  {summary['run_log']}   (resume: autoconn induce --resume {summary['run_id']})")


ORACLES_HELP = ("Python file with one function per task, named like the task file's stem, used as that task's oracle "
                "(default: DIR/generate.py when it exists; 'none' to use none).")
BENCH_OUT_HELP = ("Library folder: verified CoNNs are registered there (an existing name only with --force), and the LLM's "
                  "demonstrations come from it as it was when the bench started. Default: the bench folder's own library "
                  "(runs/BENCH_ID/conns), demonstrations from generated_conns.")
BENCH_RESUME_HELP = "Continue an interrupted bench: its finished tasks (verified or failed) are not run again."


@app.command()
def bench(
    directory: Path = typer.Argument(Path("rule_examples"), help="A folder of task files (*.jsonl); tiers from its README."),
    inducer: str = typer.Option("search", "--inducer", help="auto, search or llm."),
    sandbox: Sandbox = "auto",
    budget: float = typer.Option(60.0, "--budget", help="Seconds per task."),
    max_attempts: int = typer.Option(20, "--max-attempts", help="Candidates per task."),
    only: list[str] = typer.Option([], "--task", help="Only these tasks (file stems; repeatable)."),
    oracles: Path | None = typer.Option(None, "--oracles", metavar="FILE.py", help=ORACLES_HELP),
    model: Model = None,
    base_url: BaseUrl = None,
    samples: Samples = None,
    temperature: Temperature = None,
    max_tokens: MaxTokens = None,
    out_dir: Path | None = typer.Option(None, "--out", help=BENCH_OUT_HELP),
    force: bool = typer.Option(False, "--force", help="Replace CoNNs of the same name in --out."),
    workers: int | None = typer.Option(None, "--workers", min=1, help=WORKERS_HELP),
    ray: str | None = typer.Option(None, "--ray", metavar="[ADDRESS]", help=RAY_HELP),
    resume: str | None = typer.Option(None, "--resume", metavar="BENCH_ID", help=BENCH_RESUME_HELP),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where the bench folder (runs/BENCH_ID/) and run logs go."),
    library: Path | None = typer.Option(None, "--library", hidden=True),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Induce every task in DIR, several at once; print one line per finished task on stderr, then a
    table (with how far each CoNN is proven) and the success rate per tier. A bad task file is that
    task's failure; the others still run. runs/BENCH_ID/report.json is kept after every task."""
    from autoconn.bench import task_files
    from autoconn.inducers import InducerUnavailable, make_inducers
    from autoconn.parallel.batch import BatchRequest

    renamed_library_flag(library)
    llm_options = {"model": model, "base_url": base_url, "samples": samples, "temperature": temperature,
                   "max_tokens": max_tokens}
    if resume:
        _run_batch(None, resume=resume, runs_dir=runs_dir, workers=workers, ray=ray, force=force, as_json=as_json)
        return
    if sandbox not in ("auto", "docker", "process"):
        fail_usage(f"--sandbox {sandbox!r}: choose auto, docker or process")
    if not directory.is_dir():
        fail_usage(f"{directory}: not a folder of task files")
    finite_budget(budget)
    files = task_files(directory, only or None)
    if not files:
        fail_usage(f"{directory}: no task files (*.jsonl){' matching --task' if only else ''}")
    oracle_file = _bench_oracles(directory, oracles)
    try:
        make_inducers(inducer, (), llm_options | {"library_dir": str(out_dir or "generated_conns")})
    except InducerUnavailable as error:
        fail_usage(str(error))
    request = BatchRequest(files=tuple(str(f) for f in files), kind="bench", directory=str(directory), inducer=inducer,
                           sandbox=sandbox, budget=budget, max_attempts=max_attempts,
                           oracle_file=str(oracle_file) if oracle_file else None, llm=llm_options,
                           out=str(out_dir) if out_dir else None, demonstrations_from=str(out_dir or "generated_conns"),
                           force=force, runs_dir=str(runs_dir), workers=workers or _default_workers(), ray=ray)
    _run_batch(request, as_json=as_json)


def _induce_many(paths: list[Path], one_task_only: dict[str, Any], *, inducer: str, sandbox: str, oracle: str | None,
                 sealed: bool, out_dir: Path, runs_dir: Path, budget: float, max_attempts: int, force: bool, as_json: bool,
                 quiet: bool, workers: int | None, ray: str | None, llm: dict[str, Any]) -> NoReturn:
    """`induce A.jsonl B.jsonl ...` (or a folder): a batch into --out, one line per finished task;
    exit 0 only when every task was verified and registered."""
    from autoconn.inducers import InducerUnavailable, make_inducers
    from autoconn.parallel.batch import BatchRequest

    given = [flag for flag, value in one_task_only.items() if value]
    if given:
        fail_usage(f"{', '.join(given)} work(s) with one task file; induce the files one at a time to use it")
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            fail_usage(f"{path}: no such file or folder")
        files += sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    if not files:
        fail_usage(f"no task files (*.jsonl) in {', '.join(map(str, paths)) or 'the arguments'}")
    if len({f.stem for f in files}) < len(files):
        fail_usage("two task files have the same name (file stem): rename one, the bench report is keyed by it")
    if sandbox not in ("auto", "docker", "process"):
        fail_usage(f"--sandbox {sandbox!r}: choose auto, docker or process")
    finite_budget(budget)
    oracle_file, _, func = (oracle or "").rpartition(":") if oracle and ":" in oracle else (oracle, "", "")
    if oracle_file and not Path(oracle_file).is_file():
        fail_usage(f"--oracle {oracle}: no such file {oracle_file}")
    try:
        make_inducers(inducer, (), llm | {"library_dir": str(out_dir)})
    except InducerUnavailable as error:
        fail_usage(str(error))
    request = BatchRequest(files=tuple(str(f) for f in files), kind="induce", inducer=inducer, sandbox=sandbox, budget=budget,
                           max_attempts=max_attempts, oracle_file=oracle_file or None, oracle_func=func or None, sealed=sealed,
                           llm=llm, out=str(out_dir), demonstrations_from=str(out_dir), force=force, runs_dir=str(runs_dir),
                           workers=workers or _default_workers(), ray=ray)
    rows = _run_batch(request, as_json=as_json, quiet=quiet)
    raise typer.Exit(EXIT_OK if rows and all(row.solved and row.registered for row in rows) else EXIT_FAILED)


def _default_workers() -> int:
    from autoconn.parallel.runners import available_cores

    return available_cores()


def _run_batch(request: Any, *, resume: str | None = None, runs_dir: Path = Path("runs"), workers: int | None = None,
               ray: str | None = None, force: bool = False, as_json: bool = False, quiet: bool = False) -> list[Any]:
    """Runs a batch (bench, or induce of several files) with a progress line per finished task on
    stderr, and prints the table (or --json) on stdout; returns the rows."""
    from autoconn.bench import BenchRow, to_json
    from autoconn.parallel.batch import BatchError, BenchFolder, BenchNotFound, request_of, start_batch

    try:
        if resume:
            saved = BenchFolder.open(runs_dir, resume)
            # where to run now: --ray as given; --workers alone means this machine's pool
            request = request_of(saved, workers=workers, ray=ray or ("" if workers else None), runs_dir=str(runs_dir),
                                 force=force or None)
        solved = [0]

        def on_start(folder: BenchFolder, where: str) -> None:
            done = len([f for f in request.files if Path(f).stem in folder.finished])
            if not quiet:
                err.print(f"bench {folder.bench_id}: {len(request.files)} task(s) on {where}"
                          + (f"; {done} already finished, resumed" if resume else ""), highlight=False, markup=False)

        def on_row(row: BenchRow, done: int, total: int) -> None:
            solved[0] += row.solved
            status = "verified" if row.solved else "failed"
            retried = f", retried {row.retries}x" if row.retries else ""
            why = "" if row.solved else f" ({str(row.reason or '')[:120]})"
            if not quiet:
                err.print(f"bench: [{done}/{total}] {row.key or row.task}: {status} in {row.seconds:.1f} s on {row.worker or '?'}"
                          f"{retried}{why}; {solved[0]} verified this session", highlight=False, markup=False)

        folder, rows = start_batch(request, resume=resume, on_start=on_start, on_row=on_row)
    except (BatchError, BenchNotFound) as error:
        fail_usage(str(error))
    resumed = folder.report.get("resumed", [])
    if as_json:
        emit_json(to_json(rows) | {"bench_id": folder.bench_id, "report": str(folder.path / "report.json"),
                                   "library": folder.report.get("library"), "runner": folder.report.get("runner"),
                                   "resumed": resumed, "wall_seconds": folder.report["sessions"][-1].get("wall_seconds")})
    elif request.kind == "bench":
        _print_bench(rows, request, folder, resumed)
    else:
        _print_batch(rows, folder)
    return rows


def _print_bench(rows: list[Any], request: Any, folder: Any, resumed: list[str]) -> None:
    from autoconn.bench import rates

    with_llm = any(row.calls for row in rows)
    columns = ["task", "tier", "solved", "proven", "by", "seconds", "candidates", "layers", "parameters"]
    columns += ["rounds", "calls", "tokens"] if with_llm else []
    table = Table(title=f"autoconn bench {escape(str(request.directory))} (--inducer {request.inducer})")
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "tier", "solved", "by") else "right")
    for row in rows:
        proven = f"{row.verified_length}/{row.compiled_length}" if row.solved else "-"
        cells = [escape(row.task), row.tier, "[green]yes[/]" if row.solved else "[red]no[/]", proven,
                 row.verified_how or "-", f"{row.seconds:.1f}", str(row.attempts), str(row.layers or "-"),
                 str(row.parameters or "-")]
        cells += [str(row.rounds), str(row.calls), str(row.tokens)] if with_llm else []
        table.add_row(*cells)
    out.print(table)
    summary = rates(rows)
    for tier, figures in summary["tiers"].items():
        out.print(f"{tier:>7}: {figures['solved']}/{figures['total']} ({100 * figures['rate']:.0f}%)")
    overall = summary["overall"]
    median = summary["median_seconds_solved"]
    out.print(f"overall: {overall['solved']}/{overall['total']} ({100 * overall['rate']:.0f}%), "
              f"median seconds to a verified CoNN: {median:.1f}" if median is not None else
              f"overall: {overall['solved']}/{overall['total']}")
    out.print(f"proven at every compiled length: {summary['proven_every_length']} of {overall['solved']} verified")
    _print_batch_footer(rows, folder, resumed)


def _print_batch(rows: list[Any], folder: Any) -> None:
    for row in rows:
        if row.solved:
            where = row.registered or f"not registered: {row.not_registered}"
            out.print(f"[green]verified[/] {escape(row.task)}: {escape(row.statement or '')}", highlight=False)
            out.print(f"  program:  {escape(where)}", highlight=False)
        else:
            out.print(f"[red]no CoNN verified[/] for {escape(row.task)}: {escape(str(row.reason))}", highlight=False)
    _print_batch_footer(rows, folder, folder.report.get("resumed", []))


def _print_batch_footer(rows: list[Any], folder: Any, resumed: list[str]) -> None:
    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    unregistered = [f"{row.task} ({row.not_registered})" for row in rows if row.solved and not row.registered]
    if unregistered:
        say(f"verified but not registered: {'; '.join(unregistered)}")
    if resumed:
        say(f"resumed: {len(resumed)} task(s) finished by an earlier session were not run again: {', '.join(resumed)}")
    say(f"library:  {folder.report.get('library')}")
    resume = f"autoconn bench --resume {folder.bench_id} --runs-dir {folder.path.parent}"
    say(f"report:   {folder.path / 'report.json'}   (resume: {resume})")


def _bench_oracles(directory: Path, oracles: Path | None) -> Path | None:
    """The oracle file for a bench: given, DIR/generate.py by default, or none."""
    if oracles is not None and str(oracles) == "none":
        return None
    if oracles is not None:
        if not oracles.is_file():
            fail_usage(f"--oracles {oracles}: no such file")
        return oracles
    default = directory / "generate.py"
    return default if default.is_file() else None


@app.command()
def check(
    program: Path = typer.Argument(..., help="Python file binding `program` to a rasp.SOp."),
    task_file: Path = typer.Argument(..., metavar="TASK.jsonl", help="Examples the program must reproduce."),
    register: str | None = typer.Option(None, "--register", help="Register the CoNN under this name when it verifies."),
    oracle: str | None = typer.Option(None, "--oracle", metavar="FILE.py:FUNC", help=ORACLE_HELP),
    out_dir: LibraryDir = Path("generated_conns"),
    max_seq_len: int | None = typer.Option(None, "--max-seq-len", help="Compiled length (default: twice the longest example)."),
    sandbox: Sandbox = "auto",
    force: bool = typer.Option(False, "--force", help="Replace an existing CoNN of the same name."),
    limit: list[str] = typer.Option([], "--limit", metavar="NAME=N", help=LIMIT_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    trigger: Trigger = None,
    operand_start: OperandStart = None,
    split: Split = None,
    output_positions: OutputPositions = None,
    output_join: OutputJoin = None,
) -> None:
    """Compile a hand-written program in the sandbox and verify its weights, here, on every example
    of a task (and your oracle at every length). Nothing was held out from the program's author,
    so the verdict says so; with --oracle it is a proof at every length the oracle covered."""
    from autoconn import api

    overrides = fusion_overrides(trigger, operand_start, split, output_positions, output_join).to_json()
    if overrides and not register:
        fail_usage("--trigger, --operand-start, --split and --output-* set how a registered CoNN is called: add --register NAME")
    registration = api.Registration(register, str(out_dir), force, overrides) if register else None

    def started(task: Any) -> None:
        err.print(f"compiling {program.name} in the sandbox, then running {len(task.examples)} examples here...",
                  highlight=False, markup=False)

    summary = api.check_program(program, task_file, oracle=oracle, max_seq_len=max_seq_len, sandbox=sandbox,
                                limits=parse_limits(limit), register=registration, on_start=started)
    if as_json:
        emit_json(summary)
    else:
        _print_check(summary)
    raise typer.Exit(EXIT_OK if summary["status"] == "verified" else EXIT_FAILED)


def _print_check(summary: dict[str, Any]) -> None:
    def say(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    if summary["status"] == "verified":
        size = summary["size"] or {}
        out.print(f"[green]verified[/]: {escape(summary['verified']['statement'])}; {size.get('layers')} layers, "
                  f"{size.get('parameters')} parameters", highlight=False)
        if summary.get("registered"):
            say(f"registered: {summary['registered']}")
        return
    if summary.get("stage"):
        out.print(f"[red]failed[/] at {summary['stage']}: {escape(str(summary['error']))}", highlight=False)
        return
    if summary.get("error"):
        out.print(f"[red]failed[/]: {escape(str(summary['error']))}", highlight=False)
    for what in ("verification", "oracle"):
        scored = summary.get(what)
        if scored and scored["correct"] != scored["total"]:
            out.print(f"[red]failed[/]: {scored['correct']}/{scored['total']} {scored['examples']} inputs right; first failures:",
                      highlight=False)
            for failure in scored["failures"][:5]:
                say(f"  input {failure['input']}\n    expected {failure['expected']}\n    got      {failure['got']}")


@app.command()
def verify(
    name: str = typer.Argument(..., help="A registered CoNN."),
    oracle: str = typer.Option(..., "--oracle", metavar="FILE.py:FUNC", help=ORACLE_HELP),
    out_dir: LibraryDir = Path("generated_conns"),
    as_json: bool = typer.Option(False, "--json", help="Print the new verified block as JSON."),
) -> None:
    """Re-verify a registered CoNN from its stored weights (no recompiling) against your oracle at
    every compiled length, and record how far it is now proven (exit 1 when the oracle finds an
    input it gets wrong: the record then says so, and the proven length drops to match)."""
    from autoconn import api

    def started(compiled: int) -> None:
        err.print(f"running {name} on the oracle's inputs at every length up to {compiled}...", highlight=False, markup=False)

    found = api.verify(name, oracle, library_dir=str(out_dir), on_start=started)
    record = found.verified
    if as_json:
        emit_json(found.to_json())
    elif found.passed:
        out.print(f"[green]verified[/] {escape(name)}: {escape(record['statement'])}", highlight=False)
    else:
        out.print(f"[red]wrong[/] on {found.total - found.correct} of {found.total} oracle inputs; {escape(name)} is now "
                  f"recorded as proven up to {record['max_length']} tokens", highlight=False)
        for failure in found.failures:
            out.print(f"  input {failure['input']}\n    expected {failure['expected']}\n    got      {failure['got']}",
                      highlight=False, markup=False)
    raise typer.Exit(EXIT_OK if found.passed else EXIT_FAILED)


@app.command("list")
def list_conns(
    out_dir: LibraryDir = Path("generated_conns"),
    check_library: bool = typer.Option(False, "--check", help="Compare the index with the folders and mend what disagrees."),
    as_json: bool = typer.Option(False, "--json", help="Print the index as JSON."),
) -> None:
    """List the registered CoNNs (and mend the index when a crash left it out of step)."""
    library = Library(out_dir)
    problems = library.check(repair=False)
    if problems and (check_library or library.root.exists()):
        problems = library.check(repair=True)
        for problem in problems:
            err.print(f"library: {problem}", highlight=False, markup=False)
    elif check_library:
        err.print(f"library {out_dir}: index and folders agree", highlight=False, markup=False)
    index = library.read_index()
    if as_json:
        emit_json(index["conns"])
        return
    table = Table(title=f"CoNNs in {escape(str(out_dir))}")
    for column in ("name", "output", "compiled", "proven", "by", "layers", "params", "found by"):
        table.add_column(column, no_wrap=True)
    for name, entry in index["conns"].items():
        kind = {"categorical": "cat", "numerical": "num"}.get(str(entry.get("output_kind")), "?")
        shape = {"sequence": "seq", "broadcast": "one"}.get(str(entry.get("output_shape")), "?")
        total = entry.get("heldout_examples")
        how = str(entry.get("verified_how") or "examples")
        by = (f"oracle, {total:,}" if how == "oracle" else f"{total:,} sealed" if entry.get("held_out", True)
              else f"{total:,} not held out")
        table.add_row(escape(name), f"{kind}/{shape}", str(entry.get("max_seq_len")), str(entry.get("verified_length", "?")), by,
                      str(entry.get("layers")), f"{entry.get('parameters'):,}" if entry.get("parameters") is not None else "?",
                      escape(str(entry.get("inducer"))))
    out.print(table)
    if not index["conns"]:
        out.print("(empty: register one with `autoconn check PROGRAM.py TASK.jsonl --register NAME`)", markup=False)


@app.command()
def show(
    name: str = typer.Argument(..., help="A registered CoNN."),
    out_dir: LibraryDir = Path("generated_conns"),
    as_json: bool = typer.Option(False, "--json", help="Print conn.json."),
) -> None:
    """Show a CoNN: its metadata, how far it is proven, where it came from, and its program."""
    from autoconn.verdict import verified_length

    entry = Library(out_dir).get(name)
    if as_json:
        emit_json(entry.meta | {"program": str(entry.program_path)})
        return
    meta = entry.meta
    size, prov, record = meta.get("size") or {}, meta.get("provenance") or {}, meta.get("verified") or {}

    def say(text: str) -> None:  # descriptions and programs are the user's (or a model's) text: never markup
        out.print(text, highlight=False, markup=False)

    say(f"{name}: {meta.get('description') or ''}")
    say(f"  program:   {entry.program_path}")
    say(f"  vocab:     {meta.get('vocab')}   output: {meta.get('output_kind')}/{meta.get('output_shape')}")
    say(f"  compiled:  max_seq_len {meta.get('max_seq_len')}, {size.get('layers')} layers, {size.get('heads')} heads, "
        f"residual {size.get('residual_width')}, {size.get('parameters')} parameters")
    say(f"  verified:  {record.get('statement') or f'up to {verified_length(meta)} tokens (recorded before verified blocks)'}")
    if record and not record.get("held_out", True):
        say("             NOT held out: the examples that gave the verdict were not hidden from whoever wrote the program")
    say(f"  found by:  {prov.get('inducer')}" + (f" (run {prov['run_id']}: {prov.get('run_log')})" if prov.get("run_id") else ""))
    fusion = meta.get("fusion") or {}
    say(f"  fusion:    {fusion.get('operand_start')}OPERAND{fusion.get('trigger')} (split {fusion.get('split')})" if fusion
        else f"  fusion:    not set (autoconn set-fusion {name})")
    say("")
    say(entry.program_path.read_text(encoding="utf-8"))


@app.command()
def run(
    name: str = typer.Argument(..., help="A registered CoNN."),
    tokens: list[str] | None = typer.Argument(None, help="Input tokens, e.g. `a b c` (a single word is split into characters "
                                                         "if the vocab is single characters)."),
    input_file: Path | None = typer.Option(None, "--input-file",
                                           help="Inputs, one per line (tokens as on the command line, or a JSON list); "
                                                "'-' reads stdin. One output line each."),
    out_dir: LibraryDir = Path("generated_conns"),
    unverified_lengths: bool = typer.Option(False, "--unverified-lengths",
                                            help="Answer inputs longer than the proven length (up to the compiled one), "
                                                 "with a warning."),
    as_json: bool = typer.Option(False, "--json",
                                 help="Print {input, output, verified} as JSON (one object per line with --input-file)."),
) -> None:
    """Run a registered CoNN on one input (or a file of them), from its stored weights (no recompiling, no jax for small batches).

    Inputs longer than the length the CoNN is proven up to are refused unless --unverified-lengths is given."""
    from autoconn.conn.runtime import ConnInputError

    entry = Library(out_dir).get(name)
    vocab = entry.spec.vocab
    if (input_file is None) == (not tokens):
        fail_usage("give the input tokens or --input-file FILE (not both)")
    batch, where = _read_inputs(input_file, vocab) if input_file is not None else ([_parse_words(tokens or [], vocab)], [""])
    proven, compiled = entry.verified_length, entry.spec.max_seq_len
    beyond = [row for row, inputs in enumerate(batch) if len(inputs) > proven]
    if beyond and not unverified_lengths:
        row = beyond[0]
        fail_usage(f"{name}: {where[row]}the input has {len(batch[row])} tokens, but {name} is proven only up to {proven} "
                   f"(compiled for {compiled}); pass --unverified-lengths to run it anyway, or prove it further with "
                   f"`autoconn verify {name} --oracle FILE.py:FUNC`")
    if beyond:
        err.print(f"[yellow]warning:[/] {len(beyond)} input(s) longer than the {proven} tokens {escape(name)} is proven up to: "
                  "those answers are not verified", highlight=False)
    try:
        runtime = entry.runtime()
        outputs = runtime.run(batch)
    except (ConnInputError, LibraryError) as error:
        failed_row: int | None = getattr(error, "row", None)
        fail_usage(f"{name}: {where[failed_row] if failed_row is not None else ''}{error}")
    if input_file is not None:
        lines = (json.dumps({"name": name, "input": i, "output": o, "verified": len(i) <= proven}, default=str) if as_json
                 else " ".join(map(_format_value, o)) for i, o in zip(batch, outputs))
        sys.stdout.write("".join(line + "\n" for line in lines))
    elif as_json:
        emit_json({"name": name, "input": batch[0], "output": outputs[0], "verified": not beyond, "verified_length": proven})
    else:
        out.print(" ".join(_format_value(v) for v in outputs[0]), highlight=False, markup=False)


def _parse_words(words: list[str], vocab: list[Any], cache: dict[str, Any] | None = None) -> list[Any]:
    """Command-line words as vocab tokens (a single word of single-character tokens is split)."""
    if len(words) == 1 and all(isinstance(t, str) and len(t) == 1 for t in vocab) and len(words[0]) > 1:
        words = list(words[0])
    cache = {} if cache is None else cache
    return [cache[w] if w in cache else cache.setdefault(w, parse_token(w, vocab)) for w in words]


def _read_inputs(path: Path, vocab: list[Any]) -> tuple[list[list[Any]], list[str]]:
    """--input-file: one input per non-blank line, as words or a JSON list; with each input's
    'FILE:LINE: ' for error messages."""
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        fail_usage(f"cannot read {path}: {error}")
    batch: list[list[Any]] = []
    where: list[str] = []
    cache: dict[str, Any] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if line.lstrip().startswith("["):
            try:
                values = json.loads(line)
            except json.JSONDecodeError as error:
                fail_usage(f"{path}:{number}: not a JSON list ({error.msg})")
            batch.append([parse_token(v, vocab) if isinstance(v, str) else v for v in values])
        else:
            batch.append(_parse_words(line.split(), vocab, cache))
        where.append(f"{path}:{number}: ")
    if not batch:
        fail_usage(f"{path}: no inputs (one per line)")
    return batch, where


def _format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


@app.command("set-fusion")
def register_fusion(
    name: str = typer.Argument(..., help="A registered CoNN."),
    trigger: Trigger = None,
    operand_start: OperandStart = None,
    split: Split = None,
    output_positions: OutputPositions = None,
    output_join: OutputJoin = None,
    out_dir: LibraryDir = Path("generated_conns"),
    as_json: bool = typer.Option(False, "--json", help="Print the new fusion spec as JSON."),
) -> None:
    """Set how a registered CoNN is called from text: the defaults plus the flags given (replaces the old spec).
    (Adding a CoNN to the library is `induce`, or `check --register`.)"""
    from autoconn.fusion.metadata import (
        FusionSpecError,
        build_spec,
        output_facts,
        spec_of_meta,
    )

    library = Library(out_dir)
    try:
        entry = library.get(name)
        overrides = fusion_overrides(trigger, operand_start, split, output_positions, output_join)
        spec = build_spec(name, entry.meta.get("vocab") or entry.spec.vocab, str(entry.meta.get("output_shape")), overrides,
                          **output_facts(entry.meta))
        entry = library.update_meta(name, {"fusion": spec.to_json()})
    except (LibraryError, FusionSpecError) as error:
        fail_usage(f"{name}: {error}")
    for other in library.entries():
        try:
            theirs = spec_of_meta(other.name, other.meta)
        except FusionSpecError:
            continue
        if other.name != name and (theirs.operand_start, theirs.trigger) == (spec.operand_start, spec.trigger):
            err.print(f"[yellow]note:[/] {other.name!r} uses the same operand start and trigger; they cannot be fused together",
                      highlight=False)
    if as_json:
        emit_json({"name": name, "fusion": spec.to_json()})
    else:
        out.print(f"{name}: {spec.operand_start}OPERAND{spec.trigger} (split {spec.split}, writes {spec.output.positions} "
                  f"output(s) joined by {spec.output.join!r})", highlight=False, markup=False)


# The old name, kept for scripts; it clashed with `check --register` (which adds to the library).
app.command("register", hidden=True, deprecated=True, help="Renamed: use `autoconn set-fusion`.")(register_fusion)


@app.command()
def fuse(
    prompt: str = typer.Argument(..., help="The text the language model continues."),
    conns: list[str] = typer.Option([], "--conn", help="A registered CoNN to fuse (repeatable)."),
    lm: str = typer.Option("demo", "--lm",
                           help="demo (the in-process character LM) or openai (a chat model over an OpenAI-compatible API)."),
    model: str | None = typer.Option(None, "--model", help="With --lm openai: the model (default: $AUTOCONN_MODEL)."),
    base_url: str | None = typer.Option(None, "--base-url",
                                        help="With --lm openai: the API base URL (default: $OPENAI_BASE_URL)."),
    max_new: int = typer.Option(64, "--max-new", help="demo: characters to generate; openai: max tokens per request."),
    out_dir: LibraryDir = Path("generated_conns"),
    unverified_lengths: bool = typer.Option(False, "--unverified-lengths",
                                            help="Let CoNNs answer operands longer than they are proven on "
                                                 "(default: the LM writes those)."),
    as_json: bool = typer.Option(False, "--json", help="Print the completion, CoNN spans and fallbacks as JSON."),
) -> None:
    """Generate with a language model while registered CoNNs write the answers their triggers call for."""
    from autoconn.fusion.conn_tool import load_fused_conns
    from autoconn.fusion.metadata import FusionSpecError

    if lm not in ("demo", "openai"):
        fail_usage(f"--lm {lm!r}: choose demo or openai")
    if not conns:
        fail_usage(f"name at least one CoNN with --conn (registered: {', '.join(Library(out_dir).names()) or 'none'})")
    if max_new < 1:
        fail_usage("--max-new must be at least 1")
    try:
        fused = load_fused_conns(conns, Library(out_dir), unverified_lengths=unverified_lengths)
    except (LibraryError, FusionSpecError) as error:
        fail_usage(str(error))
    if lm == "demo":
        from autoconn.fusion.token_level import fuse_decode_one

        try:
            from autoconn.fusion.demo_lm import load_demo_lm
            char_lm = load_demo_lm()
        except (ImportError, OSError, ValueError, RuntimeError) as error:  # DemoLMError is a RuntimeError
            fail_usage(f"the demo LM cannot be loaded: {error}")
        try:
            result: Any = fuse_decode_one(char_lm, fused, prompt, max_new_chars=max_new)
        except ValueError as error:  # a character the demo LM never saw
            fail_usage(f"{error}; the demo LM reads only the characters it was trained on (try --lm openai for free text)")
    else:
        from autoconn.endpoint import ChatEndpoint, EndpointConfig, EndpointError
        from autoconn.fusion.text_level import fuse_chat

        try:
            endpoint = ChatEndpoint(EndpointConfig.from_environment(model=model, base_url=base_url))
        except EndpointError as error:
            fail_usage(str(error))
        try:
            result = fuse_chat(endpoint, fused, prompt, max_tokens=max_new)
        except ValueError as error:
            fail_usage(str(error))
        except EndpointError as error:
            err.print(f"[bold red]error:[/] {error}", highlight=False)
            raise typer.Exit(EXIT_FAILED) from None
    if as_json:
        emit_json({"lm": lm, "conns": [c.name for c in fused]} | result.to_json())
        return
    _print_fused(result)


def _print_fused(result: Any) -> None:
    """The completion with CoNN-written text highlighted (plain text in a pipe); the legend on stderr."""
    from rich.text import Text

    text, at = Text(), 0
    for span in result.spans:
        text.append(result.completion[at:span.start])
        text.append(result.completion[span.start:span.end], style="bold green")
        at = span.end
    text.append(result.completion[at:])
    out.print(text, highlight=False)
    for span in result.spans:
        written = result.completion[span.start:span.end]
        err.print(f"[green]{span.conn}[/] wrote {written!r} (characters {span.start}-{span.end})", highlight=False)
    for fallback in result.fallbacks:
        err.print(f"[yellow]{fallback.conn}[/] not called at character {fallback.position}: {fallback.reason}", highlight=False)


@sandbox_app.command("status")
def sandbox_status_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Which backend `--sandbox auto` would use, and why."""
    from autoconn.sandbox import sandbox_status

    status = sandbox_status()
    if as_json:
        emit_json(status)
    else:
        for key, value in status.items():
            out.print(f"{key}: {value}", highlight=False)


@sandbox_app.command("build")
def sandbox_build_command(
    base: str | None = typer.Option(None, "--base", help="Base image (default: python:3.11-slim when reachable, "
                                                         "else the local debootstrap base)."),
) -> None:
    """Build the Docker image the sandbox runs candidates in (no registry needed)."""
    from autoconn.sandbox import build_image

    tag = build_image(base=base)
    out.print(f"built {tag}")


def renamed_library_flag(given: Path | None) -> None:
    """Every command names the library folder --out; the old --library of review and export says so."""
    if given is not None:
        fail_usage(f"--library is now --out (the library folder, as in every command): use --out {given}")


# --- review and export (issue 16): the logic lives in autoconn/review/ and autoconn/export/ ---

@app.command()
def review(
    to: Path = typer.Option(Path("review"), "--to", help="Folder for the HTML site (index.html, conns/NAME.html)."),
    library: LibraryDir = Path("generated_conns"),
    old_library: Path | None = typer.Option(None, "--library", hidden=True),
    open_browser: bool = typer.Option(False, "--open", help="Open the index in a web browser."),
) -> None:
    """Write a static HTML review of the library: one page per CoNN (program, RASP graph, residual
    layout, verification by length, attention heatmaps and SOp values for example inputs) and an index."""
    from autoconn.review.site import build_site

    renamed_library_flag(old_library)
    try:
        index = build_site(library, to)
    except LibraryError as error:
        fail_usage(str(error))
    out.print(f"review written: {index}", highlight=False)
    if open_browser:
        import webbrowser

        webbrowser.open(index.resolve().as_uri())


@app.command()
def export(
    name: str = typer.Argument(..., help="A registered CoNN."),
    to: Path = typer.Option(..., "--to", help="Folder to write the export into."),
    fmt: str = typer.Option("safetensors", "--format",
                            help="safetensors (model.safetensors + config.json + a numpy loader) or transformer-lens."),
    library: LibraryDir = Path("generated_conns"),
    old_library: Path | None = typer.Option(None, "--library", hidden=True),
) -> None:
    """Export a CoNN's weights (exactly as the runtime uses them) to safetensors or TransformerLens."""
    renamed_library_flag(old_library)
    if fmt not in ("safetensors", "transformer-lens"):
        fail_usage(f"--format {fmt!r}: use safetensors or transformer-lens")
    try:
        if fmt == "safetensors":
            from autoconn.export.safetensors_export import export_safetensors

            folder = export_safetensors(name, to, library)
            hint = (f"python -c \"import sys; sys.path.insert(0, '{folder}'); import conn_numpy; "
                    f"print(conn_numpy.load('{folder}').run([...]))\"")
        else:
            from autoconn.export.tlens import export_transformer_lens

            folder = export_transformer_lens(name, to, library)
            hint = (f"from autoconn.export.tlens import load_hooked; model = load_hooked('{folder}')"
                    "   # needs pip install -e '.[export]'")
    except LibraryError as error:
        fail_usage(str(error))
    for path in sorted(folder.iterdir()):
        out.print(f"  {path}", highlight=False)
    out.print(f"exported {name} ({fmt}) to {folder}\n  {hint}", highlight=False, markup=False)


def usage_error_types() -> tuple[type[BaseException], ...]:
    """Every error that means "bad input or usage" (exit 2): task files, names, the library, oracles,
    fusion specs, a sandbox that cannot run here or whose worker would not start, a bad setting."""
    from autoconn.api import RequestError
    from autoconn.fusion.metadata import FusionSpecError
    from autoconn.inducers import InducerUnavailable
    from autoconn.oracle import OracleError
    from autoconn.pipeline.graph import RunNotFound
    from autoconn.sandbox import SandboxUnavailable
    from autoconn.sandbox.host import SandboxError
    from autoconn.settings import SettingsError

    return (TaskError, LibraryError, OracleError, FusionSpecError, SandboxUnavailable, SandboxError, RequestError,
            InducerUnavailable, RunNotFound, SettingsError)


def _bare_ray_flag(argv: list[str]) -> list[str]:
    """`--ray` with no address means a local Ray instance: click options cannot take an optional
    value, so a bare `--ray` (last, or followed by something that is not an address) becomes `--ray local`."""
    fixed = list(argv)
    for i, arg in enumerate(fixed):
        if arg == "--ray":
            nxt = fixed[i + 1] if i + 1 < len(fixed) else ""
            if not (nxt in ("auto", "local") or ":" in nxt):
                fixed.insert(i + 1, "local")
            break
    return fixed


def main() -> None:  # pragma: no cover - console entry point
    sys.argv = _bare_ray_flag(sys.argv)
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted: `autoconn induce --resume RUN_ID` continues a run (run ids are folders in runs/)",
                  highlight=False)
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
