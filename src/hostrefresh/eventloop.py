"""Run the operator's and the agent's asyncio code on uvloop, as kopf's own command line does.

Both processes spend most of their CPU in the event loop and the HTTP client stack (sockets, TLS,
callbacks); uvloop implements the loop and its transports on libuv in native code, so the same
requests cost the process less CPU and wait less behind one another when the cores are busy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import uvloop

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a uvloop event loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
