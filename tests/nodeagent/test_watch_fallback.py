"""The agent's node-scoped watch on an API server that cannot select HostRefresh by spec.nodeName.

Kubernetes 1.30 drops a CRD's selectableFields and refuses the field selector (400); the agent then
watches every object and keeps its own node's. Reproduced on the local control plane by installing the
CRD without selectableFields, which is what a 1.30 server stores.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import AsyncClient

from hostrefresh.controlplane import ControlPlane
from hostrefresh.kube.client import load_config, sync_client
from hostrefresh.nodeagent.host import watch_refreshes
from tests.cli.fleet import make_refresh

pytestmark = pytest.mark.integration
CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture(scope="module")
def old_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("old-server"))
    cp.start()
    try:
        for path in sorted(CRDS.glob("*.yaml")):
            crd = yaml.safe_load(path.read_text())
            for version in crd["spec"]["versions"]:
                version.pop("selectableFields", None)
            cp.kubectl("apply", "-f", "-", stdin=json.dumps(crd))
        cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        yield cp
    finally:
        cp.stop()


def test_without_selectable_fields_the_agent_watches_all_and_keeps_its_own(
    old_server: ControlPlane, caplog: pytest.LogCaptureFixture
) -> None:
    refused = old_server.kubectl("get", "hostrefreshes", "--field-selector=spec.nodeName=node-a", check=False)
    assert refused.returncode != 0, "this server must refuse the field selector, as 1.30 does"
    client = sync_client(old_server.kubeconfig)
    make_refresh(client, "hr-a", "node-a", None, {})
    make_refresh(client, "hr-b", "node-b", None, {})

    async def first_events() -> list[str]:
        client = AsyncClient(config=load_config(old_server.kubeconfig))
        seen: list[str] = []
        try:
            async with asyncio.timeout(20):
                async for _, body in watch_refreshes(client, "node-a"):
                    seen.append(f"{body['spec']['nodeName']}/{body['metadata']['name']}")
                    if len(seen) == 2:
                        break
        finally:
            await client.close()
        return seen

    assert sorted(asyncio.run(first_events())) == ["node-a/hr-a", "node-b/hr-b"]  # the caller keeps node-a's
    assert "cannot select HostRefresh objects by spec.nodeName" in caplog.text
