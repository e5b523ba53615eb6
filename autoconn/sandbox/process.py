"""Process backend: the worker in a child process, for machines without a Docker engine.

Walls, strongest available first (``isolation()`` says which are in force here). Each holds
on its own, without the static screen (tests/sandbox/test_walls.py runs candidates with the
screen switched off against each):
- bubblewrap (``bwrap --unshare-all``): new network, pid, ipc, uts and mount namespaces; the
  file system is a minimal read-only view: /usr and the library dirs, from /etc only the
  dynamic linker's cache, the Python installation, only the site-packages entries of the
  worker's runtime distributions (tracr, jax, jaxlib, dm-haiku, numpy and their
  dependencies) at a neutral path, the autoconn package, the JAX cache; a private writable
  work dir and a fresh /tmp. No host virtualenv (bin/, pyvenv.cfg, other packages) is visible;
- a seccomp filter (:mod:`autoconn.sandbox.seccomp`): no new namespaces, no ptrace, no
  mounts, no module loading, bpf, io_uring, keyrings... - given to bubblewrap (``--seccomp``)
  or installed by the worker itself before its first job when bubblewrap is missing;
- else ``unshare --net --pid --fork --kill-child`` (root) for no network and a pid
  namespace that dies with the worker;
- as root, every worker runs as its own fresh uid/gid (no passwd entry, no files), so
  RLIMIT_NPROC counts only that worker's processes (a fork bomb starves nobody else) and
  host files with private modes stay unreadable;
- always: rlimits (address space 4 GB - JAX aborts under ~2 GB - CPU seconds, processes,
  file size, open files, no core dumps), a scrubbed environment, a private temp work dir,
  its own session/process group, killed as a group on timeout.
"""

from __future__ import annotations

import fcntl
import functools
import os
import pwd
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from autoconn.sandbox.host import Backend, WorkerHandle, exit_text_for_signal, iter_chunks

ADDRESS_SPACE_BYTES = 4 * 1024**3
NPROC = 256  # threads count too: a warm JAX worker has ~20
FILE_SIZE_BYTES = 512 * 1024**2
OPEN_FILES = 1024
LIFETIME_CPU_SECONDS = 4 * 3600  # hard limit; the worker sets a per-job soft limit below it
SANDBOX_USER = "nobody"  # only for the probe; workers get a uid of their own (RUN_UID_BASE + random)
RUN_UID_BASE = 1_500_000_000  # far above any login or container uid range
RUN_UID_SPAN = 400_000_000
INSIDE_SITE = "/opt/site-packages"  # the runtime distributions' files appear here
# The worker's runtime: these distributions and what they require (the same set the image installs).
RUNTIME_DISTRIBUTIONS = ("tracr-pypi", "jax", "jaxlib", "dm-haiku", "numpy")
ETC_FILES = ("/etc/ld.so.cache",)  # all a Python process needs from /etc here
INSIDE_WORK = "/sandbox"  # where the private work dir appears inside bubblewrap
INSIDE_EXCHANGE = "/exchange"
INSIDE_SOURCES = "/opt/autoconn-src"  # the autoconn package appears at /opt/autoconn-src/autoconn


def _autoconn_root() -> Path:
    import autoconn

    return Path(autoconn.__file__).resolve().parent.parent


def cache_root() -> Path:
    """Where the trusted JAX cache for the process backend lives (readable by the sandbox user):
    AUTOCONN_CACHE_DIR, read now (autoconn.settings has the default)."""
    from autoconn.settings import load

    return load().cache_dir


def jax_cache_dir() -> Path:
    try:
        from importlib.metadata import version

        from autoconn.sandbox.worker import CACHE_RECIPE

        tag = (f"jax-{version('jax')}-tracr-{version('tracr-pypi')}-py{sys.version_info[0]}{sys.version_info[1]}"
               f"-{CACHE_RECIPE}")
    except Exception:  # noqa: BLE001
        tag = "jax"
    return cache_root() / tag


def _sandbox_ids() -> tuple[int, int] | None:
    """(uid, gid) to drop to when running as root; None when not root or no such user."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(SANDBOX_USER)
        return entry.pw_uid, entry.pw_gid
    except KeyError:
        return None


def _prlimit_args() -> list[str]:
    """util-linux prlimit sets the limits and execs the rest of the command (no preexec_fn:
    forking a JAX-loaded host with Python code in the child is what JAX warns about)."""
    return ["prlimit", f"--as={ADDRESS_SPACE_BYTES}", f"--cpu={LIFETIME_CPU_SECONDS}", f"--fsize={FILE_SIZE_BYTES}",
            f"--nofile={OPEN_FILES}", "--core=0", f"--nproc={NPROC}", "--"]


def _limits() -> None:
    """preexec_fn fallback when prlimit is missing: resource limits only."""
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (LIFETIME_CPU_SECONDS, LIFETIME_CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_BYTES, FILE_SIZE_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, NPROC))


SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")


def _requirement_names(requires: list[str] | None) -> list[str]:
    import re

    names = []
    for requirement in requires or []:
        if "extra ==" in requirement.replace("extra==", "extra =="):
            continue
        match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
        if match:
            names.append(match.group(1))
    return names


@functools.cache
def runtime_site_entries() -> tuple[tuple[str, str], ...]:
    """(host path, name) of every top-level site-packages entry (package dirs, modules,
    .libs, dist-info) of the worker's runtime distributions and their requirements."""
    from importlib.metadata import PackageNotFoundError, distribution

    seen: set[str] = set()
    todo = list(RUNTIME_DISTRIBUTIONS)
    entries: dict[str, str] = {}
    while todo:
        name = todo.pop().lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            continue
        todo.extend(_requirement_names(dist.requires))
        for file in dist.files or []:
            parts = file.parts
            if not parts or parts[0] in ("..", "") or parts[0].endswith(".pth") or parts[0] == "__pycache__":
                continue
            host = Path(str(dist.locate_file(parts[0])))
            if host.exists() and parts[0] not in entries:
                entries[parts[0]] = str(host)
    return tuple(sorted((host, top) for top, host in entries.items()))


def _base_python() -> str:
    """The interpreter of the installation (not a venv's bin/python): the worker finds its
    packages through PYTHONPATH, so nothing of the host virtualenv needs to be visible."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return base if os.path.exists(base) else sys.executable


def _bwrap_args(work: Path, cache: Path | None, as_root: bool, seccomp_fd: int | None = None) -> list[str]:
    """bubblewrap: a minimal read-only view of the system. As root, no user namespace (the
    worker drops to its own uid with setpriv inside); otherwise an unprivileged user namespace."""
    if as_root:
        args = ["bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        args = ["bwrap", "--unshare-all", "--cap-drop", "ALL"]
    args += ["--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--dir", "/var/tmp"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    for directory in SYSTEM_DIRS:
        if os.path.islink(directory):
            args += ["--symlink", os.readlink(directory), directory]
        elif os.path.isdir(directory):
            args += ["--ro-bind", directory, directory]
    args += ["--dir", "/etc"]
    for name in ETC_FILES:
        if os.path.exists(name):
            args += ["--ro-bind", name, name]
    python_home = Path(sys.base_prefix).resolve()
    binds = [] if str(python_home).startswith(SYSTEM_DIRS) else [python_home]
    if cache is not None and cache.is_dir():
        binds.append(cache)
    # parents of bind points: bubblewrap would make them 0700 (unreadable for the worker's uid)
    parents = sorted({str(a) for p in [*binds, Path(INSIDE_SOURCES) / "autoconn", Path(INSIDE_SITE) / "x"] for a in p.parents
                      if str(a) != "/" and not str(a).startswith(SYSTEM_DIRS)} - {"/tmp"}, key=lambda x: (x.count("/"), x))
    for parent in parents:
        args += ["--perms", "0755", "--dir", parent]
    for path in binds:
        args += ["--ro-bind", str(path), str(path)]
    # only the autoconn package itself, at a neutral path (not the checkout around it)
    args += ["--ro-bind", str(_autoconn_root() / "autoconn"), f"{INSIDE_SOURCES}/autoconn"]
    for host, top in runtime_site_entries():
        args += ["--ro-bind", host, f"{INSIDE_SITE}/{top}"]
    args += ["--bind", str(work), INSIDE_WORK, "--chdir", INSIDE_WORK, "--setenv", "HOME", INSIDE_WORK,
             "--setenv", "TMPDIR", "/tmp", "--"]
    return args


def fresh_ids() -> tuple[int, int]:
    """A uid/gid no running process has: the worker's own, so RLIMIT_NPROC counts only its
    processes and no file on the host belongs to it."""
    import secrets

    in_use = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                in_use.add(os.stat(f"/proc/{entry}").st_uid)
            except OSError:
                pass
    while True:
        uid = RUN_UID_BASE + secrets.randbelow(RUN_UID_SPAN)
        if uid not in in_use:
            return uid, uid


def seccomp_memfd() -> int | None:
    """A file descriptor holding the seccomp filter program for `bwrap --seccomp`; None
    where the filter is not available (not x86_64)."""
    from autoconn.sandbox import seccomp

    if not seccomp.supported():
        return None
    fd = os.memfd_create("autoconn-seccomp", 0)
    os.write(fd, seccomp.filter_bytes())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _setpriv_args(ids: tuple[int, int]) -> list[str]:
    return ["setpriv", f"--reuid={ids[0]}", f"--regid={ids[1]}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]


UNSHARE_ARGS = ["unshare", "--net", "--pid", "--fork", "--kill-child"]


@functools.cache
def probe_wrappers() -> dict[str, Any]:
    """Which walls work on this machine (run once per host process; a few ms each)."""
    ids = _sandbox_ids()
    found: dict[str, Any] = {"user": SANDBOX_USER if ids else pwd.getpwuid(os.geteuid()).pw_name,
                             "setpriv": bool(shutil.which("setpriv"))}
    if ids and not found["setpriv"]:
        ids = None  # cannot drop privileges inside the namespaces; run as the current user
        found["user"] = pwd.getpwuid(os.geteuid()).pw_name
        found["setpriv_error"] = "setpriv (util-linux) is missing: the worker keeps the caller's user"
    found["drop_to"] = ids
    found["prlimit"] = bool(shutil.which("prlimit"))
    drop = _setpriv_args(fresh_ids()) if ids else []

    def works(command: list[str], key: str, pass_fds: tuple[int, ...] = ()) -> None:
        try:
            done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=20, pass_fds=pass_fds)
            found[key] = done.returncode == 0
            if done.returncode:
                found[f"{key}_error"] = f"{key}: " + done.stderr.decode(errors="replace").strip()[:200]
        except (OSError, subprocess.SubprocessError) as err:
            found[key], found[f"{key}_error"] = False, f"{key}: {err}"

    if shutil.which("bwrap"):
        with tempfile.TemporaryDirectory(prefix="autoconn-probe-") as work:
            os.chmod(work, 0o777)
            fd = seccomp_memfd()
            try:
                works(_bwrap_args(Path(work), None, as_root=bool(ids), seccomp_fd=fd) + drop + ["/bin/true"], "bwrap",
                      pass_fds=(fd,) if fd is not None else ())
            finally:
                if fd is not None:
                    os.close(fd)
        found["seccomp"] = fd is not None
    else:
        found["bwrap"], found["bwrap_error"] = False, "bubblewrap is not installed (apt-get install bubblewrap)"
    if shutil.which("unshare"):
        works(UNSHARE_ARGS + drop + ["/bin/true"], "unshare")
    else:
        found["unshare"], found["unshare_error"] = False, "unshare (util-linux) is not installed"
    return found


def isolation(use_bwrap: bool | None = None) -> dict[str, Any]:
    """What the process backend would enforce here, in words for `autoconn sandbox status`."""
    probe = probe_wrappers()
    bwrap = probe["bwrap"] if use_bwrap is None else (use_bwrap and probe["bwrap"])
    if bwrap:
        network, filesystem, mode = "isolated (bubblewrap network namespace)", "read-only minimal view (bubblewrap)", "bwrap"
    elif probe["unshare"]:
        network, filesystem, mode = "isolated (unshare --net)", "host file system, read access as " + probe["user"], "unshare"
    else:
        network = "NOT isolated: " + probe.get("unshare_error", "no namespaces allowed")
        filesystem, mode = "host file system as " + probe["user"], "plain"
    from autoconn.sandbox import seccomp

    user = "a fresh uid per worker" if probe.get("drop_to") else probe["user"]
    filter_by = "unavailable (not x86_64)"
    if seccomp.supported():
        filter_by = "bubblewrap --seccomp" if bwrap else "installed by the worker"
    return {"mode": mode, "network": network, "filesystem": filesystem, "user": user, "seccomp": filter_by,
            "rlimits": {"address_space_gb": ADDRESS_SPACE_BYTES / 1024**3, "nproc": NPROC,
                        "file_size_mb": FILE_SIZE_BYTES // 1024**2, "cpu_seconds_per_job": "2 x timeout + 10"},
            "notes": [v for k, v in probe.items() if k.endswith("_error")]}


def _scrubbed_env(work_inside: str, tag: str, pythonpath: str) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": work_inside,
        "TMPDIR": work_inside,
        "LANG": "C.UTF-8",
        "PYTHONPATH": pythonpath,
        "PYTHONNOUSERSITE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "AUTOCONN_SANDBOX_TAG": tag,
    }


_warm_lock = threading.Lock()


def ensure_warm_cache(log: Any = None) -> Path | None:
    """Fills the trusted JAX cache once per machine (the warm-up runs only AutoCoNN's own
    programs, never a candidate); afterwards workers read it and cannot write it."""
    cache = jax_cache_dir()
    marker = cache / ".warmed"
    if marker.exists():
        return cache
    with _warm_lock:
        try:
            cache.mkdir(parents=True, exist_ok=True)
            os.chmod(cache_root(), 0o755)
        except OSError:
            return None
        with open(cache.parent / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be warming it right now
            if marker.exists():
                return cache
            if log:
                log(f"warming the JAX compilation cache in {cache} (once per machine, ~1 min)")
            env = dict(os.environ, PYTHONPATH=str(_autoconn_root()), JAX_PLATFORMS="cpu")
            done = subprocess.run([sys.executable, "-m", "autoconn.sandbox.worker", "--warm", "--cache-dir", str(cache)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                  timeout=1800)
            if done.returncode != 0:
                if log:
                    log("warm-up failed: " + done.stderr.decode(errors="replace")[-400:])
                return cache if any(cache.iterdir()) else None
            for root, dirs, files in os.walk(cache):
                for name in dirs:
                    os.chmod(os.path.join(root, name), 0o755)
                for name in files:
                    os.chmod(os.path.join(root, name), 0o644)
            marker.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    return cache


class ProcessWorker(WorkerHandle):
    def __init__(self, popen: subprocess.Popen, work: Path, tag: str, uid: int) -> None:
        super().__init__()
        self.popen = popen
        self.work = work
        self.tag = tag
        self.uid = uid  # the worker's own uid (a fresh one per worker when privileges are dropped)
        self._killed = False
        self._threads = [
            threading.Thread(target=self._pump, args=(popen.stdout, self.reader.feed_stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(popen.stderr, self.reader.feed_stderr, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, stream: Any, sink: Any, is_stdout: bool) -> None:
        for chunk in iter_chunks(stream.read1 if hasattr(stream, "read1") else stream.read):
            sink(chunk)
        if is_stdout:
            self.reader.close()

    def send(self, data: bytes) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(data)
        self.popen.stdin.flush()

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.popen.kill()
        except OSError:
            pass
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.popen.stdin, self.popen.stdout, self.popen.stderr):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        shutil.rmtree(self.work, ignore_errors=True)

    def exit_reason(self) -> tuple[str, str]:
        try:
            code = self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "crash", "the sandbox worker stopped answering"
        if code < 0:
            return exit_text_for_signal(-code)
        if 128 < code < 128 + 65:  # wrappers (unshare, bwrap) report a child's signal as 128 + n
            return exit_text_for_signal(code - 128)
        return "crash", f"the sandbox worker exited with code {code}"


class ProcessBackend(Backend):
    name = "process"

    def __init__(self, *, use_bwrap: bool | None = None, cache: bool = True, prewarm: bool = True, log: Any = None,
                 seccomp: bool = True) -> None:
        """seccomp=False is for tests that prove the other walls alone; never for candidates."""
        from autoconn.sandbox import seccomp as _seccomp

        self._seccomp = seccomp and _seccomp.supported()
        self._prewarm = prewarm
        self._probe = probe_wrappers()
        self._mode = isolation(use_bwrap)["mode"]
        self._ids = self._probe["drop_to"]
        self._cache = ensure_warm_cache(log) if cache else None
        self._base = Path(tempfile.mkdtemp(prefix="autoconn-sandbox-"))
        self._exchange = self._base / "exchange"
        self._exchange.mkdir()
        self.session = uuid.uuid4().hex[:12]
        os.chmod(self._base, 0o711)  # workers of other uids reach their own dirs below it

    @property
    def exchange_dir(self) -> Path:
        return self._exchange

    def describe(self) -> dict[str, Any]:
        info = isolation(self._mode == "bwrap")
        info.update(backend=self.name, cache=str(self._cache) if self._cache else None, session=self.session)
        if not self._seccomp:
            info["seccomp"] = "off (test switch)"
        return info

    def start_worker(self) -> WorkerHandle:
        tag = f"{self.session}-{uuid.uuid4().hex[:6]}"
        work = Path(tempfile.mkdtemp(prefix="w-", dir=self._base))
        ids = fresh_ids() if self._ids else None
        if ids:
            os.chown(work, *ids)
            os.chown(self._exchange, *ids)  # one worker at a time per backend: it owns the exchange dir
        root = _autoconn_root()
        seccomp_fd: int | None = None
        python, self_filter = sys.executable, False
        if self._mode == "bwrap":
            inside, exchange = INSIDE_WORK, INSIDE_EXCHANGE
            seccomp_fd = seccomp_memfd() if self._seccomp else None
            prefix = _bwrap_args(work, self._cache, as_root=bool(ids), seccomp_fd=seccomp_fd)
            at = prefix.index("--chdir")
            prefix[at:at] = ["--bind", str(self._exchange), exchange]
            python, pythonpath = _base_python(), f"{INSIDE_SOURCES}:{INSIDE_SITE}"
        else:
            inside, exchange = str(work), str(self._exchange)
            prefix = list(UNSHARE_ARGS) if self._mode == "unshare" else []
            pythonpath, self_filter = str(root), self._seccomp
        command = prefix + [python, "-m", "autoconn.sandbox.worker", "--exchange", exchange]
        if self_filter:
            command.append("--seccomp")
        if self._cache is not None:
            command += ["--cache-dir", str(self._cache), "--cache-mode", "ro"]
        else:
            command += ["--cache-mode", "off"]
        if not self._prewarm:
            command.append("--no-prewarm")
        kwargs: dict[str, Any] = {}
        if ids and self._mode in ("bwrap", "unshare"):
            # the wrapper needs root to build the namespaces; the worker drops to its own uid inside
            command[len(prefix):len(prefix)] = _setpriv_args(ids)
        elif ids:
            kwargs.update(user=ids[0], group=ids[1], extra_groups=[])
        if self._probe.get("prlimit"):
            command = _prlimit_args() + command
        else:
            kwargs["preexec_fn"] = _limits
        try:
            popen = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(work),
                env=_scrubbed_env(inside, tag, pythonpath), start_new_session=True, close_fds=True,
                pass_fds=(seccomp_fd,) if seccomp_fd is not None else (), **kwargs,
            )
        finally:
            if seccomp_fd is not None:
                os.close(seccomp_fd)
        return ProcessWorker(popen, work, tag, ids[0] if ids else os.geteuid())

    def close(self) -> None:
        shutil.rmtree(self._base, ignore_errors=True)
