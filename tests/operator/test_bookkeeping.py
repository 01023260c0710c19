"""kopf's diff base is switched off; that is only sound while no handler needs one."""

from __future__ import annotations

from typing import Any

import kopf

from hostrefresh.operator.bookkeeping import NoDiffBase, changing_handlers
from hostrefresh.operator.handlers import registry


def test_operator_registers_no_handler_that_needs_a_diff_base() -> None:
    assert changing_handlers(registry()) == []


def test_a_create_or_update_handler_is_caught() -> None:
    other = kopf.OperatorRegistry()

    @kopf.on.delete("example.io", "v1", "things", registry=other)
    def gone(**_: Any) -> None: ...

    assert changing_handlers(other) == []

    @kopf.on.update("example.io", "v1", "things", registry=other)
    def changed(**_: Any) -> None: ...

    @kopf.on.field("example.io", "v1", "things", field="spec.x", registry=other)
    def field_changed(**_: Any) -> None: ...

    found = changing_handlers(other)
    assert len(found) == 2
    assert any("changed" in h and "field" not in h for h in found)
    assert any("field_changed" in h for h in found)


def test_every_body_looks_unchanged_and_nothing_is_written() -> None:
    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "a", "annotations": {"x": "1"}}, "spec": {"y": 2}})
    assert storage.fetch(body=body) == storage.build(body=body)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=storage.build(body=body))
    assert not patch
