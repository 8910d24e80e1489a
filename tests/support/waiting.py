"""Polling for what the API server reports, the way a user watching `kubectl get` would."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout_s: float = 60.0, what: str = "condition") -> T:
    """Call `probe` until it returns something other than None (or falsy 0/""/[]), then return it."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what} (last seen: {last!r})")
