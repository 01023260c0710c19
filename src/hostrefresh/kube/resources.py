"""lightkube resource classes for our CRDs and for KubeVirt's VirtualMachineInstance."""

from __future__ import annotations

from typing import Final

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from hostrefresh.api import GROUP, VERSION, HostRefresh, RefreshPlan
from hostrefresh.api.names import FINALIZER, NODE_ANNOTATION, NODE_LABEL, PLAN_LABEL

__all__ = [
    "AGENT",
    "AGENT_COMPONENT_LABEL",
    "AGENT_LEASE_PREFIX",
    "DEFAULT_NAMESPACE",
    # The API's label, annotation and finalizer keys are defined in hostrefresh.api.names; these
    # re-exports keep the operator's imports working until it imports them from there.
    "FINALIZER",
    "NODE_ANNOTATION",
    "NODE_LABEL",
    "OPERATOR",
    "PLAN_LABEL",
    "HostRefreshResource",
    "RefreshPlanResource",
    "VirtualMachineInstance",
    "agent_lease_name",
]

HostRefreshResource = create_global_resource(GROUP, VERSION, HostRefresh.KIND, HostRefresh.PLURAL)
RefreshPlanResource = create_global_resource(GROUP, VERSION, RefreshPlan.KIND, RefreshPlan.PLURAL)
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)

#: The two components: their commands, field managers and (the operator's) leader Lease and Events.
AGENT: Final = "hostrefresh-agent"
OPERATOR: Final = "hostrefresh-operator"
#: Namespace of the agents' heartbeat Leases and the operator's leader Lease.
DEFAULT_NAMESPACE: Final = "hostrefresh-system"
AGENT_LEASE_PREFIX: Final = f"{AGENT}-"
AGENT_COMPONENT_LABEL: Final = {"app.kubernetes.io/component": AGENT}


def agent_lease_name(node: str) -> str:
    """One heartbeat Lease per node."""
    return f"{AGENT_LEASE_PREFIX}{node}"[:253]
