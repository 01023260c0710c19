"""A real local Kubernetes control plane (etcd + kube-apiserver) for tests and the demo.

Binaries are built from their Go modules at pinned versions (see ``versions``), cached per version
under the user's cache directory (``tools``), and started on loopback with client-certificate auth,
RBAC and admission on (``cluster``), much like controller-runtime's envtest.
"""

from hostrefresh.controlplane.cluster import ControlPlane
from hostrefresh.controlplane.tools import Toolset, ensure_tools

__all__ = ["ControlPlane", "Toolset", "ensure_tools"]
