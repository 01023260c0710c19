"""A tiny ``/healthz`` endpoint shared by the operator and the agent."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


async def serve_health(port: int, healthy: Callable[[], bool] = lambda: True) -> web.AppRunner:
    """Serve ``GET /healthz`` on ``port``: 200 while ``healthy()``, 503 otherwise. Call ``cleanup()`` to stop."""

    async def healthz(_: web.Request) -> web.Response:
        ok = healthy()
        return web.Response(status=200 if ok else 503, text="ok" if ok else "not ready")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", port).start()
    return runner
