"""Thin 1:1 layer over the compiled cffi module: the one place that touches ``ffi`` and ``lib``.

Each call function is one C call: cdata in, status int out, no conversion and no
exceptions, so it costs no more than cffi itself (see bench/l0_calls.py).  Beside
them: every constant of the header under its C name, the constructors of the
cdata the calls take or fill, and the few cffi helpers (handle lifetime, bytes in
and out of char arrays) that the friendly layer needs.  The friendly layer
(`hostrefresh.l0.client`, `.state`, `.errors`) goes through this module only,
as ``nacl.bindings`` sits under pynacl's classes.
"""

from __future__ import annotations

from typing import Any, Final

from hostrefresh.l0._l0_cffi import ffi, lib

CData = Any  # cffi cdata; cffi ships no type stubs

__all__ = [
    "L0_ABI_MAJOR",
    "L0_ABI_MINOR",
    "L0_ABI_VERSION",
    "L0_BACKEND_SIM",
    "L0_BACKEND_VMCALL",
    "L0_CALL_L1_BOOT",
    "L0_CALL_L1_RETIRE",
    "L0_CALL_L1_STOP",
    "L0_CALL_LAST",
    "L0_CALL_MEM_GRANT",
    "L0_CALL_NESTED_DISABLE",
    "L0_CALL_NESTED_ENABLE",
    "L0_CALL_PARTITION_CREATE",
    "L0_CALL_PARTITION_DESTROY",
    "L0_CALL_PROBE",
    "L0_CALL_QUERY",
    "L0_CMDLINE_MAX",
    "L0_CPUID_LEAF_FIRST",
    "L0_CPUID_LEAF_LAST",
    "L0_CPUID_LEAF_STEP",
    "L0_CPUSET_WORDS",
    "L0_DETAIL_MAX",
    "L0_E_ABI",
    "L0_E_ALREADY",
    "L0_E_BUSY",
    "L0_E_CORRUPT",
    "L0_E_HW",
    "L0_E_IMAGE",
    "L0_E_INVALID",
    "L0_E_IO",
    "L0_E_LIMIT",
    "L0_E_NOT_FOUND",
    "L0_E_NO_GRANT",
    "L0_E_NO_L0",
    "L0_E_RESOURCE",
    "L0_E_UNAVAILABLE",
    "L0_E_UNKNOWN_CALL",
    "L0_E_WRONG_STATE",
    "L0_FEAT_ALL_CALLS",
    "L0_FEAT_L1_BOOT",
    "L0_FEAT_L1_RETIRE",
    "L0_FEAT_L1_STOP",
    "L0_FEAT_MEM_GRANT",
    "L0_FEAT_NESTED",
    "L0_FEAT_PARTITION",
    "L0_FEAT_SIMULATED",
    "L0_L1_RETIRED",
    "L0_L1_RUNNING",
    "L0_L1_STOPPED",
    "L0_MAX_CPUS",
    "L0_MAX_FAULTS",
    "L0_MAX_GRANTS",
    "L0_MAX_GRANT_RANGES",
    "L0_MAX_L1S",
    "L0_MAX_PARTITIONS",
    "L0_MAX_RANGES",
    "L0_MEM_ALIGN",
    "L0_OK",
    "L0_PATH_MAX",
    "L0_SHA256_LEN",
    "L0_STATUS_LAST",
    "NULL",
    "CData",
    "call_name",
    "close",
    "l1_boot",
    "l1_retire",
    "l1_stop",
    "last_detail",
    "mem_grant",
    "nested_disable",
    "nested_enable",
    "new_image",
    "new_partition_spec",
    "new_probe_info",
    "new_ranges",
    "new_sim_fault",
    "new_sim_faults",
    "new_sim_machine",
    "new_state",
    "new_u32",
    "open_handle",
    "owned",
    "partition_create",
    "partition_destroy",
    "probe",
    "query",
    "raw_bytes",
    "release",
    "sim_create",
    "sim_fault_clear",
    "sim_fault_list",
    "sim_fault_set",
    "sim_peek",
    "status_message",
    "status_name",
    "string_at",
    "write_bytes",
]

# ABI version and the CPUID leaves the vmcall backend probes
L0_ABI_MAJOR: Final[int] = lib.L0_ABI_MAJOR
L0_ABI_MINOR: Final[int] = lib.L0_ABI_MINOR
L0_ABI_VERSION: Final[int] = lib.L0_ABI_VERSION
L0_CPUID_LEAF_FIRST: Final[int] = lib.L0_CPUID_LEAF_FIRST
L0_CPUID_LEAF_LAST: Final[int] = lib.L0_CPUID_LEAF_LAST
L0_CPUID_LEAF_STEP: Final[int] = lib.L0_CPUID_LEAF_STEP

# Table sizes and limits
L0_MAX_CPUS: Final[int] = lib.L0_MAX_CPUS
L0_CPUSET_WORDS: Final[int] = lib.L0_CPUSET_WORDS
L0_MAX_RANGES: Final[int] = lib.L0_MAX_RANGES
L0_MAX_PARTITIONS: Final[int] = lib.L0_MAX_PARTITIONS
L0_MAX_L1S: Final[int] = lib.L0_MAX_L1S
L0_MAX_GRANTS: Final[int] = lib.L0_MAX_GRANTS
L0_MAX_GRANT_RANGES: Final[int] = lib.L0_MAX_GRANT_RANGES
L0_MAX_FAULTS: Final[int] = lib.L0_MAX_FAULTS
L0_PATH_MAX: Final[int] = lib.L0_PATH_MAX
L0_CMDLINE_MAX: Final[int] = lib.L0_CMDLINE_MAX
L0_SHA256_LEN: Final[int] = lib.L0_SHA256_LEN
L0_DETAIL_MAX: Final[int] = lib.L0_DETAIL_MAX
L0_MEM_ALIGN: Final[int] = lib.L0_MEM_ALIGN

# Feature bits (probe)
L0_FEAT_PARTITION: Final[int] = lib.L0_FEAT_PARTITION
L0_FEAT_NESTED: Final[int] = lib.L0_FEAT_NESTED
L0_FEAT_L1_BOOT: Final[int] = lib.L0_FEAT_L1_BOOT
L0_FEAT_MEM_GRANT: Final[int] = lib.L0_FEAT_MEM_GRANT
L0_FEAT_L1_RETIRE: Final[int] = lib.L0_FEAT_L1_RETIRE
L0_FEAT_L1_STOP: Final[int] = lib.L0_FEAT_L1_STOP
L0_FEAT_SIMULATED: Final[int] = lib.L0_FEAT_SIMULATED
L0_FEAT_ALL_CALLS: Final[int] = lib.L0_FEAT_ALL_CALLS

# Hypercall numbers (enum l0_call)
L0_CALL_PROBE: Final[int] = lib.L0_CALL_PROBE
L0_CALL_QUERY: Final[int] = lib.L0_CALL_QUERY
L0_CALL_PARTITION_CREATE: Final[int] = lib.L0_CALL_PARTITION_CREATE
L0_CALL_PARTITION_DESTROY: Final[int] = lib.L0_CALL_PARTITION_DESTROY
L0_CALL_NESTED_ENABLE: Final[int] = lib.L0_CALL_NESTED_ENABLE
L0_CALL_NESTED_DISABLE: Final[int] = lib.L0_CALL_NESTED_DISABLE
L0_CALL_L1_BOOT: Final[int] = lib.L0_CALL_L1_BOOT
L0_CALL_MEM_GRANT: Final[int] = lib.L0_CALL_MEM_GRANT
L0_CALL_L1_RETIRE: Final[int] = lib.L0_CALL_L1_RETIRE
L0_CALL_L1_STOP: Final[int] = lib.L0_CALL_L1_STOP
L0_CALL_LAST: Final[int] = lib.L0_CALL_LAST

# Status codes (enum l0_status)
L0_OK: Final[int] = lib.L0_OK
L0_E_NO_L0: Final[int] = lib.L0_E_NO_L0
L0_E_UNAVAILABLE: Final[int] = lib.L0_E_UNAVAILABLE
L0_E_ABI: Final[int] = lib.L0_E_ABI
L0_E_INVALID: Final[int] = lib.L0_E_INVALID
L0_E_UNKNOWN_CALL: Final[int] = lib.L0_E_UNKNOWN_CALL
L0_E_NOT_FOUND: Final[int] = lib.L0_E_NOT_FOUND
L0_E_ALREADY: Final[int] = lib.L0_E_ALREADY
L0_E_WRONG_STATE: Final[int] = lib.L0_E_WRONG_STATE
L0_E_BUSY: Final[int] = lib.L0_E_BUSY
L0_E_RESOURCE: Final[int] = lib.L0_E_RESOURCE
L0_E_LIMIT: Final[int] = lib.L0_E_LIMIT
L0_E_NO_GRANT: Final[int] = lib.L0_E_NO_GRANT
L0_E_IMAGE: Final[int] = lib.L0_E_IMAGE
L0_E_HW: Final[int] = lib.L0_E_HW
L0_E_IO: Final[int] = lib.L0_E_IO
L0_E_CORRUPT: Final[int] = lib.L0_E_CORRUPT
L0_STATUS_LAST: Final[int] = lib.L0_STATUS_LAST

# Backends of l0_open() (enum l0_backend) and L1 states (enum l0_l1_state)
L0_BACKEND_SIM: Final[int] = lib.L0_BACKEND_SIM
L0_BACKEND_VMCALL: Final[int] = lib.L0_BACKEND_VMCALL
L0_L1_RUNNING: Final[int] = lib.L0_L1_RUNNING
L0_L1_RETIRED: Final[int] = lib.L0_L1_RETIRED
L0_L1_STOPPED: Final[int] = lib.L0_L1_STOPPED


# -- cdata the calls take or fill (zeroed, freed with their last reference) ---------------
def new_probe_info() -> CData:
    return ffi.new("l0_probe_info *")


def new_state() -> CData:
    return ffi.new("l0_state *")


def new_u32() -> CData:
    """A ``uint32_t *`` out-parameter (an id, a count)."""
    return ffi.new("uint32_t *")


def new_partition_spec() -> CData:
    return ffi.new("l0_partition_spec *")


def new_image() -> CData:
    return ffi.new("l0_image *")


def new_ranges(n: int) -> CData:
    """An ``l0_range[n]`` array."""
    return ffi.new("l0_range[]", n)


def new_sim_machine() -> CData:
    return ffi.new("l0_sim_machine *")


def new_sim_fault() -> CData:
    return ffi.new("l0_sim_fault *")


def new_sim_faults(n: int) -> CData:
    """An ``l0_sim_fault[n]`` array."""
    return ffi.new("l0_sim_fault[]", n)


# -- cffi helpers -------------------------------------------------------------------------
NULL: Final[CData] = ffi.NULL


def owned(handle: CData) -> CData:
    """The handle, closed by l0_close() when garbage-collected or passed to `release`."""
    return ffi.gc(handle, lib.l0_close)


def release(cdata: CData) -> None:
    """Run an `owned` handle's destructor now."""
    ffi.release(cdata)


def raw_bytes(cdata: CData) -> bytes:
    """A copy of the memory a cdata pointer points to (the whole struct)."""
    return bytes(ffi.buffer(cdata)[:])


def string_at(chars: CData) -> bytes:
    """A NUL-terminated char array's bytes, without the NUL."""
    return bytes(ffi.string(chars))


def write_bytes(dst: CData, data: bytes) -> None:
    """Copy data to the start of a char/uint8 array (the caller checks that it fits)."""
    ffi.memmove(dst, data, len(data))


# -- the C calls --------------------------------------------------------------------------
def open_handle(backend: int, sim_state_path: bytes | None) -> tuple[int, CData]:
    """l0_open(); returns (status, handle or NULL)."""
    out = ffi.new("l0_handle **")
    rc = lib.l0_open(out, backend, sim_state_path if sim_state_path is not None else ffi.NULL)
    return rc, out[0]


def close(h: CData) -> None:
    lib.l0_close(h)


def probe(h: CData, out: CData) -> int:
    return int(lib.l0_probe(h, out))


def query(h: CData, out: CData) -> int:
    return int(lib.l0_query(h, out))


def partition_create(h: CData, spec: CData, out_id: CData) -> int:
    return int(lib.l0_partition_create(h, spec, out_id))


def partition_destroy(h: CData, partition: int) -> int:
    return int(lib.l0_partition_destroy(h, partition))


def nested_enable(h: CData) -> int:
    return int(lib.l0_nested_enable(h))


def nested_disable(h: CData) -> int:
    return int(lib.l0_nested_disable(h))


def l1_boot(h: CData, partition: int, image: CData, out_l1: CData) -> int:
    return int(lib.l0_l1_boot(h, partition, image, out_l1))


def mem_grant(h: CData, source_l1: int, target_l1: int, ranges: CData, n_ranges: int) -> int:
    return int(lib.l0_mem_grant(h, source_l1, target_l1, ranges, n_ranges))


def l1_retire(h: CData, source_l1: int, target_l1: int) -> int:
    return int(lib.l0_l1_retire(h, source_l1, target_l1))


def l1_stop(h: CData, l1: int) -> int:
    return int(lib.l0_l1_stop(h, l1))


def last_detail(h: CData) -> str:
    return str(ffi.string(lib.l0_last_detail(h)).decode("utf-8", "replace"))


def status_name(status: int) -> str:
    return str(ffi.string(lib.l0_status_name(status)).decode())


def status_message(status: int) -> str:
    return str(ffi.string(lib.l0_status_message(status)).decode())


def call_name(call: int) -> str:
    return str(ffi.string(lib.l0_call_name(call)).decode())


def sim_create(path: bytes, machine: CData) -> int:
    return int(lib.l0_sim_create(path, machine))


def sim_fault_set(h: CData, fault: CData) -> int:
    return int(lib.l0_sim_fault_set(h, fault))


def sim_fault_clear(h: CData) -> int:
    return int(lib.l0_sim_fault_clear(h))


def sim_fault_list(h: CData, out: CData, n_out: CData) -> int:
    return int(lib.l0_sim_fault_list(h, out, n_out))


def sim_peek(h: CData, out: CData) -> int:
    return int(lib.l0_sim_peek(h, out))
