"""The per-node VM inventory: one JSON file per VM in the node's runtime directory.

Why files: the agent can be killed at any moment and its successor must carry on its work, so the
inventory lives outside the process. In a two-host node each host has its own inventory of the QEMUs
it runs (nothing of it is shared; VMs cross over through the handover channel, see twohost.py). A record
says which instances exist (pid + monitor sockets per role) and which role owns the VM; it is written
before every action that changes placement (write-ahead) and atomically (rename), and is always checked
against what can be observed (pids, QMP) before anyone acts on it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hostrefresh.nodeagent.migrate.process import Instance
from hostrefresh.nodeagent.migrate.types import ROLES, Role, VmSpec


@dataclass(frozen=True)
class VmRecord:
    """One VM: its spec, the role that owns it, and the instances recorded for it."""

    spec: VmSpec
    owner: Role = "source"
    instances: dict[Role, Instance] = field(default_factory=dict)
    # The handover paused the running guest before a copy migration (TCG; see handover.py): the
    # destination must be resumed once it holds the guest, even by an agent that did not pause it.
    paused_for_copy: bool = False
    # Its owner had paused the guest when the handover began: it stays paused wherever it ends up,
    # a failed handover included (recovery resumes only what the handover itself paused).
    user_paused: bool = False
    # A VMM-only refresh is moving this VM to an instance of this binary (written before the move
    # starts, so a restarted agent starts the same one): the target instance runs ``spec_for("target")``.
    target_qemu: str | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    def spec_for(self, role: Role) -> VmSpec:
        """The spec an instance of ``role`` runs: the VM's own, with the refresh's VMM for the target."""
        if role == "target" and self.target_qemu:
            return replace(self.spec, qemu=self.target_qemu)
        return self.spec

    def with_instance(self, inst: Instance) -> VmRecord:
        return replace(self, instances={**self.instances, inst.role: inst})

    def without_instance(self, role: Role) -> VmRecord:
        return replace(self, instances={r: i for r, i in self.instances.items() if r != role})

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "owner": self.owner,
            "spec": self.spec.to_dict(),
            "instances": {role: inst.to_dict() for role, inst in self.instances.items()},
            "paused_for_copy": self.paused_for_copy,
            "user_paused": self.user_paused,
            "target_qemu": self.target_qemu,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VmRecord:
        instances: dict[Role, Instance] = {}
        for role in ROLES:
            if role in data.get("instances", {}):
                instances[role] = Instance.from_dict(data["instances"][role])
        owner: Role = "target" if data.get("owner") == "target" else "source"
        return cls(
            spec=VmSpec.from_dict(data["spec"]),
            owner=owner,
            instances=instances,
            paused_for_copy=bool(data.get("paused_for_copy", False)),
            user_paused=bool(data.get("user_paused", False)),
            target_qemu=data.get("target_qemu") or None,
        )


class Inventory:
    """Directory `<root>/vms/` with `<name>.json` per VM; safe against crashes mid-write."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "vms"

    def _path(self, name: str) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"bad VM name {name!r}")
        return self.dir / f"{name}.json"

    def save(self, record: VmRecord) -> None:
        final = self._path(record.name)
        self.dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=f".{record.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(record.to_dict(), out, indent=2, sort_keys=True)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, final)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self, name: str) -> VmRecord:
        return VmRecord.from_dict(json.loads(self._path(name).read_text()))

    def get(self, name: str) -> VmRecord | None:
        try:
            return self.load(name)
        except FileNotFoundError:
            return None

    def names(self) -> list[str]:
        if not self.dir.is_dir():
            return []
        return sorted(p.stem for p in self.dir.glob("*.json"))

    def records(self) -> list[VmRecord]:
        return [rec for rec in (self.get(n) for n in self.names()) if rec is not None]

    def monitors(self) -> set[str]:
        """The control sockets of every recorded instance: the QEMUs this host knows it runs."""
        return {inst.qmp_socket for rec in self.records() for inst in rec.instances.values()}

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)
