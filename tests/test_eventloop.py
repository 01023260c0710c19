"""The operator and the agent run their coroutines on uvloop."""

from __future__ import annotations

import asyncio

import pytest

from hostrefresh import eventloop


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
