"""The friendly layer: one `L0` object per node, typed in and out, exceptions on failure.

Backend selection (first match wins): the `backend` argument; env
``HOSTREFRESH_L0_BACKEND`` (``sim`` or ``vmcall``); ``sim`` when
``HOSTREFRESH_L0_SIM_STATE`` is set; otherwise ``vmcall`` (production).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Final

from hostrefresh.l0 import _binding as b
from hostrefresh.l0._binding import CData
from hostrefresh.l0.errors import InvalidArgumentError, error_for
from hostrefresh.l0.state import (
    L1,
    Backend,
    Call,
    FaultRule,
    Feature,
    Grant,
    Image,
    L0State,
    L1State,
    MemRange,
    Partition,
    ProbeInfo,
    Status,
)

ENV_BACKEND: Final = "HOSTREFRESH_L0_BACKEND"
ENV_SIM_STATE: Final = "HOSTREFRESH_L0_SIM_STATE"
_PPM: Final = 1_000_000


def select_backend(backend: Backend | str | None = None) -> Backend:
    """Resolve the backend from the argument or the environment."""
    if backend is not None:
        return Backend(backend)
    env = os.environ.get(ENV_BACKEND)
    if env:
        return Backend(env)
    return Backend.SIM if os.environ.get(ENV_SIM_STATE) else Backend.VMCALL


def _fspath(path: str | os.PathLike[str] | None) -> bytes | None:
    return None if path is None else os.fsencode(path)


def _check(status: int, call: int | None, detail: str) -> None:
    if status != b.L0_OK:
        raise error_for(status, call, detail)


def _ranges(c_ranges: CData, n: int) -> tuple[MemRange, ...]:
    return tuple(MemRange(c_ranges[i].base, c_ranges[i].size) for i in range(n))


def _cpus(cset: CData) -> frozenset[int]:
    out = []
    for w in range(b.L0_CPUSET_WORDS):
        bits = cset.bits[w]
        while bits:
            low = bits & -bits
            out.append(w * 64 + low.bit_length() - 1)
            bits ^= low
    return frozenset(out)


def _state_from(c: CData) -> L0State:
    parts = tuple(
        Partition(
            id=p.id,
            parent=p.parent or None,
            owner_l1=p.owner_l1 or None,
            cpus=_cpus(p.cpus),
            memory=_ranges(p.ranges, p.n_ranges),
        )
        for p in c.partitions[0 : c.n_partitions]
    )
    l1s = tuple(
        L1(id=x.id, state=L1State(x.state), partition=x.partition, image_sha256=bytes(x.image_sha256))
        for x in c.l1s[0 : c.n_l1s]
    )
    grants = tuple(
        Grant(g.source_l1, g.target_l1, MemRange(g.range.base, g.range.size) if g.range.size else None)
        for g in c.grants[0 : c.n_grants]
    )
    return L0State(
        abi_version=c.abi_version,
        features=Feature(c.features),
        nested=bool(c.nested),
        n_cpus=c.n_cpus,
        mem_bytes=c.mem_bytes,
        generation=c.generation,
        next_partition_id=c.next_partition_id,
        next_l1_id=c.next_l1_id,
        partitions=parts,
        l1s=l1s,
        grants=grants,
    )


def _fill_ranges(dst: CData, ranges: Sequence[MemRange], limit: int, what: str) -> None:
    if len(ranges) > limit:
        raise InvalidArgumentError(b.L0_E_INVALID, None, f"{len(ranges)} {what} given, at most {limit}")
    for i, r in enumerate(ranges):
        dst[i].base = r.base
        dst[i].size = r.size


def _set_str(field: CData, value: str, cap: int, what: str) -> None:
    raw = value.encode()
    if len(raw) >= cap or b"\0" in raw:
        raise InvalidArgumentError(b.L0_E_INVALID, None, f"image {what} is {len(raw)} bytes, limit {cap - 1}")
    b.write_bytes(field, raw)


class L0:
    """A handle on this node's L0.  Thread-safe; one call at a time per handle."""

    def __init__(self, backend: Backend | str | None = None, sim_state: str | os.PathLike[str] | None = None) -> None:
        self.backend = select_backend(backend)
        if self.backend is Backend.SIM and sim_state is None:
            sim_state = os.environ.get(ENV_SIM_STATE)
        self.sim_state = Path(sim_state) if sim_state is not None else None
        rc, handle = b.open_handle(self.backend.code, _fspath(sim_state))
        if rc != b.L0_OK:
            what = f"opening the {self.backend.value} backend"
            if self.backend is Backend.SIM and sim_state is None:
                what += f" (no state path and {ENV_SIM_STATE} unset)"
            raise error_for(rc, None, what)
        self._h = b.owned(handle)
        self._lock = threading.Lock()
        self._state_buf = b.new_state()
        self._probe_buf = b.new_probe_info()
        self._id = b.new_u32()
        self._last_raw = b""
        self._last_state: L0State | None = None

    # -- context management -------------------------------------------------
    def close(self) -> None:
        """Release the handle now instead of at garbage collection."""
        with self._lock:
            if self._h != b.NULL:
                b.release(self._h)  # runs the l0_close destructor now
                self._h = b.NULL  # later calls fail cleanly with InvalidArgumentError

    def __enter__(self) -> L0:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _fail(self, rc: int, call: Call) -> None:
        raise error_for(rc, int(call), b.last_detail(self._h))

    # -- the calls ----------------------------------------------------------
    def probe(self) -> ProbeInfo:
        """Handshake: whether an L0 is present, its ABI version and features (never NoL0Error)."""
        with self._lock:
            rc = b.probe(self._h, self._probe_buf)
            if rc != b.L0_OK:
                self._fail(rc, Call.PROBE)
            p = self._probe_buf
            return ProbeInfo(
                present=bool(p.l0_present),
                abi_version=p.abi_version,
                features=Feature(p.features),
                backend=Backend.SIM if p.backend == b.L0_BACKEND_SIM else Backend.VMCALL,
                signature=b.string_at(p.signature).decode("ascii", "replace"),
            )

    def query(self) -> L0State:
        """The full L0 state.  Unchanged state returns the same (immutable) snapshot object."""
        with self._lock:
            rc = b.query(self._h, self._state_buf)
            if rc != b.L0_OK:
                self._fail(rc, Call.QUERY)
            raw = b.raw_bytes(self._state_buf)
            if raw != self._last_raw or self._last_state is None:
                self._last_state = _state_from(self._state_buf)
                self._last_raw = raw
            return self._last_state

    def partition_create(self, cpus: Iterable[int], memory: Sequence[MemRange]) -> int:
        """Carve a partition out of the (single) partition that owns these CPUs and memory."""
        spec = b.new_partition_spec()
        for c in cpus:
            if not 0 <= c < b.L0_MAX_CPUS:
                raise InvalidArgumentError(b.L0_E_INVALID, int(Call.PARTITION_CREATE), f"CPU {c} out of range")
            spec.cpus.bits[c // 64] |= 1 << (c % 64)
        _fill_ranges(spec.ranges, memory, b.L0_MAX_RANGES, "memory ranges")
        spec.n_ranges = len(memory)
        with self._lock:
            rc = b.partition_create(self._h, spec, self._id)
            if rc != b.L0_OK:
                self._fail(rc, Call.PARTITION_CREATE)
            return int(self._id[0])

    def partition_destroy(self, partition: int) -> None:
        """Return a partition's resources to its parent (its L1 must not be running)."""
        with self._lock:
            rc = b.partition_destroy(self._h, partition)
            if rc != b.L0_OK:
                self._fail(rc, Call.PARTITION_DESTROY)

    def nested_enable(self) -> None:
        """Swap VMCS/VMCB so the current L1 runs as a guest."""
        with self._lock:
            rc = b.nested_enable(self._h)
            if rc != b.L0_OK:
                self._fail(rc, Call.NESTED_ENABLE)

    def nested_disable(self) -> None:
        """Hand the hardware back to the one remaining L1."""
        with self._lock:
            rc = b.nested_disable(self._h)
            if rc != b.L0_OK:
                self._fail(rc, Call.NESTED_DISABLE)

    def l1_boot(self, partition: int, image: Image) -> int:
        """Boot a new L1 in an empty partition; returns its L1 id."""
        img = b.new_image()
        _set_str(img.kernel, image.kernel, b.L0_PATH_MAX, "kernel path")
        _set_str(img.initrd, image.initrd, b.L0_PATH_MAX, "initrd path")
        _set_str(img.cmdline, image.cmdline, b.L0_CMDLINE_MAX, "command line")
        if len(image.sha256) != b.L0_SHA256_LEN:
            raise InvalidArgumentError(b.L0_E_INVALID, int(Call.L1_BOOT), "image sha256 must be 32 bytes")
        b.write_bytes(img.sha256, image.sha256)
        with self._lock:
            rc = b.l1_boot(self._h, partition, img, self._id)
            if rc != b.L0_OK:
                self._fail(rc, Call.L1_BOOT)
            return int(self._id[0])

    def mem_grant(self, source_l1: int, target_l1: int, memory: Sequence[MemRange] = ()) -> None:
        """Let the target L1 map the source L1's guest memory; no ranges records a copy handover."""
        arr = b.new_ranges(max(1, len(memory)))
        _fill_ranges(arr, memory, b.L0_MAX_GRANT_RANGES, "grant ranges")
        with self._lock:
            rc = b.mem_grant(self._h, source_l1, target_l1, arr, len(memory))
            if rc != b.L0_OK:
                self._fail(rc, Call.MEM_GRANT)

    def l1_retire(self, source_l1: int, target_l1: int) -> None:
        """Stop the source L1 for good; its partition merges into the target's (no return)."""
        with self._lock:
            rc = b.l1_retire(self._h, source_l1, target_l1)
            if rc != b.L0_OK:
                self._fail(rc, Call.L1_RETIRE)

    def l1_stop(self, l1: int) -> None:
        """Abandon a booted L1 (rollback); its partition can then be destroyed."""
        with self._lock:
            rc = b.l1_stop(self._h, l1)
            if rc != b.L0_OK:
                self._fail(rc, Call.L1_STOP)

    # -- simulated L0 only ----------------------------------------------------
    def sim_inject_fault(self, rule: FaultRule) -> None:
        """Arm a fault rule in the simulated L0's state file (seen by every process)."""
        f = b.new_sim_fault()
        f.call = 0 if rule.call is None else int(rule.call)
        f.status = int(rule.status)
        f.nth = rule.nth
        f.times = rule.times
        f.probability_ppm = round(rule.probability * _PPM)
        f.latency_us = round(rule.latency_s * _PPM)
        with self._lock:
            rc = b.sim_fault_set(self._h, f)
        _check(rc, None, f"simulated L0 fault rule {rule}: {b.last_detail(self._h)}")

    def sim_clear_faults(self) -> None:
        """Remove every fault rule from the simulated L0."""
        with self._lock:
            rc = b.sim_fault_clear(self._h)
        _check(rc, None, f"clearing simulated L0 faults: {b.last_detail(self._h)}")

    def sim_peek(self) -> L0State:
        """The state, as :meth:`query` returns it, with no fault rule applied or counted: for the
        simulator's own machinery, so that a fault rule fires on the product's calls only."""
        with self._lock:
            rc = b.sim_peek(self._h, self._state_buf)
            _check(rc, None, f"peeking at the simulated L0: {b.last_detail(self._h)}")
            return _state_from(self._state_buf)

    def sim_faults(self) -> tuple[FaultRule, ...]:
        """The armed rules with their hit and fire counters."""
        out = b.new_sim_faults(b.L0_MAX_FAULTS)
        n = b.new_u32()
        with self._lock:
            rc = b.sim_fault_list(self._h, out, n)
        _check(rc, None, f"listing simulated L0 faults: {b.last_detail(self._h)}")
        return tuple(
            FaultRule(
                call=Call(f.call) if f.call else None,
                status=Status(f.status),
                nth=f.nth,
                times=f.times,
                probability=f.probability_ppm / _PPM,
                latency_s=f.latency_us / _PPM,
                hits=f.hits,
                fired=f.fired,
            )
            for f in out[0 : n[0]]
        )


def open_l0(backend: Backend | str | None = None, sim_state: str | os.PathLike[str] | None = None) -> L0:
    """Open this node's L0 (see the module doc for how the backend is chosen)."""
    return L0(backend, sim_state)


def sim_create(
    path: str | os.PathLike[str],
    *,
    cpus: int,
    memory_bytes: int,
    abi_version: int | None = None,
    features: Feature | int | None = None,
    durable: bool = True,
) -> None:
    """Power on a simulated L0: one partition with every CPU and all memory, L1 1 running.

    Overwrites an existing state file atomically.  `abi_version`/`features`
    override what the simulated L0 advertises (to test the handshake);
    `durable=False` skips fsync (kill -9 safety does not need it, power loss does).
    """
    m = b.new_sim_machine()
    m.n_cpus = cpus
    m.mem_bytes = memory_bytes
    m.abi_version = abi_version or 0
    m.features = int(features or 0)
    m.durable = 1 if durable else 0
    rc = b.sim_create(os.fsencode(path), m)
    _check(
        rc,
        None,
        f"creating simulated L0 at {path} with {cpus} CPUs and {memory_bytes} bytes "
        f"(CPUs 1..{b.L0_MAX_CPUS}, memory a non-zero multiple of {b.L0_MEM_ALIGN})",
    )
