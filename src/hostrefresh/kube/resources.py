"""lightkube resource classes for our CRDs and for KubeVirt's VirtualMachineInstance."""

from __future__ import annotations

from lightkube.generic_resource import create_global_resource, create_namespaced_resource

from hostrefresh.api import GROUP, VERSION, HostRefresh, RefreshPlan

HostRefreshResource = create_global_resource(GROUP, VERSION, HostRefresh.KIND, HostRefresh.PLURAL)
RefreshPlanResource = create_global_resource(GROUP, VERSION, RefreshPlan.KIND, RefreshPlan.PLURAL)
VirtualMachineInstance = create_namespaced_resource(
    "kubevirt.io", "v1", "VirtualMachineInstance", "virtualmachineinstances"
)
