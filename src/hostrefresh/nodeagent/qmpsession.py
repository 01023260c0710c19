"""A short-lived, typed QMP session to one QEMU process (wraps `qemu.qmp.QMPClient`).

Why short-lived: a QEMU monitor serves one client at a time, and the agent may die at any moment; so
every caller connects, does its few commands and disconnects. QEMUs started by hostrefresh expose two
monitors (control for the migrator, aux for observers such as the guest verifier).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, cast

from qemu.qmp import QMPClient
from qemu.qmp.error import ProtocolError
from qemu.qmp.protocol import ConnectError

HANDSHAKE_RETRY_S = 0.02


class QmpError(RuntimeError):
    """A QMP connection or command failed."""


class QmpSession:
    """Typed helpers over one connected `QMPClient`."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def execute(self, cmd: str, args: Mapping[str, object] | None = None) -> Any:
        """Run one command; QMP errors become `QmpError` with the command name."""
        try:
            return await self._client.execute(cmd, dict(args) if args else None)
        except Exception as exc:
            raise QmpError(f"{cmd}: {exc}") from exc

    async def status(self) -> str:
        """Run state (`running`, `paused`, `inmigrate`, `postmigrate`, `finish-migrate`, ...)."""
        reply = cast(dict[str, Any], await self.execute("query-status"))
        return str(reply["status"])

    async def query_migrate(self) -> dict[str, Any]:
        """The raw `query-migrate` reply ({} when no migration ever started)."""
        return cast(dict[str, Any], await self.execute("query-migrate"))

    async def set_capabilities(self, caps: Mapping[str, bool]) -> None:
        """Enable/disable migration capabilities (must match on source and destination)."""
        await self.execute(
            "migrate-set-capabilities",
            {"capabilities": [{"capability": k, "state": v} for k, v in caps.items()]},
        )

    async def set_parameters(self, params: Mapping[str, object]) -> None:
        """Set migration parameters such as max-bandwidth and downtime-limit."""
        if params:
            await self.execute("migrate-set-parameters", params)

    async def pmemsave(self, addr: int, size: int, path: Path) -> bytes:
        """Guest-physical memory [addr, addr+size) via a file QEMU writes (same machine)."""
        await self.execute("pmemsave", {"val": addr, "size": size, "filename": str(path)})
        return path.read_bytes()


def _handshake_failed(exc: BaseException) -> bool:
    """The socket accepted us but the greeting or negotiation went wrong (worth another try).

    Seen with QEMU 7.2 right after a migration's switchover: a new client that QEMU accepts as the
    previous one leaves may be sent an event before its greeting. A fresh connection then works.
    """
    cause = exc.exc if isinstance(exc, ConnectError) else exc
    return isinstance(cause, ProtocolError | EOFError)


async def connect(socket: Path | str, *, timeout: float = 5.0, name: str = "hostrefresh") -> QMPClient:
    """A connected `QMPClient` for the monitor at `socket`; raises `QmpError` if none answers in `timeout`.

    A refused or missing socket fails at once (the QEMU is gone); a failed handshake is retried
    until `timeout`, with a fresh client each time.
    """
    deadline = time.monotonic() + timeout
    while True:
        client = QMPClient(name)
        try:
            await asyncio.wait_for(client.connect(str(socket)), max(0.05, deadline - time.monotonic()))
            return client
        except Exception as exc:
            with contextlib.suppress(Exception):
                await client.disconnect()
            if not _handshake_failed(exc) or time.monotonic() + HANDSHAKE_RETRY_S >= deadline:
                raise QmpError(f"connect {socket}: {exc}") from exc
        await asyncio.sleep(HANDSHAKE_RETRY_S)


@contextlib.asynccontextmanager
async def qmp_session(socket: Path, *, timeout: float = 5.0, name: str = "hostrefresh") -> AsyncIterator[QmpSession]:
    """Connect to the monitor at `socket`; raises `QmpError` if it does not answer in `timeout`."""
    client = await connect(socket, timeout=timeout, name=name)
    try:
        yield QmpSession(client)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
