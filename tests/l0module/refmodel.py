"""A small pure-Python reference model of the L0 state machine.

Written from docs/hypercalls.rst independently of the C code; the property
test drives it and the simulated L0 with the same calls and demands the same
status, the same returned ids and the same state after every step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from hostrefresh.l0 import MEM_ALIGN, L1State, Status

MAX_PARTITIONS = 8
MAX_L1S = 8
MAX_GRANTS = 32
MAX_RANGES = 16
MAX_GRANT_RANGES = 16

Range = tuple[int, int]  # (base, size)


def overlap(a: Range, b: Range) -> bool:
    return a[0] < b[0] + b[1] and b[0] < a[0] + a[1]


def valid(r: Range) -> bool:
    return r[1] > 0 and r[0] % MEM_ALIGN == 0 and r[1] % MEM_ALIGN == 0


def normalize(ranges: list[Range]) -> list[Range]:
    out: list[Range] = []
    for base, size in sorted(ranges):
        if out and out[-1][0] + out[-1][1] == base:
            out[-1] = (out[-1][0], out[-1][1] + size)
        else:
            out.append((base, size))
    return out


def contains(ranges: list[Range], r: Range) -> bool:
    return any(r[0] >= b and r[0] + r[1] <= b + s for b, s in ranges)


def subtract(ranges: list[Range], r: Range) -> list[Range]:
    out: list[Range] = []
    for b, s in ranges:
        if r[0] >= b and r[0] + r[1] <= b + s:
            if r[0] > b:
                out.append((b, r[0] - b))
            if r[0] + r[1] < b + s:
                out.append((r[0] + r[1], b + s - r[0] - r[1]))
        else:
            out.append((b, s))
    return out


@dataclass
class Part:
    id: int
    parent: int
    owner: int
    cpus: set[int]
    mem: list[Range]


@dataclass
class Host:
    id: int
    state: L1State
    partition: int
    sha: bytes


@dataclass
class Model:
    n_cpus: int
    mem_bytes: int
    nested: bool = False
    generation: int = 0
    next_pid: int = 2
    next_l1: int = 2
    parts: list[Part] = field(default_factory=list)
    l1s: list[Host] = field(default_factory=list)
    grants: list[tuple[int, int, Range]] = field(default_factory=list)

    @classmethod
    def power_on(cls, n_cpus: int, mem_bytes: int) -> Model:
        m = cls(n_cpus, mem_bytes)
        m.parts.append(Part(1, 0, 1, set(range(n_cpus)), [(0, mem_bytes)]))
        m.l1s.append(Host(1, L1State.RUNNING, 1, bytes(32)))
        return m

    # -- helpers --
    def part(self, pid: int) -> Part | None:
        return next((p for p in self.parts if p.id == pid), None)

    def host(self, lid: int) -> Host | None:
        return next((h for h in self.l1s if h.id == lid), None)

    def runs(self, p: Part) -> bool:
        h = self.host(p.owner) if p.owner else None
        return h is not None and h.state is L1State.RUNNING

    def n_running(self) -> int:
        return sum(h.state is L1State.RUNNING for h in self.l1s)

    def apply(self, call: str, *args: object) -> tuple[Status, int | None]:
        """Run one call; a failure leaves the model untouched."""
        work = copy.deepcopy(self)
        status, out = getattr(work, "_" + call)(*args)
        if status is Status.OK:
            work.generation += 1
            self.__dict__.update(work.__dict__)
        return status, out

    # -- calls (same checks, same order as the documentation) --
    def _partition_create(self, cpus: set[int], mem: list[Range]) -> tuple[Status, int | None]:
        if not cpus or not mem or len(mem) > MAX_RANGES or not all(valid(r) for r in mem):
            return Status.E_INVALID, None
        if any(overlap(a, b) for i, a in enumerate(mem) for b in mem[:i]):
            return Status.E_INVALID, None
        if len(self.parts) >= MAX_PARTITIONS:
            return Status.E_LIMIT, None
        donor = None
        for c in sorted(cpus):
            if c >= self.n_cpus:
                return Status.E_INVALID, None
            owner = next((p for p in self.parts if c in p.cpus), None)
            donor = donor or owner
            if owner is None or owner is not donor:
                return Status.E_RESOURCE, None
        assert donor is not None
        if not self.runs(donor):
            return Status.E_RESOURCE, None
        carved = list(donor.mem)
        for r in mem:
            if not contains(donor.mem, r):
                return Status.E_RESOURCE, None
            if any(g[2][1] and overlap(r, g[2]) for g in self.grants):
                return Status.E_RESOURCE, None
            carved = subtract(carved, r)
            if len(carved) > MAX_RANGES:
                return Status.E_LIMIT, None
        rest = donor.cpus - cpus
        if not rest or not carved:
            return Status.E_RESOURCE, None
        donor.cpus, donor.mem = rest, carved
        pid = self.next_pid
        self.next_pid += 1
        self.parts.append(Part(pid, donor.id, 0, set(cpus), normalize(list(mem))))
        return Status.OK, pid

    def _merge(self, into: Part, frm: Part) -> bool:
        mem = normalize(into.mem + frm.mem)
        if len(mem) > MAX_RANGES:
            return False
        into.mem, into.cpus = mem, into.cpus | frm.cpus
        return True

    def _partition_destroy(self, pid: int) -> tuple[Status, int | None]:
        p = self.part(pid)
        if p is None:
            return Status.E_NOT_FOUND, None
        if self.runs(p):
            return Status.E_BUSY, None
        parent = self.part(p.parent) if p.parent else None
        if parent is None:
            return Status.E_WRONG_STATE, None
        if not self._merge(parent, p):
            return Status.E_LIMIT, None
        self.parts.remove(p)
        for q in self.parts:
            if q.parent == pid:
                q.parent = parent.id
        return Status.OK, None

    def _nested_enable(self) -> tuple[Status, int | None]:
        if self.nested:
            return Status.E_ALREADY, None
        self.nested = True
        return Status.OK, None

    def _nested_disable(self) -> tuple[Status, int | None]:
        if not self.nested:
            return Status.E_ALREADY, None
        if self.n_running() > 1 or len(self.parts) > 1:
            return Status.E_BUSY, None
        self.nested = False
        return Status.OK, None

    def _l1_boot(self, pid: int, sha: bytes, image_ok: bool) -> tuple[Status, int | None]:
        if not self.nested:
            return Status.E_WRONG_STATE, None
        p = self.part(pid)
        if p is None:
            return Status.E_NOT_FOUND, None
        if self.runs(p):
            return Status.E_BUSY, None
        if len(self.l1s) >= MAX_L1S:
            victim = next((h for h in self.l1s if h.state is not L1State.RUNNING), None)
            if victim is None:
                return Status.E_LIMIT, None
        else:
            victim = None
        if not image_ok:
            return Status.E_IMAGE, None
        if victim is not None:
            self.l1s.remove(victim)
        lid = self.next_l1
        self.next_l1 += 1
        self.l1s.append(Host(lid, L1State.RUNNING, pid, sha))
        p.owner = lid
        return Status.OK, lid

    def _running(self, lid: int) -> Status:
        h = self.host(lid)
        if h is None:
            return Status.E_NOT_FOUND
        return Status.OK if h.state is L1State.RUNNING else Status.E_WRONG_STATE

    def _mem_grant(self, src: int, dst: int, mem: list[Range]) -> tuple[Status, int | None]:
        if src == dst or len(mem) > MAX_GRANT_RANGES or not all(valid(r) for r in mem):
            return Status.E_INVALID, None
        if any(overlap(a, b) for i, a in enumerate(mem) for b in mem[:i]):
            return Status.E_INVALID, None
        for lid in (src, dst):
            st = self._running(lid)
            if st is not Status.OK:
                return st, None
        if not self.nested:
            return Status.E_WRONG_STATE, None
        host = self.host(src)
        assert host is not None
        sp = self.part(host.partition)
        add = []
        for r in mem or [(0, 0)]:
            if r[1] and not (sp and contains(sp.mem, r)):
                return Status.E_RESOURCE, None
            dup = False
            for gs, gd, gr in self.grants:
                if (gs, gd, gr) == (src, dst, r):
                    dup = True
                    break
                if r[1] and gr[1] and overlap(r, gr):
                    return Status.E_RESOURCE, None
            if not dup:
                add.append((src, dst, r))
        if not add:
            return Status.E_ALREADY, None
        if len(self.grants) + len(add) > MAX_GRANTS:
            return Status.E_LIMIT, None
        self.grants += add
        return Status.OK, None

    def _drop_grants(self, lid: int) -> None:
        self.grants = [g for g in self.grants if lid not in (g[0], g[1])]

    def _l1_retire(self, src: int, dst: int) -> tuple[Status, int | None]:
        if src == dst:
            return Status.E_INVALID, None
        for lid in (src, dst):
            st = self._running(lid)
            if st is not Status.OK:
                return st, None
        if not self.nested:
            return Status.E_WRONG_STATE, None
        if not any(g[0] == src and g[1] == dst for g in self.grants):
            return Status.E_NO_GRANT, None
        hs, hd = self.host(src), self.host(dst)
        assert hs and hd
        sp, dp = self.part(hs.partition), self.part(hd.partition)
        if sp is None or dp is None or sp is dp:
            return Status.E_WRONG_STATE, None
        if not self._merge(dp, sp):
            return Status.E_LIMIT, None
        if dp.parent == sp.id:
            dp.parent = sp.parent
        hs.state = L1State.RETIRED
        self._drop_grants(src)
        self.parts.remove(sp)
        for q in self.parts:
            if q.parent == sp.id:
                q.parent = dp.id
        return Status.OK, None

    def _l1_stop(self, lid: int) -> tuple[Status, int | None]:
        h = self.host(lid)
        if h is None:
            return Status.E_NOT_FOUND, None
        if h.state is L1State.STOPPED:
            return Status.E_ALREADY, None
        if h.state is not L1State.RUNNING or self.n_running() == 1:
            return Status.E_WRONG_STATE, None
        h.state = L1State.STOPPED
        self._drop_grants(lid)
        return Status.OK, None
