"""Run the operator's and the agent's asyncio code on uvloop, with the garbage collector set for a
long-running service.

Both processes spend most of their CPU in the event loop and the HTTP client stack (sockets, TLS,
callbacks); uvloop, which kopf's own command line uses too, implements the loop and its transports
on libuv in native code, so the same requests cost the process less CPU and wait less behind one
another when the cores are busy.

Python's cyclic garbage collector stops everything in the process while it runs. With its default
thresholds the operator under 100 refreshes made a full collection every ~15 s, each 50-90 ms:
every reconcile in flight waited that long. The modules' objects, loaded once, are moved out of its
reach (``gc.freeze``), and young objects are collected in larger, rarer batches, so that full
collections (which walk every long-lived object) come minutes apart. Cycles are still collected:
kopf leaves a few thousand cyclic objects per second behind (its per-event patches and bodies).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")

#: Allocations before a young collection (Python's default: 700), and young collections per
#: middle one and middle ones per full one (default: 10 and 10).
GC_THRESHOLDS = (5_000, 20, 20)


def tune_gc() -> None:
    """Freeze what is loaded so far and collect less often (see the module's docstring)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a uvloop event loop, after ``tune_gc``."""
    tune_gc()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
