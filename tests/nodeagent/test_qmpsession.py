"""The QMP connection: a handshake that goes wrong is retried, a QEMU that is gone fails at once.

The monitor here is a small QMP speaker on a Unix socket, because the QEMU race it stands for (an
event sent to a client before its greeting, right after a switchover) cannot be started on demand.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from hostrefresh.nodeagent.qmpsession import QmpError, qmp_session

GREETING = {"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}, "package": ""}, "capabilities": []}}
EVENT = {"event": "STOP", "timestamp": {"seconds": 1, "microseconds": 0}}


class Monitor:
    """Answers like a QMP monitor, except that its first `bad_greetings` clients get an event first."""

    def __init__(self, bad_greetings: int) -> None:
        self.bad_greetings = bad_greetings
        self.clients = 0

    @staticmethod
    def reply(request: dict[str, object]) -> dict[str, object]:
        if request["execute"] == "query-status":
            return {"return": {"status": "running", "running": True}, "id": request.get("id")}
        return {"return": {}, "id": request.get("id")}

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.clients += 1
        first = EVENT if self.clients <= self.bad_greetings else GREETING
        writer.write(json.dumps(first).encode() + b"\n")
        await writer.drain()
        decoder, buffer = json.JSONDecoder(), ""
        try:
            while chunk := await reader.read(4096):  # QMP is a JSON stream: no newline after a request
                buffer += chunk.decode()
                while buffer.strip():
                    try:
                        request, end = decoder.raw_decode(buffer.lstrip())
                    except json.JSONDecodeError:
                        break
                    buffer = buffer.lstrip()[end:]
                    writer.write(json.dumps(self.reply(request)).encode() + b"\n")
                await writer.drain()
        finally:
            writer.close()


async def _serve(path: Path, monitor: Monitor) -> asyncio.Server:
    return await asyncio.start_unix_server(monitor.serve, path=str(path))


async def test_a_greeting_preceded_by_an_event_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    monitor = Monitor(bad_greetings=2)
    server = await _serve(path, monitor)
    try:
        async with qmp_session(path, timeout=2.0) as qmp:
            assert await qmp.status() == "running"
        assert monitor.clients == 3
    finally:
        server.close()
        await server.wait_closed()


async def test_a_handshake_that_keeps_failing_gives_up_at_the_timeout(tmp_path: Path) -> None:
    path = tmp_path / "qmp.sock"
    server = await _serve(path, Monitor(bad_greetings=10_000))
    try:
        t0 = time.monotonic()
        with pytest.raises(QmpError, match="connect"):
            async with qmp_session(path, timeout=0.5):
                pass
        assert 0.4 < time.monotonic() - t0 < 2.0
    finally:
        server.close()
        await server.wait_closed()


async def test_a_missing_monitor_fails_at_once(tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(QmpError, match="connect"):
        async with qmp_session(tmp_path / "gone.sock", timeout=5.0):
            pass
    assert time.monotonic() - t0 < 0.5
