"""Every call and every status code through the Python binding (simulated L0)."""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hostrefresh.l0 import (
    ABI_VERSION,
    ERRORS,
    L0,
    AbiMismatchError,
    AlreadyError,
    Backend,
    BusyError,
    Call,
    CorruptStateError,
    FaultRule,
    Feature,
    HardwareError,
    Image,
    ImageError,
    InvalidArgumentError,
    L0Error,
    L1State,
    LimitError,
    MemRange,
    NoGrantError,
    NoL0Error,
    NotFoundError,
    ResourceError,
    SimIOError,
    Status,
    UnavailableError,
    UnknownCallError,
    WrongStateError,
    open_l0,
    select_backend,
    sim_create,
)
from hostrefresh.l0 import _binding as b

from .conftest import GiB

MiB = 1 << 20


def refresh_to_boot(l0: L0, image: Image) -> tuple[int, int]:
    """Partitioning -> NestedEnabling -> BootingTarget; returns (partition, target L1)."""
    pid = l0.partition_create(range(4, 8), [MemRange(4 * GiB, 4 * GiB)])
    l0.nested_enable()
    return pid, l0.l1_boot(pid, image)


def test_probe_and_query_power_on_state(l0: L0) -> None:
    info = l0.probe()
    assert info.present and info.compatible and info.simulated
    assert info.abi_version == ABI_VERSION and info.backend is Backend.SIM
    assert Feature.L1_STOP in info.features
    s = l0.query()
    assert (s.nested, s.n_cpus, s.mem_bytes, s.generation) == (False, 8, 8 * GiB, 0)
    (p,) = s.partitions
    assert (p.id, p.parent, p.owner_l1, p.cpus) == (1, None, 1, frozenset(range(8)))
    assert p.memory == (MemRange(0, 8 * GiB),)
    assert s.l1s[0].state is L1State.RUNNING and s.grants == ()
    assert l0.query() is s  # unchanged state -> same snapshot object


def test_full_refresh_sequence(l0: L0, image: Image) -> None:
    pid, target = refresh_to_boot(l0, image)
    s = l0.query()
    assert s.nested and s.partition(pid) is not None and s.l1(target) is not None
    assert s.partition(1).cpus == frozenset(range(4))  # type: ignore[union-attr]
    assert s.l1(target).image_sha256 == image.sha256  # type: ignore[union-attr]
    l0.mem_grant(1, target, [MemRange(0, GiB), MemRange(2 * GiB, GiB)])
    assert l0.query().granted(1, target)
    l0.l1_retire(1, target)
    l0.nested_disable()
    s = l0.query()
    assert not s.nested and [p.id for p in s.partitions] == [pid]
    assert s.partitions[0].cpus == frozenset(range(8)) and s.partitions[0].memory_bytes == 8 * GiB
    assert s.l1(1).state is L1State.RETIRED  # type: ignore[union-attr]
    assert s.generation == 6
    assert "nested=off" in s.summary()


def test_rollback_sequence(l0: L0, image: Image) -> None:
    pid, target = refresh_to_boot(l0, image)
    l0.mem_grant(1, target)  # copy handover marker
    assert l0.query().grants[0].range is None
    l0.l1_stop(target)
    l0.partition_destroy(pid)
    l0.nested_disable()
    s = l0.query()
    assert [p.id for p in s.partitions] == [1] and s.partitions[0].memory_bytes == 8 * GiB
    assert s.l1(target).state is L1State.STOPPED  # type: ignore[union-attr]


# One trigger per status code, each through the real state machine where one exists.
def test_no_l0(sim_path: Path) -> None:
    with open_l0("sim", sim_path) as l0:
        assert not l0.probe().present
        with pytest.raises(NoL0Error, match="no simulated L0 at"):
            l0.query()


def test_unavailable_and_invalid_open() -> None:
    with pytest.raises(InvalidArgumentError, match="no state path"):
        L0("sim", None) if "HOSTREFRESH_L0_SIM_STATE" not in os.environ else None
    # vmcall is built on this x86-64 machine; off x86-64 opening it raises UnavailableError.
    assert UnavailableError.status == b.L0_E_UNAVAILABLE
    with pytest.raises(ValueError):
        select_backend("hyperv")


def test_abi_mismatch(sim_path: Path) -> None:
    sim_create(sim_path, cpus=2, memory_bytes=GiB, abi_version=0x00020000, durable=False)
    with open_l0("sim", sim_path) as l0:
        assert not l0.probe().compatible
        with pytest.raises(AbiMismatchError, match=r"ABI 2\.0"):
            l0.query()


def test_unknown_call(sim_path: Path) -> None:
    sim_create(sim_path, cpus=2, memory_bytes=GiB, features=Feature.SIMULATED | Feature.NESTED, durable=False)
    with open_l0("sim", sim_path) as l0:
        l0.nested_enable()
        with pytest.raises(UnknownCallError, match="feature bit"):
            l0.partition_create([1], [MemRange(0, 2 * MiB)])


def test_invalid_arguments(l0: L0, image: Image) -> None:
    with pytest.raises(InvalidArgumentError, match="empty"):
        l0.partition_create([], [MemRange(0, GiB)])
    with pytest.raises(InvalidArgumentError, match="aligned"):
        l0.partition_create([7], [MemRange(MiB, GiB)])
    with pytest.raises(InvalidArgumentError, match="overlap"):
        l0.partition_create([7], [MemRange(0, GiB), MemRange(GiB // 2, GiB)])
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        l0.partition_create([9], [MemRange(0, GiB)])
    with pytest.raises(InvalidArgumentError):
        l0.partition_create([300], [MemRange(0, GiB)])
    with pytest.raises(InvalidArgumentError):
        l0.partition_create([7], [MemRange(i * GiB, 2 * MiB) for i in range(17)])
    with pytest.raises(InvalidArgumentError, match="both L1 1"):
        l0.mem_grant(1, 1)
    with pytest.raises(InvalidArgumentError):
        l0.l1_retire(2, 2)
    with pytest.raises(InvalidArgumentError, match="no kernel"):
        l0.l1_boot(1, Image(kernel="", sha256=image.sha256))
    with pytest.raises(InvalidArgumentError, match="32 bytes"):
        l0.l1_boot(1, Image(kernel="k", sha256=b"short"))
    with pytest.raises(InvalidArgumentError, match="limit"):
        l0.l1_boot(1, Image(kernel="k" * 300, sha256=image.sha256))


def test_not_found_already_wrong_state_busy(l0: L0, image: Image) -> None:
    with pytest.raises(NotFoundError, match="no partition 42"):
        l0.partition_destroy(42)
    with pytest.raises(WrongStateError, match="nested virtualization is disabled"):
        l0.l1_boot(1, image)
    with pytest.raises(AlreadyError, match="already disabled"):
        l0.nested_disable()
    with pytest.raises(WrongStateError, match="only running L1"):
        l0.l1_stop(1)
    pid, target = refresh_to_boot(l0, image)
    with pytest.raises(AlreadyError, match="already enabled"):
        l0.nested_enable()
    with pytest.raises(BusyError, match=f"partition {pid} already runs L1 {target}"):
        l0.l1_boot(pid, image)
    with pytest.raises(BusyError, match="still runs"):
        l0.partition_destroy(pid)
    with pytest.raises(BusyError, match="2 L1s running"):
        l0.nested_disable()
    with pytest.raises(NotFoundError, match="no target L1 9"):
        l0.mem_grant(1, 9)
    with pytest.raises(BusyError, match="partition 1 still runs L1 1"):
        l0.partition_destroy(1)


def test_already_stopped_and_retired(l0: L0, image: Image) -> None:
    pid, target = refresh_to_boot(l0, image)
    l0.l1_stop(target)
    with pytest.raises(AlreadyError, match="already stopped"):
        l0.l1_stop(target)
    with pytest.raises(WrongStateError, match="stopped, not running"):
        l0.mem_grant(1, target)
    target2 = l0.l1_boot(pid, image)  # a stopped L1's partition can boot again
    l0.mem_grant(1, target2, [MemRange(0, GiB)])
    with pytest.raises(AlreadyError):
        l0.mem_grant(1, target2, [MemRange(0, GiB)])
    l0.l1_retire(1, target2)
    with pytest.raises(WrongStateError, match="retired"):
        l0.l1_stop(1)


def test_resource(l0: L0, image: Image) -> None:
    with pytest.raises(ResourceError, match="left without CPUs"):
        l0.partition_create(range(8), [MemRange(0, GiB)])
    with pytest.raises(ResourceError, match="not inside donor"):
        l0.partition_create([7], [MemRange(8 * GiB, GiB)])
    _, target = refresh_to_boot(l0, image)
    with pytest.raises(ResourceError, match="belongs to partition"):
        l0.partition_create([3, 4], [MemRange(0, GiB)])
    with pytest.raises(ResourceError, match="not owned by source"):
        l0.mem_grant(1, target, [MemRange(5 * GiB, GiB)])
    l0.mem_grant(1, target, [MemRange(0, GiB)])
    with pytest.raises(ResourceError, match="overlaps a grant"):
        l0.mem_grant(1, target, [MemRange(0, 2 * GiB)])
    with pytest.raises(ResourceError, match="is granted"):
        l0.partition_create([3], [MemRange(0, 2 * MiB)])


def test_limit(l0: L0) -> None:
    for cpu in range(1, 8):
        l0.partition_create([cpu], [MemRange(cpu * GiB, 2 * MiB)])
    with pytest.raises(LimitError, match="partitions are in use"):
        l0.partition_create([0], [MemRange(0, 2 * MiB)])
    for _ in range(16):
        l0.sim_inject_fault(FaultRule(call=Call.QUERY, status=Status.OK))
    with pytest.raises(LimitError, match="fault rules"):
        l0.sim_inject_fault(FaultRule(call=Call.QUERY, status=Status.OK))


def test_no_grant(l0: L0, image: Image) -> None:
    _, target = refresh_to_boot(l0, image)
    with pytest.raises(NoGrantError, match="has not handed over"):
        l0.l1_retire(1, target)


def test_image_mismatch(l0: L0, image: Image, tmp_path: Path) -> None:
    pid = l0.partition_create([7], [MemRange(7 * GiB, GiB)])
    l0.nested_enable()
    with pytest.raises(ImageError, match="checksum mismatch"):
        l0.l1_boot(pid, Image(image.kernel, bytes(32), image.initrd))
    with pytest.raises(ImageError, match="cannot read"):
        l0.l1_boot(pid, Image(str(tmp_path / "missing"), image.sha256))
    assert len(l0.query().l1s) == 1


def test_hw_fault_injection_every_call(l0: L0, image: Image) -> None:
    """Every call can be failed with any status; a failed call changes nothing."""
    for call in Call:
        l0.sim_clear_faults()
        l0.sim_inject_fault(FaultRule(call=call, status=Status.E_HW))
        before = l0.query() if call is not Call.QUERY else None
        calls: dict[Call, Callable[[], object]] = {
            Call.PROBE: l0.probe,
            Call.QUERY: l0.query,
            Call.PARTITION_CREATE: lambda: l0.partition_create([7], [MemRange(7 * GiB, GiB)]),
            Call.PARTITION_DESTROY: lambda: l0.partition_destroy(1),
            Call.NESTED_ENABLE: l0.nested_enable,
            Call.NESTED_DISABLE: l0.nested_disable,
            Call.L1_BOOT: lambda: l0.l1_boot(1, image),
            Call.MEM_GRANT: lambda: l0.mem_grant(1, 2),
            Call.L1_RETIRE: lambda: l0.l1_retire(1, 2),
            Call.L1_STOP: lambda: l0.l1_stop(2),
        }
        with pytest.raises(HardwareError, match=f"injected fault L0_E_HW on L0_CALL_{call.name}"):
            calls[call]()
        if before is not None:
            assert l0.query().generation == before.generation


@pytest.mark.parametrize("status", [s for s in Status if s is not Status.OK])
def test_every_status_maps_to_its_exception(l0: L0, status: Status) -> None:
    l0.sim_inject_fault(FaultRule(call=Call.NESTED_ENABLE, status=status, nth=2, times=1))
    l0.nested_enable()
    l0.nested_disable()
    with pytest.raises(ERRORS[status]) as ei:
        l0.nested_enable()
    assert ei.value.status_code == status and ei.value.call == Call.NESTED_ENABLE
    assert status.name.removeprefix("E_") in str(ei.value) and "injected" in str(ei.value)
    assert isinstance(ei.value, L0Error)
    l0.nested_enable()  # times=1: the next one goes through
    (rule,) = l0.sim_faults()
    assert (rule.hits, rule.fired) == (3, 1)


def test_every_header_status_has_one_class() -> None:
    codes = {getattr(b, n) for n in b.__all__ if n.startswith("L0_E_")}
    assert codes == set(ERRORS) == {s.value for s in Status} - {0}
    assert len({c.__name__ for c in ERRORS.values()}) == len(codes)
    assert {getattr(b, n) for n in b.__all__ if n.startswith("L0_CALL_") and n != "L0_CALL_LAST"} == set(Call)


def test_fault_probability_and_latency(l0: L0) -> None:
    l0.sim_inject_fault(FaultRule(call=Call.QUERY, status=Status.E_IO, probability=0.25))
    failures = 0
    for _ in range(400):
        try:
            l0.query()
        except SimIOError:
            failures += 1
    assert 50 < failures < 150
    l0.sim_clear_faults()
    l0.sim_inject_fault(FaultRule(call=None, status=Status.OK, latency_s=0.02))
    t = time.monotonic()
    l0.nested_enable()
    assert time.monotonic() - t >= 0.02
    (rule,) = l0.sim_faults()
    assert rule.call is None and rule.latency_s == pytest.approx(0.02)


def test_faults_are_shared_between_handles(l0: L0, sim_path: Path) -> None:
    """A test arms a fault; the agent's own handle (another process in real use) hits it."""
    l0.sim_inject_fault(FaultRule(call=Call.NESTED_ENABLE, status=Status.E_BUSY, times=1))
    with open_l0("sim", sim_path) as agent, pytest.raises(BusyError):
        agent.nested_enable()


def test_corrupt_and_io(l0: L0, sim_path: Path) -> None:
    data = sim_path.read_bytes()
    sim_path.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])
    with pytest.raises(CorruptStateError, match="checksum"):
        l0.query()
    sim_path.write_bytes(b"garbage")
    with pytest.raises(CorruptStateError, match="bad size"):
        l0.probe()
    sim_path.unlink()
    sim_path.mkdir()
    with pytest.raises(SimIOError):
        l0.query()


def test_sim_create_rejects_bad_machine(sim_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="creating simulated L0"):
        sim_create(sim_path, cpus=0, memory_bytes=GiB)
    with pytest.raises(InvalidArgumentError):
        sim_create(sim_path, cpus=2, memory_bytes=GiB + 1)


def test_backend_selection(monkeypatch: pytest.MonkeyPatch, sim_path: Path) -> None:
    monkeypatch.delenv("HOSTREFRESH_L0_BACKEND", raising=False)
    monkeypatch.delenv("HOSTREFRESH_L0_SIM_STATE", raising=False)
    assert select_backend() is Backend.VMCALL
    monkeypatch.setenv("HOSTREFRESH_L0_SIM_STATE", str(sim_path))
    assert select_backend() is Backend.SIM
    sim_create(sim_path, cpus=2, memory_bytes=GiB, durable=False)
    with open_l0() as l0:
        assert l0.backend is Backend.SIM and l0.probe().present
    monkeypatch.setenv("HOSTREFRESH_L0_BACKEND", "vmcall")
    assert select_backend() is Backend.VMCALL
    assert select_backend("sim") is Backend.SIM


def test_thin_layer_is_one_to_one(sim_path: Path) -> None:
    sim_create(sim_path, cpus=2, memory_bytes=GiB, durable=False)
    rc, h = b.open_handle(b.L0_BACKEND_SIM, os.fsencode(sim_path))
    assert rc == b.L0_OK
    st = b.new_state()
    assert b.query(h, st) == b.L0_OK and st.n_cpus == 2
    assert b.nested_disable(h) == b.L0_E_ALREADY
    assert "already disabled" in b.last_detail(h)
    assert b.status_name(b.L0_E_BUSY) == "L0_E_BUSY"
    assert b.call_name(b.L0_CALL_L1_STOP) == "L0_CALL_L1_STOP"
    b.close(h)


def test_thin_layer_has_every_constant_of_the_header() -> None:
    ext = importlib.import_module("hostrefresh.l0._l0_cffi")
    constants = [n for n in dir(ext.lib) if n.startswith("L0_")]
    assert constants
    assert {n: getattr(b, n, None) for n in constants} == {n: getattr(ext.lib, n) for n in constants}
    assert set(constants) <= set(b.__all__)


@pytest.mark.parametrize("module", ["client", "state", "errors"])
def test_friendly_layer_goes_through_the_thin_layer_only(module: str) -> None:
    """Like pynacl's classes over nacl.bindings: no ffi, no lib, no cffi module outside _binding."""
    source = inspect.getsource(importlib.import_module(f"hostrefresh.l0.{module}"))
    tree = ast.parse(source)
    imported = {
        alias.name if isinstance(node, ast.Import) else f"{node.module}.{alias.name}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {i for i in imported if "cffi" in i or i.endswith((".ffi", ".lib"))}, imported
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert not names & {"ffi", "lib"}, f"hostrefresh.l0.{module} reaches past the thin layer"


def test_closed_handle_and_context_manager(sim_path: Path) -> None:
    sim_create(sim_path, cpus=2, memory_bytes=GiB, durable=False)
    l0 = open_l0("sim", sim_path)
    l0.close()
    l0.close()  # idempotent
    with pytest.raises(InvalidArgumentError, match="no handle"):
        l0.query()


def test_a_peek_neither_meets_nor_uses_up_a_fault_rule(l0: L0) -> None:
    """The simulator's own looks (the machine simulator's) leave the campaign's rules to the product."""
    l0.sim_inject_fault(FaultRule(call=Call.QUERY, status=Status.E_IO, times=1))
    assert l0.sim_peek().running_l1s, "a peek sees the state"
    (rule,) = l0.sim_faults()
    assert (rule.hits, rule.fired) == (0, 0)
    with pytest.raises(L0Error):
        l0.query()
    (rule,) = l0.sim_faults()
    assert rule.fired == 1
