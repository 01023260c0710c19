"""The components' names and where their Leases live (plain values: importable without an API client)."""

from __future__ import annotations

import hashlib
from typing import Final

#: The two components: their commands, field managers and (the operator's) leader Lease and Events.
AGENT: Final = "hostrefresh-agent"
OPERATOR: Final = "hostrefresh-operator"
#: Namespace of the agents' heartbeat Leases and the operator's leader Lease.
DEFAULT_NAMESPACE: Final = "hostrefresh-system"
AGENT_LEASE_PREFIX: Final = f"{AGENT}-"
AGENT_COMPONENT_LABEL: Final = {"app.kubernetes.io/component": AGENT}


#: Longest object name (a DNS subdomain); a node name too long for the prefix in front of it keeps
#: this many of its characters, then a hash of the whole (admission checks that shape, see the chart).
NAME_MAX: Final = 253
LEASE_HASH_CHARS: Final = 10
LEASE_NODE_HEAD: Final = NAME_MAX - len(AGENT_LEASE_PREFIX) - LEASE_HASH_CHARS


def agent_lease_name(node: str) -> str:
    """One heartbeat Lease per node, never shared: ``hostrefresh-agent-<node>``, or for a node name
    too long for that, its first characters and a hash of the whole name.

    The hash is hex and follows the kept characters directly (no separator), so the result stays a DNS
    subdomain whatever character the cut ends on: a cut after a dot starts a part with a digit or letter.
    """
    name = f"{AGENT_LEASE_PREFIX}{node}"
    if len(name) <= NAME_MAX:
        return name
    digest = hashlib.sha256(node.encode()).hexdigest()[:LEASE_HASH_CHARS]
    return f"{AGENT_LEASE_PREFIX}{node[:LEASE_NODE_HEAD]}{digest}"
