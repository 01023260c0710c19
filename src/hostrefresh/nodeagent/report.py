"""The agent's writes: ``status.agent`` of its node's HostRefresh (it writes nothing else there)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from lightkube import AsyncClient
from lightkube.types import PatchType

from hostrefresh.api import AgentStatus, HandoverPath, VMResult, VMResultState
from hostrefresh.kube.resources import HostRefreshResource
from hostrefresh.nodeagent.migrate import HandoverPath as MigratorPath
from hostrefresh.nodeagent.migrate import HandoverRecord, Outcome

_PATHS = {MigratorPath.ZERO_COPY: HandoverPath.ZERO_COPY, MigratorPath.COPY: HandoverPath.COPY}


def vm_result(record: HandoverRecord, handing_back: bool) -> VMResult:
    """A migrator record as the per-VM result in status."""
    if record.outcome in (Outcome.MOVED, Outcome.ALREADY):
        state = VMResultState.HANDED_BACK if handing_back else VMResultState.HANDED_OVER
    else:
        state = VMResultState.FAILED
    return VMResult(
        name=record.name,
        result=state,
        path=_PATHS.get(record.path),
        downtime_millis=record.downtime_ms,
        total_millis=record.total_ms,
        bytes_transferred=record.bytes_transferred,
        message=(record.error or "")[:4096],
    )


def merge_vms(previous: list[VMResult], records: list[HandoverRecord], handing_back: bool) -> list[VMResult]:
    """Update per-VM results by name; an ALREADY record keeps the earlier measurement."""
    by_name = {vm.name: vm for vm in previous}
    for record in records:
        if record.outcome == Outcome.ALREADY and record.name in by_name:
            old = by_name[record.name]
            if handing_back and old.result != VMResultState.HANDED_BACK:
                by_name[record.name] = old.model_copy(update={"result": VMResultState.HANDED_BACK})
            continue
        by_name[record.name] = vm_result(record, handing_back)
    return [by_name[name] for name in sorted(by_name)]


class Reporter:
    """Merge-patches ``status.agent``; the agent is its only writer, so no resourceVersion guard."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def report(self, name: str, agent: AgentStatus) -> None:
        agent.updated_at = datetime.now(UTC)
        body: dict[str, Any] = {"status": {"agent": agent.to_json()}}
        if agent.nested_since is None:
            body["status"]["agent"]["nestedSince"] = None  # merge patch: clear it
        if agent.failure_reason is None:
            body["status"]["agent"]["failureReason"] = None
        await self.client.patch(HostRefreshResource.Status, name, body, patch_type=PatchType.MERGE)
