"""Thin 1:1 layer over the compiled cffi module.

Each function is one C call: cdata in, status int out, no conversion and no
exceptions, so it costs no more than cffi itself (see bench/l0_calls.py).
The friendly layer (`hostrefresh.l0.client`) builds typed objects on top.
"""

from __future__ import annotations

from typing import Any

from hostrefresh.l0._l0_cffi import ffi, lib

CData = Any  # cffi cdata; cffi ships no type stubs

__all__ = [
    "CData",
    "call_name",
    "close",
    "ffi",
    "l1_boot",
    "l1_retire",
    "l1_stop",
    "last_detail",
    "lib",
    "mem_grant",
    "nested_disable",
    "nested_enable",
    "open_handle",
    "partition_create",
    "partition_destroy",
    "probe",
    "query",
    "sim_create",
    "sim_fault_clear",
    "sim_fault_list",
    "sim_fault_set",
    "status_message",
    "status_name",
]


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
