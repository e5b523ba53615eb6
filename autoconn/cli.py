"""Command line: parse, call the library, print. Results on stdout, progress on stderr.

Exit codes (DESIGN.md): 0 success, 1 nothing verified, 2 bad input or usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from autoconn.conn.artifact import Library, LibraryError
from autoconn.task import TaskError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="AutoCoNN: induce, compile, verify and register compiled transformers (CoNNs).")
sandbox_app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False, help="The isolation that runs candidate programs.")
app.add_typer(sandbox_app, name="sandbox")

out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)  # no 80-column cut in pipes
err = Console(stderr=True, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
MODEL_HELP = "LLM model name at the OpenAI-compatible endpoint (default: $AUTOCONN_MODEL)."
BASE_URL_HELP = "OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 (default: $OPENAI_BASE_URL, else OpenAI)."
SAMPLES_HELP = "LLM candidates sampled per round (default 4, or $AUTOCONN_LLM_SAMPLES)."
TEMPERATURE_HELP = "LLM sampling temperature (default 0.8, or $AUTOCONN_LLM_TEMPERATURE)."
SANDBOX_HELP = "auto (Docker when the engine and image are there, else a locked-down process), docker, or process."
TRIGGER_HELP = "Fusion: text that closes the operand and calls the CoNN (default ')=')."
OPERAND_START_HELP = "Fusion: text that opens the operand (default NAME followed by '(')."
SPLIT_HELP = "Fusion: how the operand becomes tokens: char (one per character) or space (whitespace-separated)."
POSITIONS_HELP = "Fusion: which outputs the CoNN writes: all, first or last (default all for sequences, first for one value)."
JOIN_HELP = "Fusion: what separates written outputs: '' or ' ' (default '' when tokens and outputs are single characters, else ' ')."


def fail_usage(message: str) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(EXIT_USAGE)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def fusion_overrides(trigger: Optional[str], operand_start: Optional[str], split: Optional[str],
                     output_positions: Optional[str], output_join: Optional[str]) -> Any:
    """The fusion flags as FusionOverrides (validated against the CoNN later, by build_spec)."""
    from autoconn.fusion.metadata import FusionOverrides

    return FusionOverrides(operand_start=operand_start, trigger=trigger, split=split,
                           output_positions=output_positions, output_join=output_join)


def parse_token(text: str, vocab: list[Any]) -> Any:
    """`autoconn run` takes tokens as words; map each back to the vocab's own type."""
    for token in vocab:
        if isinstance(token, bool):
            if text.lower() == str(token).lower():
                return token
        elif str(token) == text:
            return token
    return text


@app.command()
def induce(
    task_file: Optional[Path] = typer.Argument(None, metavar="TASK.jsonl", help="Input/output examples of the rule."),
    name: Optional[str] = typer.Option(None, "--name", help="Library name (default: the file's stem or the header's name)."),
    description: Optional[str] = typer.Option(None, "--description", help="What the rule is, in words."),
    inducer: str = typer.Option("auto", "--inducer", help="auto (the LLM when configured, else search), search, llm, or files."),
    candidates: list[Path] = typer.Option([], "--candidate", help="With --inducer files: a program to try (repeatable, in order)."),
    sandbox: str = typer.Option("auto", "--sandbox", help=SANDBOX_HELP),
    max_seq_len: Optional[int] = typer.Option(None, "--max-seq-len", help="Compiled length (default: twice the longest example)."),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="Where run logs and checkpoints go."),
    budget: float = typer.Option(300.0, "--budget", help="Seconds of work before giving up."),
    max_attempts: int = typer.Option(40, "--max-attempts", help="Candidates to check before giving up."),
    force: bool = typer.Option(False, "--force", help="Replace an existing CoNN of the same name."),
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue an interrupted run (its RUN_ID)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON summary object."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help=TRIGGER_HELP),
    operand_start: Optional[str] = typer.Option(None, "--operand-start", help=OPERAND_START_HELP),
    split: Optional[str] = typer.Option(None, "--split", help=SPLIT_HELP),
    output_positions: Optional[str] = typer.Option(None, "--output-positions", help=POSITIONS_HELP),
    output_join: Optional[str] = typer.Option(None, "--output-join", help=JOIN_HELP),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    base_url: Optional[str] = typer.Option(None, "--base-url", help=BASE_URL_HELP),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, max=16, help=SAMPLES_HELP),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, max=2.0, help=TEMPERATURE_HELP),
) -> None:
    """Find a RASP program for the examples, compile it, verify it on held-out examples, register it."""
    from autoconn.conn.artifact import check_name
    from autoconn.inducers import InducerUnavailable, make_inducers
    from autoconn.pipeline.graph import run_induction
    from autoconn.pipeline.nodes import Resources
    from autoconn.pipeline.runlog import RunLog, new_run_id
    from autoconn.pipeline.state import RunConfig
    from autoconn.sandbox import SandboxUnavailable, open_sandbox
    from autoconn.task import load_task

    if sandbox not in ("auto", "docker", "process"):
        fail_usage(f"--sandbox {sandbox!r}: choose auto, docker or process")
    if budget <= 0 or max_attempts < 1:
        fail_usage("--budget must be positive and --max-attempts at least 1")
    config: Optional[RunConfig] = None
    cli_llm_options = {"model": model, "base_url": base_url, "samples": samples, "temperature": temperature}
    llm_options = cli_llm_options | {"library_dir": str(out_dir)}
    if resume:
        saved = RunLog(runs_dir, resume)
        if not saved.exists():
            fail_usage(f"no run {resume!r} under {runs_dir}/ to resume (runs are folders there)")
        start = saved.events()[0].get("config", {}) if saved.events() else {}
        kind, paths, box = start.get("inducer", inducer), start.get("candidates", []), start.get("sandbox", sandbox)
        llm_options = (start.get("llm") or {}) | {k: v for k, v in cli_llm_options.items() if v is not None}
    else:
        if task_file is None:
            fail_usage("give a TASK.jsonl file (or --resume RUN_ID)")
        try:
            task = load_task(task_file, name=name, description=description, max_seq_len=max_seq_len)
            check_name(task.name)
        except (TaskError, LibraryError) as error:
            fail_usage(str(error))
        if Library(out_dir).exists(task.name) and not force:
            fail_usage(f"a CoNN named {task.name!r} already exists in {out_dir}; pick another --name or pass --force")
        from autoconn.checking import fusion_for_task
        from autoconn.fusion.metadata import FusionSpecError

        overrides = fusion_overrides(trigger, operand_start, split, output_positions, output_join).to_json()
        try:
            fusion_for_task(task.name, task, overrides)
        except FusionSpecError as error:
            fail_usage(f"fusion: {error}")
        for path in candidates:
            if not path.is_file():
                fail_usage(f"--candidate {path}: no such file")
        kind, paths, box = inducer, [str(p) for p in candidates], sandbox
        config = RunConfig(run_id=new_run_id(task.name), task_path=str(task_file), name=task.name, description=description,
                           max_seq_len=max_seq_len, library_dir=str(out_dir), runs_dir=str(runs_dir), inducer=inducer,
                           candidates=paths, sandbox=sandbox, budget_seconds=budget, max_attempts=max_attempts,
                           batch_size=5, force=force, fusion=overrides, llm=llm_options)
    try:
        inducers, chain = make_inducers(kind, paths, llm_options)
    except InducerUnavailable as error:
        fail_usage(str(error))
    progress = InductionProgress(err)
    resources = Resources(inducers=inducers, inducer_chain=chain, open_sandbox=lambda: open_sandbox(box),
                          on_event=progress.event)
    try:
        with progress:
            outcome = run_induction(resources, config, resume_run=resume, runs_dir=str(runs_dir))
    except SandboxUnavailable as error:
        fail_usage(str(error))
    except FileNotFoundError as error:
        fail_usage(str(error))
    summary = outcome.summary()
    if as_json:
        emit_json(summary)
    else:
        _print_induce(summary)
    raise typer.Exit(EXIT_OK if summary["status"] == "verified" else EXIT_FAILED)


class InductionProgress:
    """A one-line live display on stderr: stage, attempt, candidates checked, elapsed."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = console.status("starting...")
        self.started = 0.0

    def __enter__(self) -> "InductionProgress":
        import time
        self.started = time.monotonic()
        self.status.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.status.__exit__(*exc)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        import time
        elapsed = time.monotonic() - self.started
        if kind == "stage":
            self.status.update(f"{data['stage']} | {data['attempts']} candidate(s) checked | {elapsed:.0f} s")
        elif kind == "check":
            self.status.update(f"check | attempt {data['attempt']}: {str(data.get('summary', ''))[:60]} | {elapsed:.0f} s")


def _print_induce(summary: dict[str, Any]) -> None:
    if summary["status"] == "verified":
        out.print(f"[green]verified[/] {summary['name']}: {summary['heldout_examples']} held-out examples, "
                  f"{100 * (summary['heldout_accuracy'] or 0):.0f}% right, proven up to length {summary['proven_up_to_length']} "
                  f"(induced from lengths up to {summary['induced_up_to_length']}; compiled for {summary['compiled_max_seq_len']})")
        out.print(f"  program:  {summary['program']}")
        out.print(f"  model:    {summary['layers']} layers, {summary['parameters']} parameters")
    else:
        out.print(f"[red]no CoNN verified[/] for {summary['name']}: {summary['reason']}")
        for item in summary["last_feedback"]:
            out.print(f"  last feedback ({item['stage']}): {item['message'][:200]}", highlight=False)
    out.print(f"  found by: {summary['inducer']} after {summary['attempts']} candidate(s) in {summary['seconds']} s")
    llm = (summary.get("inducer_usage") or {}).get("llm")
    if llm:
        out.print(f"  llm:      {llm.get('model')}: {llm.get('rounds', 0)} round(s), {llm.get('calls', 0)} call(s), "
                  f"{llm.get('tokens', 0)} tokens, {llm.get('seconds', 0)} s waiting")
    out.print(f"  run log:  {summary['run_log']}   (resume: autoconn induce --resume {summary['run_id']})")


@app.command()
def bench(
    directory: Path = typer.Argument(Path("rule_examples"), help="A folder of task files (*.jsonl), tiers read from its README table."),
    inducer: str = typer.Option("search", "--inducer", help="auto, search or llm."),
    sandbox: str = typer.Option("auto", "--sandbox", help=SANDBOX_HELP),
    budget: float = typer.Option(60.0, "--budget", help="Seconds per task."),
    max_attempts: int = typer.Option(20, "--max-attempts", help="Candidates per task."),
    only: list[str] = typer.Option([], "--task", help="Only these tasks (file stems; repeatable)."),
    model: Optional[str] = typer.Option(None, "--model", help=MODEL_HELP),
    base_url: Optional[str] = typer.Option(None, "--base-url", help=BASE_URL_HELP),
    samples: Optional[int] = typer.Option(None, "--samples", min=1, max=16, help=SAMPLES_HELP),
    temperature: Optional[float] = typer.Option(None, "--temperature", min=0.0, max=2.0, help=TEMPERATURE_HELP),
    library: Path = typer.Option(Path("generated_conns"), "--library", help="Library the LLM draws few-shot demonstrations from."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Induce every task in DIR; print a table and the success rate per tier."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from autoconn.bench import BenchRow, rates, run_bench, task_files, to_json
    from autoconn.inducers import InducerUnavailable, make_inducers
    from autoconn.sandbox import SandboxUnavailable, open_sandbox

    if not directory.is_dir():
        fail_usage(f"{directory}: not a folder of task files")
    files = task_files(directory, only or None)
    if not files:
        fail_usage(f"{directory}: no task files (*.jsonl){' matching --task' if only else ''}")
    llm_options = {"model": model, "base_url": base_url, "samples": samples, "temperature": temperature,
                   "library_dir": str(library)}
    try:
        make_inducers(inducer, (), llm_options)
    except InducerUnavailable as error:
        fail_usage(str(error))
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=err, transient=True) as progress:
        bar = progress.add_task("bench", total=len(files))

        def on_task(name: str, row: Optional[BenchRow]) -> None:
            if row is None:
                progress.update(bar, description=f"inducing {name}")
            else:
                progress.advance(bar)

        try:
            rows = run_bench(directory, inducer=inducer, open_sandbox=lambda: open_sandbox(sandbox), budget=budget,
                             max_attempts=max_attempts, only=only or None, on_task=on_task, llm_options=llm_options)
        except SandboxUnavailable as error:
            fail_usage(str(error))
    if as_json:
        emit_json(to_json(rows))
        return
    with_llm = any(row.calls for row in rows)
    columns = ["task", "tier", "solved", "seconds", "candidates", "layers", "parameters"]
    columns += ["rounds", "calls", "tokens"] if with_llm else []
    table = Table(title=f"autoconn bench {directory} (--inducer {inducer})")
    for column in columns:
        table.add_column(column, justify="left" if column in ("task", "tier", "solved") else "right")
    for row in rows:
        cells = [row.task, row.tier, "[green]yes[/]" if row.solved else "[red]no[/]", f"{row.seconds:.1f}", str(row.attempts),
                 str(row.layers or "-"), str(row.parameters or "-")]
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


@app.command()
def check(
    program: Path = typer.Argument(..., help="Python file binding `program` to a rasp.SOp."),
    task_file: Path = typer.Argument(..., metavar="TASK.jsonl", help="Examples the program must reproduce."),
    register: Optional[str] = typer.Option(None, "--register", help="Register the CoNN under this name when it verifies."),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    max_seq_len: Optional[int] = typer.Option(None, "--max-seq-len", help="Compiled length (default: twice the longest example)."),
    sandbox: str = typer.Option("auto", "--sandbox", help=SANDBOX_HELP),
    force: bool = typer.Option(False, "--force", help="Replace an existing CoNN of the same name."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help=TRIGGER_HELP),
    operand_start: Optional[str] = typer.Option(None, "--operand-start", help=OPERAND_START_HELP),
    split: Optional[str] = typer.Option(None, "--split", help=SPLIT_HELP),
    output_positions: Optional[str] = typer.Option(None, "--output-positions", help=POSITIONS_HELP),
    output_join: Optional[str] = typer.Option(None, "--output-join", help=JOIN_HELP),
) -> None:
    """Compile a hand-written program in the sandbox and verify it on every example of a task."""
    from autoconn.checking import check_source, conn_metadata
    from autoconn.conn.compile import default_settings
    from autoconn.task import load_task

    try:
        task = load_task(task_file, max_seq_len=max_seq_len)
    except TaskError as error:
        fail_usage(str(error))
    if not program.is_file():
        fail_usage(f"{program}: no such program file")
    try:
        source = program.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        fail_usage(f"{program}: not UTF-8 text")
    library = Library(out_dir)
    if register:
        try:
            from autoconn.conn.artifact import check_name
            check_name(register)
            if library.exists(register) and not force:
                fail_usage(f"a CoNN named {register!r} already exists in {out_dir}; pick another name or pass --force")
        except LibraryError as error:
            fail_usage(str(error))
    overrides = fusion_overrides(trigger, operand_start, split, output_positions, output_join)
    fusion: Optional[dict[str, Any]] = None
    if register:
        from autoconn.checking import fusion_for_task
        from autoconn.fusion.metadata import FusionSpecError

        try:
            fusion_for_task(register, task, overrides.to_json())  # fail before compiling, not after
        except FusionSpecError as error:
            fail_usage(f"fusion: {error}")
    elif overrides.to_json():
        fail_usage("--trigger, --operand-start, --split and --output-* set how a registered CoNN is called: add --register NAME")
    settings = default_settings(task.max_seq_len)
    from autoconn.sandbox import SandboxUnavailable, open_sandbox

    try:
        with err.status(f"compiling {program.name} in the sandbox and running {len(task.examples)} examples..."):
            with open_sandbox(sandbox) as box:  # open until registered: the weights live in its exchange dir
                outcome = check_source(box, source, task, settings, task.examples)
                summary = _check_summary(program, task, box.backend, outcome)
                if summary["status"] == "verified" and register:
                    fusion = fusion_for_task(register, task, overrides.to_json(),
                                             output_values=outcome.result.spec.get("output_decoding")).to_json()
                    meta = conn_metadata(task, settings, outcome.result.size, outcome.result.spec, outcome.verification,
                                         {"inducer": "hand-written", "checked_with": f"autoconn check ({box.backend} sandbox)"},
                                         fusion=fusion)
                    meta["verification"]["examples"] = "task"  # nothing was held out: every example checked
                    entry = library.write(register, source, meta, weights_file=outcome.result.weights_path, force=force)
                    summary["registered"] = str(entry.program_path)
    except (SandboxUnavailable, LibraryError) as error:
        fail_usage(str(error))
    if as_json:
        emit_json(summary)
    else:
        _print_check(summary)
    raise typer.Exit(EXIT_OK if summary["status"] == "verified" else EXIT_FAILED)


def _check_summary(program: Path, task: Any, backend: str, outcome: Any) -> dict[str, Any]:
    from autoconn.checking import output_kind_problem

    result = outcome.result
    problem = output_kind_problem(task, result) if result.ok else ""
    return {
        "status": "verified" if outcome.passed and not problem else "failed",
        "program": str(program),
        "task": task.path,
        "sandbox": backend,
        "stage": result.stage,
        "error": result.error or problem,
        "size": result.size,
        "verification": outcome.verification.to_json() if outcome.verification else None,
        "seconds": round(result.seconds, 3),
    }


def _print_check(summary: dict[str, Any]) -> None:
    verification = summary.get("verification")
    if summary["status"] == "verified":
        size = summary["size"] or {}
        out.print(f"[green]verified[/]: {verification['correct']}/{verification['total']} examples "
                  f"(up to {verification['max_length']} tokens) with the compiled model; "
                  f"{size.get('layers')} layers, {size.get('parameters')} parameters")
        if summary.get("registered"):
            out.print(f"registered: {summary['registered']}")
        return
    if summary.get("stage"):
        out.print(f"[red]failed[/] at {summary['stage']}: {summary['error']}", markup=True, highlight=False)
        return
    if summary.get("error"):
        out.print(f"[red]failed[/]: {summary['error']}", highlight=False)
    if verification:
        out.print(f"[red]failed[/]: {verification['correct']}/{verification['total']} examples right; first failures:")
        for failure in verification["failures"][:5]:
            out.print(f"  input {failure['input']}\n    expected {failure['expected']}\n    got      {failure['got']}", highlight=False)


@app.command("list")
def list_conns(
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the index as JSON."),
) -> None:
    """List the registered CoNNs."""
    try:
        index = Library(out_dir).read_index()
    except LibraryError as error:
        fail_usage(str(error))
    if as_json:
        emit_json(index["conns"])
        return
    table = Table(title=f"CoNNs in {out_dir}")
    for column in ("name", "output", "max len", "layers", "params", "held-out", "found by"):
        table.add_column(column, no_wrap=True)
    for name, entry in index["conns"].items():
        accuracy = entry.get("heldout_accuracy")
        kind = {"categorical": "cat", "numerical": "num"}.get(str(entry.get("output_kind")), "?")
        shape = {"sequence": "seq", "broadcast": "one"}.get(str(entry.get("output_shape")), "?")
        table.add_row(name, f"{kind}/{shape}", str(entry.get("max_seq_len")), str(entry.get("layers")),
                      f"{entry.get('parameters'):,}" if entry.get("parameters") is not None else "?",
                      f"{100 * accuracy:.0f}% of {entry.get('heldout_examples')}" if accuracy is not None else "?",
                      str(entry.get("inducer")))
    out.print(table)
    if not index["conns"]:
        out.print(f"(empty: register one with `autoconn check PROGRAM.py TASK.jsonl --register NAME`)")


@app.command()
def show(
    name: str = typer.Argument(..., help="A registered CoNN."),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    as_json: bool = typer.Option(False, "--json", help="Print conn.json."),
) -> None:
    """Show a CoNN: its metadata, where it came from, and its program."""
    try:
        entry = Library(out_dir).get(name)
    except LibraryError as error:
        fail_usage(str(error))
    if as_json:
        emit_json(entry.meta | {"program": str(entry.program_path)})
        return
    meta = entry.meta
    size, ver, prov = meta.get("size") or {}, meta.get("verification") or {}, meta.get("provenance") or {}
    out.print(f"[bold]{name}[/]: {meta.get('description') or ''}")
    out.print(f"  program:   {entry.program_path}")
    out.print(f"  vocab:     {meta.get('vocab')}   output: {meta.get('output_kind')}/{meta.get('output_shape')}")
    out.print(f"  compiled:  max_seq_len {meta.get('max_seq_len')}, {size.get('layers')} layers, {size.get('heads')} heads, "
              f"residual {size.get('residual_width')}, {size.get('parameters')} parameters")
    out.print(f"  verified:  {ver.get('correct')}/{ver.get('total')} held-out examples, up to {ver.get('max_length')} tokens")
    out.print(f"  found by:  {prov.get('inducer')}" + (f" (run {prov['run_id']}: {prov.get('run_log')})" if prov.get("run_id") else ""))
    fusion = meta.get("fusion") or {}
    out.print(f"  fusion:    {fusion.get('operand_start')}OPERAND{fusion.get('trigger')} (split {fusion.get('split')})" if fusion
              else f"  fusion:    not set (autoconn register {name})", highlight=False, markup=False)
    out.print("")
    out.print(entry.program_path.read_text(encoding="utf-8"), highlight=False, markup=False)


@app.command()
def run(
    name: str = typer.Argument(..., help="A registered CoNN."),
    tokens: Optional[list[str]] = typer.Argument(None, help="Input tokens, e.g. `a b c` (a single word is split into characters if the vocab is single characters)."),
    input_file: Optional[Path] = typer.Option(None, "--input-file", help="Inputs, one per line (tokens as on the command line, or a JSON list); '-' reads stdin. One output line each."),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    as_json: bool = typer.Option(False, "--json", help="Print {input, output} as JSON (one object per line with --input-file)."),
) -> None:
    """Run a registered CoNN on one input (or a file of them), from its stored weights (no recompiling, no jax for small batches)."""
    from autoconn.conn.runtime import ConnInputError

    try:
        entry = Library(out_dir).get(name)
    except LibraryError as error:
        fail_usage(str(error))
    vocab = entry.spec.vocab
    if (input_file is None) == (not tokens):
        fail_usage("give the input tokens or --input-file FILE (not both)")
    batch, where = _read_inputs(input_file, vocab) if input_file is not None else ([_parse_words(tokens, vocab)], [""])
    try:
        runtime = entry.runtime()
        outputs = runtime.run(batch)
    except (ConnInputError, LibraryError) as error:
        row = getattr(error, "row", None)
        fail_usage(f"{name}: {where[row] if row is not None else ''}{error}")
    if input_file is not None:
        lines = (json.dumps({"name": name, "input": i, "output": o}, default=str) if as_json else " ".join(map(_format_value, o))
                 for i, o in zip(batch, outputs))
        sys.stdout.write("".join(line + "\n" for line in lines))
    elif as_json:
        emit_json({"name": name, "input": batch[0], "output": outputs[0]})
    else:
        out.print(" ".join(_format_value(v) for v in outputs[0]), highlight=False)


def _parse_words(words: list[str], vocab: list[Any], cache: Optional[dict[str, Any]] = None) -> list[Any]:
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
    batch, where, cache = [], [], {}
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


@app.command("register")
def register_fusion(
    name: str = typer.Argument(..., help="A registered CoNN."),
    trigger: Optional[str] = typer.Option(None, "--trigger", help=TRIGGER_HELP),
    operand_start: Optional[str] = typer.Option(None, "--operand-start", help=OPERAND_START_HELP),
    split: Optional[str] = typer.Option(None, "--split", help=SPLIT_HELP),
    output_positions: Optional[str] = typer.Option(None, "--output-positions", help=POSITIONS_HELP),
    output_join: Optional[str] = typer.Option(None, "--output-join", help=JOIN_HELP),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the new fusion spec as JSON."),
) -> None:
    """Set how a registered CoNN is called from text: the defaults plus the flags given (replaces the old spec)."""
    from autoconn.fusion.metadata import FusionSpecError, build_spec, output_facts, spec_of_meta

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


@app.command()
def fuse(
    prompt: str = typer.Argument(..., help="The text the language model continues."),
    conns: list[str] = typer.Option([], "--conn", help="A registered CoNN to fuse (repeatable)."),
    lm: str = typer.Option("demo", "--lm", help="demo (the in-process character LM) or openai (a chat model over an OpenAI-compatible API)."),
    model: Optional[str] = typer.Option(None, "--model", help="With --lm openai: the model (default: $AUTOCONN_MODEL)."),
    base_url: Optional[str] = typer.Option(None, "--base-url", help="With --lm openai: the API base URL (default: $OPENAI_BASE_URL)."),
    max_new: int = typer.Option(64, "--max-new", help="demo: characters to generate; openai: max tokens per request."),
    out_dir: Path = typer.Option(Path("generated_conns"), "--out", help="Library folder."),
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
        fused = load_fused_conns(conns, Library(out_dir))
    except (LibraryError, FusionSpecError) as error:
        fail_usage(str(error))
    if lm == "demo":
        from autoconn.fusion.token_level import fuse_decode_one

        try:
            from autoconn.fusion.demo_lm import load_demo_lm
            char_lm = load_demo_lm()
        except (ImportError, OSError, ValueError, RuntimeError) as error:  # DemoLMError is a RuntimeError
            fail_usage(f"the demo LM cannot be loaded: {error}")
        result: Any = fuse_decode_one(char_lm, fused, prompt, max_new_chars=max_new)
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
            raise typer.Exit(EXIT_FAILED)
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
        err.print(f"[green]{span.conn}[/] wrote {result.completion[span.start:span.end]!r} (characters {span.start}-{span.end})", highlight=False)
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
    base: Optional[str] = typer.Option(None, "--base", help="Base image (default: python:3.11-slim when reachable, else the local debootstrap base)."),
) -> None:
    """Build the Docker image the sandbox runs candidates in (no registry needed)."""
    from autoconn.sandbox import build_image

    tag = build_image(base=base)
    out.print(f"built {tag}")


def main() -> None:  # pragma: no cover - console entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
