"""Typed, immutable views of what the L0 reports and what callers send it.

Snapshots are frozen dataclasses: the node agent resumes from them after a
crash, so they must be plain values that cannot drift from the L0's state.
Every number below is read from the C header through the thin layer (`_binding`).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from pathlib import Path

from hostrefresh.l0 import _binding as b


class Backend(enum.StrEnum):
    """Which libl0 backend talks to the L0."""

    SIM = "sim"  # the simulated L0 (state file; tests and development)
    VMCALL = "vmcall"  # the real L0 through VMCALL/VMMCALL

    @property
    def code(self) -> int:
        return int(b.L0_BACKEND_SIM if self is Backend.SIM else b.L0_BACKEND_VMCALL)


class Call(enum.IntEnum):
    """Hypercall numbers."""

    PROBE = b.L0_CALL_PROBE
    QUERY = b.L0_CALL_QUERY
    PARTITION_CREATE = b.L0_CALL_PARTITION_CREATE
    PARTITION_DESTROY = b.L0_CALL_PARTITION_DESTROY
    NESTED_ENABLE = b.L0_CALL_NESTED_ENABLE
    NESTED_DISABLE = b.L0_CALL_NESTED_DISABLE
    L1_BOOT = b.L0_CALL_L1_BOOT
    MEM_GRANT = b.L0_CALL_MEM_GRANT
    L1_RETIRE = b.L0_CALL_L1_RETIRE
    L1_STOP = b.L0_CALL_L1_STOP


class Status(enum.IntEnum):
    """Status codes returned by every call."""

    OK = b.L0_OK
    E_NO_L0 = b.L0_E_NO_L0
    E_UNAVAILABLE = b.L0_E_UNAVAILABLE
    E_ABI = b.L0_E_ABI
    E_INVALID = b.L0_E_INVALID
    E_UNKNOWN_CALL = b.L0_E_UNKNOWN_CALL
    E_NOT_FOUND = b.L0_E_NOT_FOUND
    E_ALREADY = b.L0_E_ALREADY
    E_WRONG_STATE = b.L0_E_WRONG_STATE
    E_BUSY = b.L0_E_BUSY
    E_RESOURCE = b.L0_E_RESOURCE
    E_LIMIT = b.L0_E_LIMIT
    E_NO_GRANT = b.L0_E_NO_GRANT
    E_IMAGE = b.L0_E_IMAGE
    E_HW = b.L0_E_HW
    E_IO = b.L0_E_IO
    E_CORRUPT = b.L0_E_CORRUPT


class L1State(enum.IntEnum):
    """Lifecycle of an L1 as the L0 sees it."""

    RUNNING = b.L0_L1_RUNNING
    RETIRED = b.L0_L1_RETIRED
    STOPPED = b.L0_L1_STOPPED


class Feature(enum.IntFlag):
    """Feature bits from probe; a call whose bit is missing fails with UnknownCallError."""

    PARTITION = b.L0_FEAT_PARTITION
    NESTED = b.L0_FEAT_NESTED
    L1_BOOT = b.L0_FEAT_L1_BOOT
    MEM_GRANT = b.L0_FEAT_MEM_GRANT
    L1_RETIRE = b.L0_FEAT_L1_RETIRE
    L1_STOP = b.L0_FEAT_L1_STOP
    SIMULATED = b.L0_FEAT_SIMULATED


ABI_VERSION: int = b.L0_ABI_VERSION
MEM_ALIGN: int = b.L0_MEM_ALIGN


@dataclass(frozen=True, slots=True)
class MemRange:
    """Guest-physical memory [base, base+size), aligned to MEM_ALIGN."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size

    def __str__(self) -> str:
        return f"[{self.base:#x}+{self.size:#x}]"


@dataclass(frozen=True, slots=True)
class ProbeInfo:
    """The handshake: is an L0 there, which ABI, which features."""

    present: bool
    abi_version: int
    features: Feature
    backend: Backend
    signature: str

    @property
    def simulated(self) -> bool:
        return Feature.SIMULATED in self.features

    @property
    def compatible(self) -> bool:
        return self.present and self.abi_version >> 16 == ABI_VERSION >> 16


@dataclass(frozen=True, slots=True)
class Partition:
    """Disjoint slice of the machine; parent is where its resources return on destroy."""

    id: int
    parent: int | None
    owner_l1: int | None
    cpus: frozenset[int]
    memory: tuple[MemRange, ...]

    @property
    def memory_bytes(self) -> int:
        return sum(r.size for r in self.memory)


@dataclass(frozen=True, slots=True)
class L1:
    """A host (L1) the L0 has run; retired and stopped ones stay visible for resumption."""

    id: int
    state: L1State
    partition: int
    image_sha256: bytes

    @property
    def running(self) -> bool:
        return self.state is L1State.RUNNING


@dataclass(frozen=True, slots=True)
class Grant:
    """Source L1 handed memory (or, with range None, just the handover) to the target L1."""

    source_l1: int
    target_l1: int
    range: MemRange | None


@dataclass(frozen=True, slots=True)
class L0State:
    """Everything the L0 knows; the node agent resumes from this, never from memory."""

    abi_version: int
    features: Feature
    nested: bool
    n_cpus: int
    mem_bytes: int
    generation: int
    next_partition_id: int
    next_l1_id: int
    partitions: tuple[Partition, ...]
    l1s: tuple[L1, ...]
    grants: tuple[Grant, ...]

    def partition(self, partition_id: int) -> Partition | None:
        return next((p for p in self.partitions if p.id == partition_id), None)

    def l1(self, l1_id: int) -> L1 | None:
        return next((x for x in self.l1s if x.id == l1_id), None)

    @property
    def running_l1s(self) -> tuple[L1, ...]:
        return tuple(x for x in self.l1s if x.running)

    def granted(self, source_l1: int, target_l1: int) -> bool:
        return any(g.source_l1 == source_l1 and g.target_l1 == target_l1 for g in self.grants)

    def summary(self) -> str:
        """One line for logs and error context."""
        parts = ", ".join(
            f"P{p.id}(cpus={len(p.cpus)}, mem={p.memory_bytes >> 20}MiB, L1={p.owner_l1 or '-'})"
            for p in self.partitions
        )
        l1s = ", ".join(f"L1 {x.id} {x.state.name.lower()}" for x in self.l1s)
        return (
            f"nested={'on' if self.nested else 'off'}; partitions: {parts}; {l1s}; "
            f"grants={len(self.grants)}; generation={self.generation}"
        )


@dataclass(frozen=True, slots=True)
class Image:
    """What to boot as the new L1; sha256 covers the kernel bytes then the initrd bytes."""

    kernel: str
    sha256: bytes
    initrd: str = ""
    cmdline: str = ""

    @classmethod
    def from_files(cls, kernel: str | Path, initrd: str | Path = "", cmdline: str = "") -> Image:
        """Describe an image on disk, computing its checksum the way the L0 checks it."""
        h = hashlib.sha256(Path(kernel).read_bytes())
        if initrd:
            h.update(Path(initrd).read_bytes())
        return cls(kernel=str(kernel), sha256=h.digest(), initrd=str(initrd), cmdline=cmdline)


@dataclass(frozen=True, slots=True)
class FaultRule:
    """Simulated-L0 fault: fail `call` (None: every call but probe) with `status`.

    Eligible from the `nth` matching call on (0: from the first), at most `times`
    failures (0: unlimited), each with `probability`; `latency_s` is added to
    every matching call.  status OK makes a latency-only rule.
    """

    call: Call | None
    status: Status
    nth: int = 0
    times: int = 0
    probability: float = 1.0
    latency_s: float = 0.0
    hits: int = 0
    fired: int = 0
