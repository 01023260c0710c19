"""The agent's writes: ``status.agent`` of its node's HostRefresh (it writes nothing else there)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lightkube import ApiError, AsyncClient
from lightkube.types import PatchType

from hostrefresh.api import AgentStatus, HandoverPath, VMResult, VMResultState
from hostrefresh.kube.errors import until_answered
from hostrefresh.kube.resources import HostRefreshResource
from hostrefresh.nodeagent import metrics
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
    """Merge-patches ``status.agent``; the agent is its only writer, so no resourceVersion guard.

    A report the API server does not answer (restarted, overloaded, a connection reset) is sent again
    until it is answered: the API server's condition is never the step's. Without this a step whose
    Running report met a restarting API server was reported failed (AgentError), and one past the point
    of no return could end Failed with the node half-way. While the report waits, the step it reports
    goes on; what waits is only the next decision that needs the report written.
    """

    def __init__(self, client: AsyncClient, max_retry_delay: float = 5.0) -> None:
        self.client = client
        self.max_retry_delay = max_retry_delay

    async def report(self, name: str, agent: AgentStatus) -> None:
        async def patch() -> None:
            agent.updated_at = datetime.now(UTC)  # stamped when sent: the operator reads it as a sign of life
            body: dict[str, Any] = {"status": {"agent": agent.to_json()}}
            if agent.nested_since is None:
                body["status"]["agent"]["nestedSince"] = None  # merge patch: clear it
            if agent.failure_reason is None:
                body["status"]["agent"]["failureReason"] = None
            await self.client.patch(HostRefreshResource.Status, name, body, patch_type=PatchType.MERGE)

        def count(exc: BaseException, delay: float) -> None:
            metrics.API_RETRIES.labels("report").inc()

        await until_answered(patch, f"report on HostRefresh {name}", max_delay=self.max_retry_delay, on_retry=count)

    async def read(self, name: str) -> Mapping[str, Any] | None:
        """HostRefresh ``name`` as the API server has it now (None: it is gone), not as a watch last
        delivered it; an API error is raised (the caller tries again later)."""
        try:
            obj = await self.client.get(HostRefreshResource, name)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        body: dict[str, Any] = obj.to_dict()  # type: ignore[no-untyped-call]
        return body
