"""The components' names and where their Leases live (plain values: importable without an API client)."""

from __future__ import annotations

from typing import Final

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
