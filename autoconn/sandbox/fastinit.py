"""Make tracr's model assembly cheap: skip its eager haiku initialisation.

Moved to :mod:`autoconn.conn.compile`, whose ``compile_program`` now initialises abstractly
for every caller (same weights; ``fast_init=False`` for tracr's own eager init). This module
stays as a re-export for the worker and older callers.
"""

from __future__ import annotations

from autoconn.conn.compile import fast_transform, install_fast_init

__all__ = ["fast_transform", "install"]

_installed = False  # kept for callers that reset it; install() checks tracr's assemble module itself


def install() -> bool:
    """Points tracr's assemble module at the fast init (idempotent). False if it could not."""
    global _installed
    _installed = install_fast_init()
    return _installed
