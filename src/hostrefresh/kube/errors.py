"""Which failed API requests are worth trying again, whichever layer of the client raised them."""

from __future__ import annotations

from lightkube.core.exceptions import ApiError

#: API server answers that mean "try again": too many requests, internal error, unavailable, timeout.
TRANSIENT_CODES = frozenset({429, 500, 502, 503, 504})


def status_code(exc: BaseException) -> int | None:
    """The HTTP status of a failed request: lightkube raises ApiError, or its HTTP library's status error
    for a watch refused before it streams; None for a request that got no answer."""
    if isinstance(exc, ApiError):
        return int(exc.status.code or 0)
    code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """A request that may well succeed if made again: no answer at all (connection refused or reset, a
    timeout: the HTTP library's TransportError family, or an OSError), or an answer in TRANSIENT_CODES."""
    code = status_code(exc)
    if code is not None:
        return code in TRANSIENT_CODES
    return isinstance(exc, OSError) or any(cls.__name__ == "TransportError" for cls in type(exc).__mro__)
