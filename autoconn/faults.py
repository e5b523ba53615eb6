"""Fault injection for the crash tests: kill this process at a named point, the way a power cut or
`kill -9` would, so tests can prove a run killed anywhere leaves a valid library and resumes.

These variables are test hooks, not settings (so they are read here, not in
``autoconn.settings``, and the README lists them apart). Off unless ``AUTOCONN_KILL_AT`` names a
point (tests only; never set in normal use). Points:
``register:before-write`` (the verdict is checkpointed, nothing written yet), ``library:staged``
(the entry and the new index are written aside), ``library:swapped`` (the entry is in place, the
index not yet), ``library:retired`` (between the two renames of a replace without an atomic swap;
``AUTOCONN_NO_EXCHANGE=1`` forces that path), and ``bench:TASK`` (a batch worker reaching that
task; with ``AUTOCONN_KILL_ONCE=FILE`` only the first worker to create FILE dies, so a retry lives).
"""

from __future__ import annotations

import os
import signal


def kill_point(name: str) -> None:
    """SIGKILL this process when the tests asked for a crash exactly here."""
    if os.environ.get("AUTOCONN_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def exchange_disabled() -> bool:
    """Tests of the two-rename replace, for systems without renameat2."""
    return os.environ.get("AUTOCONN_NO_EXCHANGE") == "1"


def kill_at_task(key: str) -> None:
    """The batch retry tests' point: SIGKILL the worker that reaches task KEY (once, with AUTOCONN_KILL_ONCE)."""
    if os.environ.get("AUTOCONN_KILL_AT") != f"bench:{key}":
        return
    marker = os.environ.get("AUTOCONN_KILL_ONCE")
    if marker:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    os.kill(os.getpid(), signal.SIGKILL)


def forwarded_hooks() -> dict[str, str]:
    """The hooks set in this process, for workers started elsewhere (Ray's runtime_env)."""
    names = ("AUTOCONN_KILL_AT", "AUTOCONN_KILL_ONCE")
    return {name: os.environ[name] for name in names if name in os.environ}
