"""Fault injection for the crash tests: kill this process at a named point, the way a power cut or
`kill -9` would, so tests can prove a run killed anywhere leaves a valid library and resumes.

These two variables are test hooks, not settings (so they are read here, not in
``autoconn.settings``, and the README lists them apart). Off unless ``AUTOCONN_KILL_AT`` names a
point (tests only; never set in normal use). Points:
``register:before-write`` (the verdict is checkpointed, nothing written yet), ``library:staged``
(the entry and the new index are written aside), ``library:swapped`` (the entry is in place, the
index not yet), ``library:retired`` (between the two renames of a replace without an atomic swap;
``AUTOCONN_NO_EXCHANGE=1`` forces that path).
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
