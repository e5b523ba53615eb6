"""Hostile candidates, through both backends: each is contained, reported as a clean failure
(stage + reason), leaves the host unharmed (canary intact and unread, no connection at the
listener, no leftover process or container), and the next job on the same sandbox works.

Cases marked screen=False skip the static screen on purpose (Job.screen is a test-only
switch): they test the OS walls, not the screen. Cases with screen=True must be stopped by
the screen or pass it and still be contained (harm done by Map lambdas at compile time).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pytest

from tests.sandbox.conftest import (
    BACKENDS,
    REVERSE,
    assert_good_run,
    canary_intact,
    get_sandbox,
    host_addresses,
    leftovers,
    make_job,
)

pytestmark = pytest.mark.slow  # every test starts or restarts sandbox workers


@dataclass(frozen=True)
class Hostile:
    name: str
    source: str
    stages: tuple[str, ...]  # acceptable failure stages
    screen: bool = True
    timeout: float = 30.0
    inputs: tuple = (("a", "b"),)
    vocab: tuple = ("a", "b", "z")
    must_mention: str = ""  # a word the error must contain


MATCH_WALK = """\
from tracr.rasp import rasp
match ():
    case object(__class__=c):
        pass
match c:
    case object(__base__=base):
        pass
match base:
    case object(__subclasses__=subclasses):
        pass
out = "no popen found"
for k in subclasses():
    match k:
        case object(__name__="_wrap_close", __init__=init):
            match init:
                case object(__globals__=g):
                    out = g["popen"]("touch {marker}; cat {canary}; id -u; unshare -Ur id 2>&1").read()
raise RuntimeError("walk finished: " + out)
"""

CASES = [
    Hostile("network_connect", """\
import socket
for host in {hosts!r}:
    try:
        s = socket.create_connection((host, {port}), timeout=2)
        s.sendall(b"escaped")
        s.close()
        print("connected to", host)
    except OSError as err:
        print("blocked", host, err)
raise RuntimeError("network attempt finished")
""", ("exec",), screen=False),
    Hostile("network_screened", "import socket\nsocket.create_connection(('127.0.0.1', {port}))\n", ("screen",),
            must_mention="socket"),
    Hostile("read_canary", """\
data = open({canary!r}).read()
raise ValueError("stolen: " + data)
""", ("exec",), screen=False),
    Hostile("write_canary", """\
for path in ({canary!r}, {marker!r}):
    try:
        with open(path, "w") as handle:
            handle.write("owned")
    except OSError as err:
        print("blocked", err)
raise RuntimeError("write attempt finished")
""", ("exec",), screen=False),
    Hostile("open_screened", "data = open({canary!r}).read()\n", ("screen",), must_mention="open"),
    Hostile("os_system_subprocess", """\
import os, subprocess
os.system("touch {marker}")
try:
    subprocess.run(["sh", "-c", "echo owned > {marker}; cat {canary}"], timeout=5)
except Exception as err:
    print(err)
raise RuntimeError("shell attempt finished")
""", ("exec",), screen=False),
    Hostile("ctypes_libc", """\
import ctypes
libc = ctypes.CDLL(None)
libc.system(b"touch {marker}")
ctypes.string_at(0)
""", ("crash", "exec", "limit"), screen=False),
    Hostile("ctypes_screened", "import ctypes\nctypes.string_at(0)\n", ("screen",), must_mention="ctypes"),
    Hostile("fork_bomb", """\
import os
while True:
    try:
        os.fork()
    except OSError:
        pass
""", ("timeout", "crash", "limit"), screen=False, timeout=4),
    Hostile("memory_bomb", "x = [1] * (10 ** 9)\n", ("limit",), timeout=60),
    Hostile("endless_loop", "while True:\n    pass\n", ("timeout",), timeout=3, must_mention="3 s"),
    Hostile("endless_output", "while True:\n    print('x' * 10000)\n", ("timeout",), timeout=3),
    Hostile("signal_tricks", """\
import os, signal
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):
    signal.signal(sig, signal.SIG_IGN)
for pid in ({pid}, os.getppid(), 1):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError as err:
        print("kill", pid, err)
while True:
    pass
""", ("timeout", "crash", "limit"), screen=False, timeout=3),
    Hostile("sys_builtins_tampering", """\
import sys, builtins
builtins.len = lambda x: 0
sys.modules["tracr.rasp.rasp"] = None
import tracr.compiler.lib
tracr.compiler.lib.make_length = None
from tracr.rasp import rasp
program = rasp.Map(lambda x: x, rasp.tokens)
""", ("exec", "evaluate"), screen=False),
    Hostile("patch_tracr_screened", "from tracr.rasp import rasp\nrasp.Map = None\nprogram = rasp.tokens\n", ("screen",)),
    Hostile("os_through_tracr_screened", "from tracr.rasp import rasp\nrasp.logging.os.system('touch {marker}')\n",
            ("screen",), must_mention="logging"),
    Hostile("os_through_tracr_numpy_screened", "import tracr.rasp.rasp as r\nr.np.lib.format.os.system('touch {marker}')\n",
            ("screen",), must_mention="numpy"),
    Hostile("os_through_tracr_unscreened", """\
from tracr.rasp import rasp
rasp.logging.os.system("touch {marker}; cat {canary}")
rasp.np.lib.format.os.remove({canary!r})
""", ("exec",), screen=False),
    Hostile("dunder_walk_screened", "x = ().__class__.__base__.__subclasses__()\n", ("screen",), must_mention="__class__"),
    Hostile("eval_screened", "program = eval('1')\n", ("screen",), must_mention="eval"),
    # issue 12: the screen walk-around through match class patterns, with the screen on (refused
    # there) and off (the OS walls must hold: popen runs, but sees nothing of the host)
    Hostile("match_pattern_walk_screened", MATCH_WALK, ("screen",), must_mention="match"),
    Hostile("match_pattern_walk_unscreened", MATCH_WALK, ("exec",), screen=False),
    # passes the screen: harm done only when tracr calls the lambda on vocab values the inputs never had
    Hostile("compile_time_memory_bomb", """\
from tracr.rasp import rasp
def f(t):
    if t == "z":
        return len([1] * (10 ** 9))
    return 1
program = rasp.Map(f, rasp.tokens)
""", ("limit",), timeout=60),
    Hostile("compile_time_endless_loop", """\
from tracr.rasp import rasp
def f(t):
    while t == "z":
        pass
    return t
program = rasp.Map(f, rasp.tokens)
""", ("timeout",), timeout=4, must_mention="compile"),
    Hostile("compile_time_endless_output", """\
from tracr.rasp import rasp
def f(t):
    while t == "z":
        print("spam" * 1000)
    return t
program = rasp.Map(f, rasp.tokens)
""", ("timeout",), timeout=4),
    Hostile("compile_time_os_unscreened", """\
from tracr.rasp import rasp
def f(t):
    if t == "z":
        import os
        os.system("touch {marker}")
        open({canary!r}, "w").write("owned")
    return t
program = rasp.Map(f, rasp.tokens)
""", ("compile",), screen=False),
    Hostile("deeply_nested_source", "x = " + "-" * 400 + "1\n", ("screen",), must_mention="nest"),
    Hostile("huge_source", "x = 1\n" * 12000, ("screen",), must_mention="KB"),
    Hostile("huge_program_graph", """\
from tracr.rasp import rasp
x = rasp.tokens
for i in range(3000):
    x = rasp.Map(lambda v: v, x)
program = x
""", ("timeout", "evaluate", "compile", "limit"), timeout=6),
    Hostile("protocol_forgery", """\
import os
for fd in range(0, 40):
    try:
        os.write(fd, b'{{"type": "result", "result": {{"job_id": "j1", "ok": true}}, "recycle": []}}\\n')
    except OSError:
        pass
raise RuntimeError("forgery attempt finished")
""", ("exec", "crash"), screen=False),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_candidate_is_contained(backend: str, case: Hostile, canary: dict, listener: object) -> None:
    sandbox = get_sandbox(backend)
    if not case.screen:
        sandbox.recycle()  # hostile cases that reach the OS get a fresh worker
    source = case.source.format(canary=canary["path"], marker=canary["marker"], port=listener.port,  # type: ignore[attr-defined]
                                hosts=host_addresses(), pid=os.getpid())
    job = make_job(source, f"hostile-{case.name}", inputs=[list(x) for x in case.inputs], vocab=list(case.vocab),
                   timeout=case.timeout, screen=case.screen)
    started = time.monotonic()
    result = sandbox.run(job)
    elapsed = time.monotonic() - started
    # a clean failure, with a stage and a reason
    assert not result.ok, f"{case.name} was not stopped: {result}"
    assert result.stage in case.stages, (result.stage, result.error)
    assert result.error and len(result.error) < 2000
    assert result.job_id == job.job_id
    if case.must_mention:
        assert case.must_mention in result.error, result.error
    assert elapsed < case.timeout + 60, elapsed
    # the host is unharmed
    canary_intact(canary)
    assert canary["secret"] not in json.dumps(result.to_json()), "the canary's content leaked into the result"
    assert listener.connections == [], f"a connection reached the host: {listener.connections}"  # type: ignore[attr-defined]
    assert len(result.log) < 6000
    # the same sandbox still works, and only its current worker is alive
    assert_good_run(sandbox)
    assert leftovers(sandbox) == []


UNSHARE_CASES = [c for c in CASES if c.name in ("network_connect", "read_canary", "write_canary", "os_system_subprocess",
                                                 "fork_bomb", "endless_loop", "memory_bomb")]


@pytest.mark.parametrize("case", UNSHARE_CASES, ids=[c.name for c in UNSHARE_CASES])
def test_hostile_process_without_bubblewrap(case: Hostile, canary: dict, listener: object) -> None:
    """The process backend's fallback walls (unshare + nobody + rlimits) hold on their own."""
    from autoconn.sandbox.process import probe_wrappers

    if not probe_wrappers()["unshare"]:
        pytest.skip("unshare is not permitted here: " + probe_wrappers().get("unshare_error", ""))
    test_hostile_candidate_is_contained("process-unshare", case, canary, listener)


def test_good_program_after_many_failures_on_one_sandbox() -> None:
    sandbox = get_sandbox("process")
    for index in range(2):
        bad = sandbox.run(make_job("while True:\n    pass\n", f"loop{index}", timeout=1))
        assert bad.stage == "timeout"
        good = sandbox.run(make_job(REVERSE, f"good{index}"))
        assert good.ok, good.error
