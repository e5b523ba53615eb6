"""Issue 12: each backend holds without the static screen.

Candidates here run with Job.screen=False (test-only switch: no screen, full builtins), so
they reach the OS directly. The process backend must refuse new namespaces, ptrace and mounts
(seccomp), give each worker its own uid (so its process limit counts only its own processes)
and show a minimal read-only file system; Docker must run with its default seccomp profile
and no-new-privileges, and leave no container behind. Each wall is also shown alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from autoconn.sandbox import open_sandbox
from tests.sandbox.conftest import REVERSE, assert_good_run, get_sandbox, leftovers, make_job

pytestmark = pytest.mark.slow  # every test starts or restarts sandbox workers

REPO = Path(__file__).resolve().parents[2]

# Reports what the kernel answered to each escape attempt, as JSON in its (captured) output.
PROBE = '''\
import ctypes, json, os, subprocess
libc = ctypes.CDLL(None, use_errno=True)
found = {}
def attempt(name, call):
    ctypes.set_errno(0)
    result = call()
    found[name] = [result, ctypes.get_errno()]
attempt("unshare_user", lambda: libc.unshare(0x10000000))
attempt("unshare_mount", lambda: libc.unshare(0x00020000))
attempt("unshare_net", lambda: libc.unshare(0x40000000))
attempt("mount_tmpfs", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
attempt("ptrace_traceme", lambda: libc.ptrace(0, 0, None, None))
attempt("ptrace_attach_parent", lambda: libc.ptrace(16, os.getppid(), None, None))
try:
    done = subprocess.run(["unshare", "-Ur", "id", "-u"], capture_output=True, text=True, timeout=10)
    found["unshare_cli"] = [done.returncode, done.stdout.strip() + done.stderr.strip()[-120:]]
except OSError as err:
    found["unshare_cli"] = [-1, str(err)]
status = {}
for line in open("/proc/self/status"):
    key, _, value = line.partition(":")
    if key in ("Seccomp", "NoNewPrivs", "Uid", "CapEff"):
        status[key] = value.split()[0]
found["status"] = status
found["etc"] = sorted(os.listdir("/etc"))
found["visible"] = {p: os.path.exists(p) for p in {paths!r}}
found["site"] = sorted(os.listdir("/opt/site-packages")) if os.path.isdir("/opt/site-packages") else None
import resource
found["nproc"] = resource.getrlimit(resource.RLIMIT_NPROC)
print("PROBE" + json.dumps(found, separators=(",", ":")) + "END")
raise RuntimeError("probe done")
'''

EPERM = 1


def probe(sandbox: Any, paths: list[str] | None = None, ptrace: bool = True) -> dict[str, Any]:
    source = PROBE.replace("{paths!r}", repr(paths or []))
    if not ptrace:  # Docker's default profile allows ptrace of oneself (kernel >= 4.8): not asked of it
        source = "\n".join(line for line in source.splitlines() if "ptrace" not in line) + "\n"
    result = sandbox.run(make_job(source, "probe", screen=False, timeout=60))
    assert not result.ok and result.stage == "exec", (result.stage, result.error)
    text = result.log
    return json.loads(text[text.index("PROBE") + 5:text.index("END")])


def assert_walls(found: dict[str, Any]) -> None:
    for name in ("unshare_user", "unshare_mount", "unshare_net", "mount_tmpfs", "ptrace_traceme", "ptrace_attach_parent"):
        result, errno = found[name]
        assert result == -1 and errno == EPERM, (name, found[name])
    assert found["unshare_cli"][0] != 0, found["unshare_cli"]
    assert found["status"]["Seccomp"] == "2" and found["status"]["NoNewPrivs"] == "1", found["status"]


HOST_PATHS = [sys.prefix, os.path.join(sys.prefix, "pyvenv.cfg"), str(REPO), str(REPO / ".git"), "/etc/passwd",
              "/etc/shadow", "/root/.ssh", "/var/cache/apt", "/var/lib/dpkg", "/home"]


@pytest.fixture(params=["bwrap", "no-bwrap"])
def process_sandbox(request: pytest.FixtureRequest) -> Any:
    from autoconn.sandbox.process import probe_wrappers

    if request.param == "bwrap":
        if not probe_wrappers()["bwrap"]:
            pytest.skip("bubblewrap is not usable here")
        box = get_sandbox("process")
    else:
        if not probe_wrappers()["unshare"]:
            pytest.skip("unshare is not permitted here")
        box = get_sandbox("process-unshare")
    box.recycle()  # a fresh worker for a hostile probe
    yield box
    box.recycle()


def test_process_backend_refuses_namespaces_ptrace_and_mount_without_the_screen(process_sandbox: Any) -> None:
    found = probe(process_sandbox, HOST_PATHS)
    assert_walls(found)
    assert_good_run(process_sandbox)
    assert leftovers(process_sandbox) == []


def test_process_backend_worker_has_its_own_uid_and_a_minimal_view() -> None:
    from autoconn.sandbox.process import RUN_UID_BASE, probe_wrappers

    if os.geteuid() != 0 or not probe_wrappers()["bwrap"]:
        pytest.skip("needs root and bubblewrap")
    box = get_sandbox("process")
    box.recycle()
    first = probe(box, HOST_PATHS)
    box.recycle()
    second = probe(box, HOST_PATHS)
    box.recycle()
    uids = [int(first["status"]["Uid"]), int(second["status"]["Uid"])]
    assert all(uid >= RUN_UID_BASE for uid in uids) and uids[0] != uids[1], uids
    assert first["status"]["CapEff"] == "0000000000000000"
    assert first["nproc"][0] <= 1024
    # nothing else on the host runs as the worker's uid: RLIMIT_NPROC counts only its processes
    others = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    others.append(entry)
            except OSError:
                pass
    current = box._worker  # the worker started by the last recycle has a fresh uid again
    assert current is None or current.uid not in uids
    assert others == [], others
    # the view: /etc holds only the linker cache; no host virtualenv, checkout, secrets
    assert first["etc"] == ["ld.so.cache"], first["etc"]
    assert not any(first["visible"].values()), first["visible"]
    site = set(first["site"])
    assert {"jax", "jaxlib", "tracr", "numpy", "haiku"} <= site
    assert not site & {"pip", "pytest", "docker", "langgraph", "openai", "typer", "autoconn"}, sorted(site)


def test_fork_bomb_of_one_worker_does_not_starve_another() -> None:
    """Two process sandboxes at once: one runs a fork bomb, the other compiles meanwhile.
    (The bomb runs on this thread: a worker replaced from a short-lived thread would die with
    it - bubblewrap's --die-with-parent follows the thread that started it.)"""
    import threading
    import time

    box = get_sandbox("process")
    box.recycle()
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    with open_sandbox("process") as other:
        other.warm_up()
        results: dict[str, Any] = {}

        def good() -> None:
            time.sleep(3)  # the bomb is going by then
            results["good"] = other.run(make_job(REVERSE, "good"))

        thread = threading.Thread(target=good)
        thread.start()
        results["bomb"] = box.run(make_job(bomb, "bomb", screen=False, timeout=10))
        thread.join()
    assert results["bomb"].stage in ("timeout", "limit", "crash"), results["bomb"]
    assert results["good"].ok, (results["good"].stage, results["good"].error)
    assert_good_run(box)


def test_seccomp_filter_alone_refuses_even_root() -> None:
    """The filter on its own (no namespaces, no uid drop, no bubblewrap): as root, the same
    calls succeed without it and fail with it."""
    from autoconn.sandbox import seccomp

    if not seccomp.supported() or os.geteuid() != 0:
        pytest.skip("needs x86_64 and root")
    script = ("import ctypes, json, os, subprocess, sys\n"
              "from autoconn.sandbox import seccomp\n"
              "if sys.argv[1] == 'on':\n    seccomp.install()\n"
              "libc = ctypes.CDLL(None, use_errno=True)\n"
              "out = {}\n"
              "pid = os.fork()\n"
              "if pid == 0:\n"
              "    r = libc.unshare(0x00020000 | 0x40000000)\n"
              "    r2 = libc.mount(b'none', b'/mnt', b'tmpfs', 0, None) if r == 0 else -1\n"
              "    os._exit(0 if r == 0 and r2 == 0 else 3)\n"
              "out['unshare_mount'] = os.waitpid(pid, 0)[1] >> 8\n"
              "child = subprocess.Popen(['sleep', '5'])\n"
              "out['ptrace'] = libc.ptrace(16, child.pid, None, None)\n"
              "child.kill()\n"
              "print(json.dumps(out))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    off = json.loads(subprocess.run([sys.executable, "-c", script, "off"], capture_output=True, text=True, env=env,
                                    check=True).stdout)
    on = json.loads(subprocess.run([sys.executable, "-c", script, "on"], capture_output=True, text=True, env=env,
                                   check=True).stdout)
    assert off == {"unshare_mount": 0, "ptrace": 0}, off
    assert on == {"unshare_mount": 3, "ptrace": -1}, on


def test_without_seccomp_the_uid_and_namespaces_still_refuse_mount_and_host_ptrace() -> None:
    """The other walls alone (seccomp switched off for this test): the worker's uid has no
    capabilities, so mounting fails, and the pid namespace hides host processes."""
    from autoconn.sandbox.process import probe_wrappers

    if os.geteuid() != 0 or not probe_wrappers()["bwrap"]:
        pytest.skip("needs root and bubblewrap")
    with open_sandbox("process", seccomp=False) as box:
        host_pid = os.getpid()
        source = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
                  "seccomp = [l.split()[1] for l in open('/proc/self/status') if l.startswith('Seccomp:')][0]\n"
                  "ctypes.set_errno(0)\nm = libc.mount(b'none', b'/tmp', b'tmpfs', 0, None)\nme = ctypes.get_errno()\n"
                  f"ctypes.set_errno(0)\np = libc.ptrace(16, {host_pid}, None, None)\npe = ctypes.get_errno()\n"
                  "raise RuntimeError('WALLS %s %d %d %d %d' % (seccomp, m, me, p, pe))\n")
        result = box.run(make_job(source, "walls", screen=False))
    assert result.stage == "exec", (result.stage, result.error)
    seccomp, mount, mount_errno, ptrace, ptrace_errno = result.error.split("WALLS ")[1].split()[:5]
    assert seccomp == "0"  # the switch really turned the filter off
    assert (mount, mount_errno) == ("-1", "1")  # EPERM: the worker's own uid has no capabilities
    assert ptrace == "-1" and ptrace_errno in ("1", "3")  # ESRCH: host processes are not visible (pid namespace)


@pytest.mark.docker
def test_docker_runs_with_seccomp_and_no_new_privileges() -> None:
    box = get_sandbox("docker")
    box.recycle()
    found = probe(box, ptrace=False)
    box.recycle()
    assert found["status"]["Seccomp"] == "2" and found["status"]["NoNewPrivs"] == "1", found["status"]
    assert found["status"]["CapEff"] == "0000000000000000"
    for name in ("unshare_user", "unshare_mount", "mount_tmpfs"):
        assert found[name][0] == -1, (name, found[name])
    assert found["unshare_cli"][0] != 0
    assert_good_run(box)


@pytest.mark.docker
def test_docker_kill_waits_until_the_container_is_gone() -> None:
    import docker

    from autoconn.sandbox.docker_backend import remove_container

    box = get_sandbox("docker")
    box.warm_up()
    container_id = box._worker.container.id
    box.recycle()
    client = docker.from_env()
    try:
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(container_id)
        remove_container(client, container_id)  # already gone: returns, no error
    finally:
        client.close()
    assert leftovers(box) == []
    assert_good_run(box)
