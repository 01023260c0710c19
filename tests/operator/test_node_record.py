"""The record of what a node runs, written through the operator's writer to a real API server, and
selected on as the docs show ("nodes not yet on X")."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from lightkube import AsyncClient

from hostrefresh.controlplane import ControlPlane
from hostrefresh.controlplane.nodes import register_node
from hostrefresh.kube.client import load_config
from hostrefresh.operator.kube import KubeWriter
from hostrefresh.operator.nodemarks import NodeRecord, record

pytestmark = pytest.mark.integration


def _record(cp: ControlPlane, node: str, rec: NodeRecord) -> None:
    async def run() -> None:
        client = AsyncClient(config=load_config(cp.kubeconfig))
        try:
            await KubeWriter(client).patch_node_marks(node, lambda view: record(view, rec), None)
        finally:
            await client.close()

    asyncio.run(run())


def _nodes(cp: ControlPlane, selector: str, fleet: str) -> set[str]:
    out = cp.kubectl("get", "nodes", "-l", f"{selector},fleet={fleet}", "-o", "name").stdout
    return {line.removeprefix("node/") for line in out.split()}


def test_a_recorded_version_is_a_label_that_selects_the_nodes_not_yet_on_it(crds: ControlPlane) -> None:
    fleet = uuid.uuid4().hex[:6]
    done, behind, never = (f"rec-{fleet}-{x}" for x in ("done", "behind", "never"))
    for node in (done, behind, never):
        register_node(crds, node, labels={"fleet": fleet})
    at = datetime.now(UTC)
    _record(crds, done, NodeRecord("Host", "6.12.4+kvm1", "hr-done", at))
    _record(crds, behind, NodeRecord("Host", "6.11.0", "hr-behind", at))
    _record(crds, behind, NodeRecord("VMM", "9.2.0~rc1", "hr-qemu", at))
    assert _nodes(crds, "hostrefresh.io/host-version notin (6.12.4_kvm1)", fleet) == {behind, never}
    assert _nodes(crds, "!hostrefresh.io/host-version", fleet) == {never}
    assert _nodes(crds, "hostrefresh.io/qemu-version=9.2.0_rc1", fleet) == {behind}
    annotations = crds.kubectl(
        "get", "node", done, "-o", "jsonpath={.metadata.annotations.hostrefresh\\.io/host-version}"
    ).stdout
    assert annotations == "6.12.4+kvm1"
