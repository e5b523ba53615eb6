"""Ordinary behaviour of both backends: right answers, precise errors, weights, protocol."""

from __future__ import annotations

import time

import numpy as np
import pytest

from autoconn.conn.runtime import ConnRuntime, ConnSpec
from autoconn.sandbox import Job, JobResult, SandboxUnavailable, open_sandbox, sandbox_status
from tests.sandbox.conftest import INPUTS, REVERSE, assert_good_run, leftovers, make_job

FRAC_PREVS = """\
from tracr.rasp import rasp
is_a = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, rasp.tokens))
prevs = rasp.Select(rasp.indices, rasp.indices, rasp.Comparison.LEQ)
program = rasp.numerical(rasp.Aggregate(prevs, is_a, default=0))
"""


def test_reverse_is_ok_and_weights_load(sandbox: object) -> None:
    result = sandbox.run(make_job(REVERSE, "reverse"))  # type: ignore[attr-defined]
    expected = [list(reversed(x)) for x in INPUTS]
    assert result.ok and result.stage is None and result.error == ""
    assert result.rasp_outputs == expected
    assert result.model_outputs == expected
    assert result.output_encoding == "categorical"
    assert result.size and result.size["layers"] >= 1 and result.size["parameters"] > 0
    assert result.backend == sandbox.backend  # type: ignore[attr-defined]
    runtime = ConnRuntime.load(result.weights_path, ConnSpec.from_json(result.spec))
    assert runtime.run(INPUTS) == expected


def test_numerical_program(sandbox: object) -> None:
    result = sandbox.run(make_job(FRAC_PREVS, "frac"))  # type: ignore[attr-defined]
    assert result.ok, result.error
    assert result.output_encoding == "numerical"
    for want, got in zip(result.rasp_outputs, result.model_outputs):
        assert np.allclose(want, got, atol=1e-3)


def test_compile_error_carries_tracrs_reason(sandbox: object) -> None:
    source = """\
from tracr.rasp import rasp
num = rasp.numerical(rasp.Map(lambda t: 1 if t == "a" else 0, rasp.tokens))
program = rasp.numerical(rasp.SequenceMap(lambda x, y: x * y, num, num))
"""
    result = sandbox.run(make_job(source, "badsel"))  # type: ignore[attr-defined]
    assert not result.ok and result.stage == "compile", (result.stage, result.error)
    assert result.error.startswith("NotImplementedError") and "SequenceMap" in result.error, result.error
    assert result.rasp_outputs is not None  # it evaluated before it failed to compile


def test_map_returning_none_is_reported(sandbox: object) -> None:
    source = "from tracr.rasp import rasp\nprogram = rasp.Map(lambda t: None if t == 'b' else t, rasp.tokens)\n"
    result = sandbox.run(make_job(source, "none"))  # type: ignore[attr-defined]
    assert result.stage == "evaluate"
    assert "returned None" in result.error and "line 2" in result.error


def test_map_returning_none_at_compile_time_is_reported(sandbox: object) -> None:
    """The inputs never hold 'c', but tracr calls the Map on 'c' while compiling."""
    source = "from tracr.rasp import rasp\nprogram = rasp.Map(lambda t: {'a': 'x', 'b': 'y'}.get(t), rasp.tokens)\n"
    result = sandbox.run(make_job(source, "none-compile", inputs=[["a", "b"]]))  # type: ignore[attr-defined]
    assert result.stage == "compile", (result.stage, result.error)
    assert "returned None for 'c'" in result.error and "line 2" in result.error


def test_categorical_aggregate_selecting_many_is_reported(sandbox: object) -> None:
    source = ("from tracr.rasp import rasp\n"
              "everything = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.TRUE)\n"
              "program = rasp.Aggregate(everything, rasp.tokens)\n")
    result = sandbox.run(make_job(source, "multi"))  # type: ignore[attr-defined]
    assert result.stage == "evaluate"
    assert "selects" in result.error and "exactly one" in result.error


def test_exec_error_names_the_line(sandbox: object) -> None:
    source = "from tracr.rasp import rasp\nx = 1\ny = x / 0\nprogram = rasp.tokens\n"
    result = sandbox.run(make_job(source, "zero"))  # type: ignore[attr-defined]
    assert result.stage == "exec"
    assert result.error.startswith("ZeroDivisionError") and "line 3" in result.error


def test_missing_program_and_wrong_type(sandbox: object) -> None:
    missing = sandbox.run(make_job("from tracr.rasp import rasp\nx = rasp.tokens\n", "missing"))  # type: ignore[attr-defined]
    assert missing.stage == "exec" and "program" in missing.error
    selector = sandbox.run(make_job(  # type: ignore[attr-defined]
        "from tracr.rasp import rasp\nprogram = rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ)\n", "sel"))
    assert selector.stage == "exec" and "Selector" in selector.error


def test_printing_candidate_does_not_break_the_protocol(sandbox: object) -> None:
    noisy = 'print("{\\"type\\": \\"result\\"}")\nfor i in range(2000):\n    print("noise", i, "x" * 100)\n' + REVERSE
    result = sandbox.run(make_job(noisy, "noisy"))  # type: ignore[attr-defined]
    assert result.ok, result.error
    assert result.model_outputs == [list(reversed(x)) for x in INPUTS]
    assert result.log.startswith('{"type": "result"}') and "more characters of output dropped" in result.log
    assert len(result.log) < 6000


def test_run_many_and_job_ids_are_kept(sandbox: object) -> None:
    jobs = [make_job(REVERSE, "weird id/with spaces"), make_job("import os\n", "second"), make_job(FRAC_PREVS, "third")]
    results = sandbox.run_many(jobs)  # type: ignore[attr-defined]
    assert [r.job_id for r in results] == ["weird id/with spaces", "second", "third"]
    assert [r.ok for r in results] == [True, False, True]
    assert results[1].stage == "screen"


def test_result_is_json_round_trippable(sandbox: object) -> None:
    result = sandbox.run(make_job(REVERSE, "json"))  # type: ignore[attr-defined]
    again = JobResult.from_json(result.to_json())
    assert again == result
    assert Job.from_json(make_job(REVERSE).to_json()) == make_job(REVERSE)


@pytest.mark.parametrize("kind", ["process", pytest.param("docker", marks=pytest.mark.docker)])
def test_close_leaves_nothing_behind(kind: str) -> None:
    from tests.sandbox.conftest import _docker_or_fail

    if kind == "docker":
        _docker_or_fail()
    sandbox = open_sandbox(kind)
    result = sandbox.run(make_job("while True:\n    pass\n", "loop", timeout=1))
    assert result.stage == "timeout"
    assert leftovers(sandbox) == []
    worker = sandbox._worker
    out_dir = sandbox.out_dir
    sandbox.close()
    assert not out_dir.exists()
    if kind == "docker":
        import docker

        client = docker.from_env()
        session = sandbox._backend.session
        assert client.containers.list(all=True, filters={"label": f"autoconn.sandbox.session={session}"}) == []
        client.close()
    else:
        time.sleep(0.2)
        assert worker is None or worker.popen.poll() is not None
        assert leftovers(sandbox) == []


def test_docker_unavailable_is_a_clear_error() -> None:
    with pytest.raises(SandboxUnavailable) as info:
        open_sandbox("docker", image="autoconn-sandbox:no-such-tag")
    assert "docker sandbox unavailable" in str(info.value)
    with pytest.raises(SandboxUnavailable):
        open_sandbox("kubernetes")


def test_status_explains_the_choice() -> None:
    status = sandbox_status()
    assert status["auto"] in ("docker", "process")
    assert status["reason"]
    assert {"usable", "engine", "image_present", "reason"} <= set(status["docker"])
    assert {"network", "filesystem", "mode"} <= set(status["process"])


def test_after_tampering_the_worker_is_replaced() -> None:
    from tests.sandbox.conftest import get_sandbox

    sandbox = get_sandbox("process")
    before = sandbox.workers_started
    source = "import builtins\nbuiltins.abs = lambda x: 42\nfrom tracr.rasp import rasp\nprogram = rasp.tokens\n"
    result = sandbox.run(make_job(source, "tamper", screen=False))
    assert result.stage == "exec" and "changed the interpreter" in result.error
    assert sandbox.workers_started == before + 1
    assert_good_run(sandbox)


def test_a_worker_without_prewarm_passes_its_first_good_job() -> None:
    """The host runtime's lazy BLAS lookup used to happen inside the first job, and the worker's
    integrity check took it for tampering; the prewarm hid it. The worker now fills it first."""
    with open_sandbox("process", prewarm=False) as box:
        result = box.run(make_job(REVERSE, "first"))
    assert result.ok, result.error
    assert result.model_outputs == [list(reversed(x)) for x in INPUTS]
