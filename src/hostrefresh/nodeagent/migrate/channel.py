"""The inter-partition handover channel: how the old and the new host of a node agree on each VM.

The two hosts of a node share nothing but what the L0 provides across partitions. One of those
things is a channel for handovers: here a directory both hosts see (on a real machine, a
shared-memory ring the L0 sets up between the two partitions). For each VM in transit there is one
transfer, ``<dir>/<vm>/<from>-<to>/``, holding small files that each side writes once, atomically:

``offer.json``    sender: the VM's spec (the receiver starts its QEMU from it), whether it runs
``ready.json``    receiver: a paused destination listens on ``m.sock`` (in the transfer dir)
``outcome``       either side, created exclusively (O_EXCL): ``arrived`` (the receiver is about to
                  resume the guest) or ``aborted`` (the sender takes the guest back). Whoever creates
                  it first decides; the loser obeys. This single file is what makes "never two running
                  instances" hold: the receiver resumes only after winning ``arrived``, the sender
                  resumes its own instance only after winning ``aborted``.
``arrived.json``  receiver: when and how fast the guest was resumed (figures for the records)
``released``      receiver: after ``aborted``, its destination is stopped (the sender may resume)
``lost.json``     sender, after ``aborted``: its own instance is gone too, so the VM runs nowhere (a
                  recall of a VM whose QEMU died on the new host ends here instead of waiting forever)
``<vm>/recall.json``  the node's driving agent asks the host that holds the VM to send it back

Everything is observed from files, so either agent can crash and its successor reads where the
transfer stands.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARRIVED = "arrived"
ABORTED = "aborted"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the whole file or none. No fsync: the channel is the L0's memory, which no power
    loss leaves behind either (and an fsync would sit inside a guest's downtime)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class Transfer:
    """One VM's passage from L1 ``frm`` to L1 ``to``."""

    dir: Path
    vm: str
    frm: int
    to: int

    @property
    def socket(self) -> Path:
        """Where the destination listens for the migration stream."""
        return self.dir / "m.sock"

    def offer(self) -> dict[str, Any] | None:
        return _read(self.dir / "offer.json")

    def post_offer(self, spec: dict[str, Any], *, user_paused: bool) -> None:
        _write_atomic(self.dir / "offer.json", {"spec": spec, "userPaused": user_paused, "from": self.frm})

    def ready(self) -> dict[str, Any] | None:
        return _read(self.dir / "ready.json")

    def post_ready(self, start_ms: float) -> None:
        _write_atomic(self.dir / "ready.json", {"socket": str(self.socket), "startMillis": start_ms})

    def outcome(self) -> str | None:
        try:
            return (self.dir / "outcome").read_text().strip() or None
        except FileNotFoundError:
            return None

    def decide(self, outcome: str) -> str:
        """Create ``outcome`` if nobody has; returns the outcome that stands (ours or the other's)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(self.dir / "outcome", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return self.outcome() or outcome
        with os.fdopen(fd, "w") as out:
            out.write(outcome)
        return outcome

    def arrived(self) -> dict[str, Any] | None:
        return _read(self.dir / "arrived.json")

    def post_arrived(self, figures: dict[str, Any]) -> None:
        _write_atomic(self.dir / "arrived.json", figures)

    def released(self) -> bool:
        return (self.dir / "released").exists()

    def post_released(self) -> None:
        _write_atomic(self.dir / "released", {})

    def lost(self) -> dict[str, Any] | None:
        return _read(self.dir / "lost.json")

    def post_lost(self, reason: str) -> None:
        _write_atomic(self.dir / "lost.json", {"reason": reason, "from": self.frm})


class HandoverChannel:
    """The channel directory of one node, as one host sees it (``me``: this host's L1 id)."""

    def __init__(self, root: Path, me: int) -> None:
        self.root = root
        self.me = me

    def transfer(self, vm: str, frm: int, to: int) -> Transfer:
        if not vm or "/" in vm or vm.startswith("."):
            raise ValueError(f"bad VM name {vm!r}")
        return Transfer(self.root / vm / f"{frm}-{to}", vm, frm, to)

    def transfers(self) -> list[Transfer]:
        """Every transfer in the channel, oldest L1 pair first."""
        out: list[Transfer] = []
        if not self.root.is_dir():
            return out
        for vm_dir in sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for t_dir in sorted(p for p in vm_dir.iterdir() if p.is_dir()):
                with contextlib.suppress(ValueError):
                    frm, to = (int(x) for x in t_dir.name.split("-", 1))
                    out.append(Transfer(t_dir, vm_dir.name, frm, to))
        return out

    def incoming(self) -> list[Transfer]:
        """Transfers whose receiver is this host."""
        return [t for t in self.transfers() if t.to == self.me]

    def recall_requested(self, vm: str) -> int | None:
        """The L1 that asked for ``vm`` back, if any."""
        data = _read(self.root / vm / "recall.json")
        return int(data["to"]) if data and isinstance(data.get("to"), int) else None

    def request_recall(self, vm: str, to: int) -> None:
        _write_atomic(self.root / vm / "recall.json", {"to": to})

    def forget(self, vm: str) -> None:
        """The VM's handovers are over (committed or rolled back): nothing of them is kept."""
        shutil.rmtree(self.root / vm, ignore_errors=True)

    def forget_transfer(self, transfer: Transfer) -> None:
        """One aborted transfer is over; the VM's other transfers stay. A failed recall must not take
        the record that the VM went to the other host with it: that record is how the driving host
        still knows, on the next try, that the VM runs there."""
        shutil.rmtree(transfer.dir, ignore_errors=True)
        if self.recall_requested(transfer.vm) == transfer.to:
            (self.root / transfer.vm / "recall.json").unlink(missing_ok=True)
        with contextlib.suppress(OSError):  # only when nothing else is left of the VM
            (self.root / transfer.vm).rmdir()

    def vms(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
