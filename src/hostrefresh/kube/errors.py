"""Which failed API requests are worth trying again, whichever layer of the client raised them, and
the one loop that tries them again."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

from lightkube.core.exceptions import ApiError

T = TypeVar("T")
log = logging.getLogger("hostrefresh.kube")

#: API server answers that mean "try again": too many requests, internal error, unavailable, timeout.
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})
NOT_FOUND = 404


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failed request: lightkube raises ApiError, or its HTTP library's status error
    for a watch refused before it streams; None for a request that got no answer."""
    if isinstance(exc, ApiError):
        return int(exc.status.code or 0)
    code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """A request that may well succeed if made again: no answer at all (connection refused or reset, a
    timeout: the HTTP library's TransportError family, or an OSError), an answer in TRANSIENT_CODES, or
    a 404 that names no object: the resource itself is not served (yet), as when a restarted API
    server answers before it has loaded the CustomResourceDefinitions."""
    code = status_code(exc)
    if code == NOT_FOUND and isinstance(exc, ApiError):
        details = exc.status.details
        return details is None or not details.name
    if code is not None:
        return code in TRANSIENT_CODES
    return isinstance(exc, OSError) or any(cls.__name__ == "TransportError" for cls in type(exc).__mro__)


class Backoff:
    """Delays that double from ``first`` up to ``most`` and never run out; each iteration starts over.

    It is also what kopf is given as its request retry delays (kopf iterates them afresh per request):
    kopf gives up on a request after its last delay, and a watch request that gives up ends kopf's
    watching for good while the process goes on, deaf. An API server restarted again and again can
    outlast any finite list; what bounds the operator's wait is its leader Lease.
    """

    def __init__(self, first: float = 0.5, most: float = 5.0) -> None:
        if first <= 0 or most <= 0:
            raise ValueError(f"Backoff({first}, {most}): both delays must be above 0")
        self.first, self.most = min(first, most), most  # a cap below the first delay caps that too

    def __iter__(self) -> Iterator[float]:
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.most)


async def until_answered(
    request: Callable[[], Awaitable[T]],
    what: str,
    *,
    first_delay: float = 0.5,
    max_delay: float = 5.0,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Make ``request`` until the API server answers it: a transient failure (see ``is_transient``) is
    the link's condition, not the caller's, so it is retried with backoff (``first_delay`` doubling up
    to ``max_delay``) for as long as it takes; any other error is raised at once.

    For writes whose loss would be wrong and whose caller has nothing better to do than wait: an
    agent's progress report (a step must never fail because the API server restarted under it).
    Cancellation ends the wait.
    """
    for attempt, delay in enumerate(Backoff(first_delay, max_delay), start=1):
        try:
            return await request()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if on_retry is not None:
                on_retry(exc, delay)
            if attempt == 1 or attempt % 10 == 0:
                name = type(exc).__name__
                log.warning("%s: API server unavailable (%s: %s); trying again (attempt %d)", what, name, exc, attempt)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: Backoff never runs out")
