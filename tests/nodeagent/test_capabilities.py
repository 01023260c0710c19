"""What the agent reports of its node on its heartbeat Lease."""

from __future__ import annotations

import json
from pathlib import Path

from hostrefresh.l0 import open_l0
from hostrefresh.nodeagent.capabilities import annotation_value, capabilities
from hostrefresh.sim.node import SimNodeSpec, create_sim_node


def test_the_agent_reports_its_nodes_l0(tmp_path: Path) -> None:
    create_sim_node(tmp_path, "n1", SimNodeSpec())
    with open_l0("sim", tmp_path / "n1" / "l0.state") as l0:
        report = capabilities(l0)
    assert report["l0"] == "present" and report["l0Backend"] == "sim" and report["kernel"]
    assert json.loads(annotation_value(report)) == report


def test_a_node_without_an_l0_is_reported_so(tmp_path: Path) -> None:
    # The vmcall backend on a machine with no L0 under it (this one): the handshake finds none.
    with open_l0("vmcall") as l0:
        report = capabilities(l0)
    assert report["l0"] == "absent", report
