"""The run's watchdog: whatever the Case, its checks or a task left behind, a run ends, with
its report, within a bound known at its start, and Ctrl-C ends it promptly.

Each stage has a timeout of its own (the Case's share of `--timeout`, the task's
`check_timeout_s` for each checks run, the fake baseline's), and every host-side read of what
a Case left is bounded (core/evidence/untrusted.py). The watchdog is the backstop for a
defence that failed: past the sum of those bounds plus WATCHDOG_GRACE_S, or CANCEL_GRACE_S
after a cancel that the stages did not honour, the stages' task is cancelled and the runner
goes straight to its report.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

WATCHDOG_GRACE_S = 60.0
"""Seconds beyond the stages' own timeouts for what has none of its own: the readiness
probes, copying the task, reading results, returning the workspace. Stated in the README."""
CANCEL_GRACE_S = 10.0
"""Seconds the stages get to wind down after Ctrl-C (ending the Case's group, the checks')."""


@dataclass
class Watched(Generic[T]):
    """How the watched work ended: its result, or why it was cut short."""

    result: T | None = None
    overran: bool = False
    """The budget passed before the work ended."""
    abandoned_on_cancel: bool = False
    """A cancel came and the work did not end within CANCEL_GRACE_S of it."""


async def watch(work: Coroutine[Any, Any, T], budget: float, cancel: asyncio.Event,
                cancel_grace: float = CANCEL_GRACE_S) -> Watched[T]:
    """Run `work` for at most `budget` seconds, or `cancel_grace` after `cancel` is set;
    an exception of `work` propagates. Cut short, `work` is cancelled (its `finally`
    clauses end its processes) and waited on for at most `cancel_grace` more."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(work)
    stop = asyncio.ensure_future(cancel.wait())
    end = loop.time() + budget
    try:
        done, _ = await asyncio.wait({task, stop}, timeout=budget,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task not in done and stop in done:
            left = max(0.0, min(cancel_grace, end - loop.time()))
            done, _ = await asyncio.wait({task}, timeout=left)
    finally:
        stop.cancel()
    if task in done:
        return Watched(result=task.result())
    task.cancel()
    with contextlib.suppress(BaseException):
        await asyncio.wait({task}, timeout=cancel_grace)
    return Watched(overran=not cancel.is_set(), abandoned_on_cancel=cancel.is_set())
