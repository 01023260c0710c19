"""Operator latency with 100 refreshes in flight, and API requests made by the operator per node refresh.

Three figures (issue 5), each measured against a real kube-apiserver + etcd with the real operator and
agent processes (simulated nodes: simulated L0, fake sysfs, simulated VMs):

1. report -> status: from an agent's report (``status.agent.updatedAt``, stamped by the agent just
   before its PATCH) to the first watch event whose operator-written ``status.phase`` reflects it;
2. slot free -> next grant: in a RefreshPlan with ``maxUnavailable`` slots and more nodes than that,
   from a child reaching a terminal phase (watch receipt) to the next child's ``directive: Proceed``
   (watch receipt);
3. API requests by the operator's identity per node refresh, counted from the API server's audit log
   (and the operator's own ``hostrefresh_operator_api_requests_total`` counter).

Every run starts its own control plane, agent and operator processes in a temporary directory and
stops them. Results go to bench/results/operator_latency.json and .md.

    python bench/operator_latency.py [--refreshes 100] [--plan-nodes 150] [--max-unavailable 100] [--runs 3]
"""

# The code is in bench/latency/, one module per concern (its __init__ lists them); this file stays
# the command documented in bench/README.md. Run as a script, bench/ is first on sys.path.

from __future__ import annotations

import sys

from latency.cli import main as _main


def main(argv: list[str] | None = None) -> int:
    return _main(argv, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
