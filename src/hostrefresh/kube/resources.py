"""lightkube resource classes for our CRDs and for KubeVirt's VirtualMachineInstance."""

from __future__ import annotations

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from hostrefresh.api import GROUP, VERSION

HostRefreshResource = create_global_resource(GROUP, VERSION, "HostRefresh", "hostrefreshes")
RefreshPlanResource = create_global_resource(GROUP, VERSION, "RefreshPlan", "refreshplans")
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)

#: Namespace of the agents' heartbeat Leases and the operator's leader Lease.
DEFAULT_NAMESPACE = "hostrefresh-system"
AGENT_LEASE_PREFIX = "hostrefresh-agent-"
AGENT_COMPONENT_LABEL = {"app.kubernetes.io/component": "hostrefresh-agent"}
#: Label (and, with the full name, annotation) naming a node on its HostRefreshes and heartbeat Lease.
NODE_LABEL = "hostrefresh.io/node"
NODE_ANNOTATION = NODE_LABEL
PLAN_LABEL = "hostrefresh.io/plan"
#: The operator's finalizer on HostRefresh objects (kopf's, under our group).
FINALIZER = "hostrefresh.io/finalizer"


def agent_lease_name(node: str) -> str:
    """One heartbeat Lease per node."""
    return f"{AGENT_LEASE_PREFIX}{node}"[:253]
