"""kopf's per-object bookkeeping, trimmed to what the operator's handlers use.

kopf stores a "last handled configuration" annotation on every object to diff it for ``on.create``,
``on.update``, ``on.resume`` and ``on.field`` handlers. The operator has none of those (its work queues reconcile
the latest body, and it handles deletion with ``on.delete``), so that annotation would
cost one extra write per object and about a kilobyte in every later write and watch event, for
nothing. ``NoDiffBase`` makes every event look unchanged to kopf's diffing: ``on.event``, indexes
and the deletion finalizer work as before. ``changing_handlers`` lets a test keep it honest.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kopf

_NOTHING: kopf.BodyEssence = {}


class NoDiffBase(kopf.DiffBaseStorage):
    """A diff base that is never written and always equal: no ``last-handled-configuration``."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        return _NOTHING

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return _NOTHING

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def changing_handlers(registry: kopf.OperatorRegistry) -> list[str]:
    """Ids of registered change handlers other than ``on.delete``: they would need a diff base."""
    return [
        str(handler.id)
        for handler in registry._changing.get_all_handlers()
        if handler.reason != kopf.Reason.DELETE or handler.field is not None
    ]
