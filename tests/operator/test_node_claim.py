"""At most one refresh holds a node, however the claims race (real API server, guarded writes)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from lightkube import AsyncClient

from hostrefresh.api.names import CLAIM_ANNOTATION
from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.kube.client import load_config, sync_client
from hostrefresh.operator.kube import KubeWriter
from tests.cli.fleet import make_refresh

pytestmark = pytest.mark.integration


def _refresh(cp: ControlPlane, name: str, node: str) -> None:
    make_refresh(sync_client(cp.kubeconfig), name, node, None, {})


def _holder(cp: ControlPlane, node: str) -> Any:
    obj = json.loads(cp.kubectl("get", "node", node, "-o", "json").stdout)
    return (obj["metadata"].get("annotations") or {}).get(CLAIM_ANNOTATION)


def _claim_all(cp: ControlPlane, node: str, names: list[str]) -> list[str | None]:
    async def run() -> list[str | None]:
        clients = [AsyncClient(config=load_config(cp.kubeconfig)) for _ in names]
        try:
            return list(
                await asyncio.gather(
                    *(KubeWriter(c).claim_node(node, n, None) for c, n in zip(clients, names, strict=True))
                )
            )
        finally:
            for c in clients:
                await c.close()

    return asyncio.run(run())


def test_of_many_refreshes_claiming_one_node_at_once_exactly_one_holds_it(crds: ControlPlane) -> None:
    node = f"claim-{uuid.uuid4().hex[:6]}"
    register_node(crds, node)
    names = [f"{node}-hr{i}" for i in range(6)]
    for name in names:
        _refresh(crds, name, node)
    results = _claim_all(crds, node, names)
    winner = _holder(crds, node)
    assert winner in names
    assert results == [winner] * len(names), results  # everyone agrees who holds it


def test_a_claim_whose_holder_is_gone_or_finished_is_taken_over(crds: ControlPlane) -> None:
    node = f"claim-{uuid.uuid4().hex[:6]}"
    register_node(crds, node)
    first, second, third = (f"{node}-{x}" for x in ("a", "b", "c"))
    for name in (first, second, third):
        _refresh(crds, name, node)
    assert _claim_all(crds, node, [first]) == [first]
    assert _claim_all(crds, node, [second]) == [first]  # held by a refresh that runs
    crds.kubectl("delete", "hostrefresh", first)
    assert _claim_all(crds, node, [second]) == [second]  # its holder is gone
    crds.kubectl(
        "patch", "hostrefresh", second, "--subresource=status", "--type=merge", "-p", '{"status":{"phase":"Succeeded"}}'
    )
    assert _claim_all(crds, node, [third]) == [third]  # its holder has finished
    assert _claim_all(crds, node, ["no-such-node-claim"]) == [third]
