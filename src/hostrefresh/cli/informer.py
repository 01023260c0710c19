"""List, then watch, one kind of object, as client-go's reflector does (the I/O of ``watch``).

``follow`` lists the objects once (``Listed``, with the list's resourceVersion), then watches from that
resourceVersion with lightkube's watch, which asks again from the last version it saw whenever the API
server ends a watch request (``server_timeout``). Every event goes out as a ``Changed``:

- the resourceVersion is too old (410 Gone, before or during the watch): list again, watch from there;
- the watch drops (connection reset, the API server restarting, 429/5xx): after a backoff (0.5 s
  doubling to 5 s), watch again from the last version seen; a 410 then means list again;
- the API server refuses (403, 401, a missing CRD): ``Broken``, and the stream ends.

So after the first list, the only requests are watches: one held open per stream, renewed every
``server_timeout`` seconds, and a list only when the API server says the version is gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from lightkube.core.generic_client import ListIterable

from hostrefresh.cli.stream import Broken, Changed, Listed, Update
from hostrefresh.kube.errors import Backoff, is_transient, status_code

GONE = 410
#: Seconds the API server keeps one watch request open (lightkube then asks again, from the last version).
SERVER_TIMEOUT = 300


class Lister(Protocol):
    """The part of lightkube's Client that ``follow`` uses."""

    def list(self, res: Any, *, labels: Any = None, fields: Any = None) -> Iterable[Any]: ...

    def watch(
        self,
        res: Any,
        *,
        labels: Any = None,
        fields: Any = None,
        server_timeout: Any = None,
        resource_version: Any = None,
    ) -> Iterable[tuple[str, Any]]: ...


def _version(listing: Iterable[Any]) -> str | None:
    """The list's resourceVersion (lightkube's ListIterable knows it once the iteration started)."""
    if isinstance(listing, ListIterable):
        return listing.resourceVersion
    version = getattr(listing, "resourceVersion", None)
    return str(version) if version else None


def follow(
    client: Lister,
    resource: Any,
    stream: str,
    sink: Callable[[Update], None],
    stop: threading.Event,
    *,
    labels: Any = None,
    fields: Any = None,
    server_timeout: int = SERVER_TIMEOUT,
    backoff: Backoff | None = None,
) -> None:
    """List then watch ``resource`` (selected by ``labels``/``fields``) into ``sink`` until ``stop`` is set
    or the API server refuses; see the module docstring."""
    delays = iter(backoff or Backoff(0.5, 5.0))
    version: str | None = None
    while not stop.is_set():
        try:
            if version is None:
                listing = client.list(resource, labels=labels, fields=fields)
                items = list(listing)
                version = _version(listing)
                sink(Listed(stream, tuple(o.to_dict() for o in items)))
            for type_, obj in client.watch(
                resource, labels=labels, fields=fields, server_timeout=server_timeout, resource_version=version
            ):
                if stop.is_set():
                    return
                version = obj.metadata.resourceVersion or version
                sink(Changed(stream, type_, obj.to_dict()))
                delays = iter(backoff or Backoff(0.5, 5.0))
        except Exception as exc:
            if status_code(exc) == GONE:
                version = None  # too old: list again, then watch from the new list
                continue
            if is_transient(exc):
                stop.wait(next(delays))
                continue
            sink(Broken(stream, exc))
            return


def start(
    client: Lister,
    resource: Any,
    stream: str,
    sink: Callable[[Update], None],
    stop: threading.Event,
    *,
    labels: Any = None,
    fields: Any = None,
) -> threading.Thread:
    """``follow`` in a daemon thread (the command's main thread waits on the updates, with its deadline)."""
    thread = threading.Thread(
        target=follow,
        args=(client, resource, stream, sink, stop),
        kwargs={"labels": labels, "fields": fields},
        name=f"watch-{stream}",
        daemon=True,
    )
    thread.start()
    return thread
