"""What a node can do, as its agent reports it on its heartbeat Lease (``CAPABILITIES_ANNOTATION``).

Why: a host refresh needs an L0 under the node's host. Without one, every step after the grant
would fail on the node (after it was tainted); with the report, the operator makes such a refresh
wait with a condition that says what to do (``spec.scope: VMM``, or install the L0), and a person
reads the same report with ``kubectl get lease -o yaml`` or ``kubectl hostrefresh describe``.
"""

from __future__ import annotations

import json
import os

from hostrefresh.l0 import L0, L0Error


def capabilities(l0: L0) -> dict[str, str]:
    """The report (blocking: one L0 handshake). An L0 the handshake fails on counts as absent."""
    try:
        probe = l0.probe()
    except L0Error:
        return {"l0": "absent", "l0Backend": "", "kernel": os.uname().release}
    state = "present" if probe.compatible else "incompatible" if probe.present else "absent"
    return {"l0": state, "l0Backend": str(probe.backend), "kernel": os.uname().release}


def annotation_value(report: dict[str, str]) -> str:
    """The report as the annotation holds it (compact JSON, keys sorted: an unchanged report is an
    unchanged annotation)."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"))
