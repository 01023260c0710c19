"""The operator and the agent run their coroutines on uvloop, with the garbage collector tuned."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from hostrefresh import eventloop


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    """``run`` tunes the collector of the whole process: give the test process its settings back."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_run_returns_the_result_on_a_uvloop_loop() -> None:
    async def which_loop() -> str:
        await asyncio.sleep(0)
        return type(asyncio.get_running_loop()).__module__

    assert eventloop.run(which_loop()).startswith("uvloop")


def test_run_raises_what_the_coroutine_raises() -> None:
    async def fails() -> None:
        raise LookupError("no such node")

    with pytest.raises(LookupError, match="no such node"):
        eventloop.run(fails())


def test_run_freezes_what_is_loaded_and_collects_less_often() -> None:
    gc.unfreeze()
    assert gc.get_freeze_count() == 0

    async def settings() -> tuple[int, tuple[int, int, int]]:
        return gc.get_freeze_count(), gc.get_threshold()

    frozen, thresholds = eventloop.run(settings())
    assert frozen > 1000, "the modules' objects are out of the collector's reach"
    assert thresholds == eventloop.GC_THRESHOLDS
    assert thresholds[0] > 700, "young collections rarer than Python's default"


def test_cycles_made_while_running_are_still_collected() -> None:
    class Node:
        peer: object = None

    async def cycle_freed() -> bool:
        a, b = Node(), Node()
        a.peer, b.peer = b, a
        ref = weakref.ref(a)
        del a, b
        gc.collect()
        return ref() is None

    assert eventloop.run(cycle_freed())
