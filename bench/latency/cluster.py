"""The control plane of a run (kube-apiserver + etcd) with the audit log the analysis reads.

The audit policy logs only the operator's and the agent's identities, at Metadata level, written in
batches (asynchronously) so that counting requests does not slow every request.
"""

from __future__ import annotations

import ssl
import threading
import urllib.request
from pathlib import Path

from hostrefresh.controlplane import ControlPlane

from .audit import AGENT_USER, OPERATOR_USER

AUDIT_POLICY = f"""apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["{OPERATOR_USER}", "{AGENT_USER}"]
  - level: None
"""


def control_plane(workdir: Path, profiling: bool = False) -> tuple[ControlPlane, Path]:
    """A control plane in ``workdir`` (not started yet) and the path of its audit log.

    ``profiling``: serve kube-apiserver's pprof endpoints (for ``apiserver_profile``).
    """
    audit = workdir / "audit.log"
    policy = workdir / "audit-policy.yaml"
    policy.write_text(AUDIT_POLICY)
    extra = [
        f"--audit-policy-file={policy}",
        f"--audit-log-path={audit}",
        "--audit-log-format=json",
        "--audit-log-mode=batch",
    ]
    if profiling:
        extra.append("--profiling=true")
    return ControlPlane(workdir / "cp", extra_args=extra), audit


def apiserver_profile(cp: ControlPlane, seconds: int, out: Path) -> threading.Thread:
    """Fetch a ``seconds`` CPU profile of kube-apiserver (pprof) into ``out``, in the background.

    Read it with ``go tool pprof -top <kube-apiserver binary> <out>``.
    """
    assert cp.pki is not None
    pki = cp.workdir / "pki"

    def fetch() -> None:
        ctx = ssl.create_default_context(cafile=str(cp.pki.ca_cert))  # type: ignore[union-attr]
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        url = f"{cp.url}/debug/pprof/profile?seconds={seconds}"
        with urllib.request.urlopen(url, context=ctx, timeout=seconds + 30) as resp:
            out.write_bytes(resp.read())

    thread = threading.Thread(target=fetch, daemon=True, name="pprof")
    thread.start()
    return thread
