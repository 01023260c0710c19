"""One root exception and one subclass per L0 status code.

Callers catch the class that names the situation (``WrongStateError``,
``BusyError``, ...) instead of comparing numbers; ``L0Error`` catches all.
The status numbers come from the header through the thin layer (`_binding`).
"""

from __future__ import annotations

from typing import ClassVar

from hostrefresh.l0 import _binding as b


class L0Error(Exception):
    """A call into the L0 (real or simulated) failed."""

    status: ClassVar[int] = -1

    def __init__(self, status: int, call: int | None, detail: str) -> None:
        self.status_code = status
        self.call = call
        self.detail = detail
        where = b.call_name(call) if call is not None else "l0_open"
        super().__init__(f"{where} failed with {b.status_name(status)} ({b.status_message(status)}): {detail}")


class NoL0Error(L0Error):
    """No L0 hypervisor (or no simulated L0 state file) is present."""

    status = b.L0_E_NO_L0


class UnavailableError(L0Error):
    """The backend does not exist on this platform (vmcall off x86-64)."""

    status = b.L0_E_UNAVAILABLE


class AbiMismatchError(L0Error):
    """The L0 speaks another ABI major version."""

    status = b.L0_E_ABI


class InvalidArgumentError(L0Error):
    """The request was malformed (empty CPU set, unaligned memory, ...)."""

    status = b.L0_E_INVALID


class UnknownCallError(L0Error):
    """The L0 does not implement or advertise this call."""

    status = b.L0_E_UNKNOWN_CALL


class NotFoundError(L0Error):
    """No such partition or L1."""

    status = b.L0_E_NOT_FOUND


class AlreadyError(L0Error):
    """The L0 is already in the requested state; a resumed step may treat this as done."""

    status = b.L0_E_ALREADY


class WrongStateError(L0Error):
    """The call is not legal in the L0's current state."""

    status = b.L0_E_WRONG_STATE


class BusyError(L0Error):
    """A partition or the nested mode is still in use."""

    status = b.L0_E_BUSY


class ResourceError(L0Error):
    """CPUs or memory are not available to this request."""

    status = b.L0_E_RESOURCE


class LimitError(L0Error):
    """An L0 table (partitions, L1s, grants, fault rules) is full."""

    status = b.L0_E_LIMIT


class NoGrantError(L0Error):
    """Retire was asked before the source L1 handed over to the target."""

    status = b.L0_E_NO_GRANT


class ImageError(L0Error):
    """The L1 image does not match its checksum or cannot be read."""

    status = b.L0_E_IMAGE


class HardwareError(L0Error):
    """The L0 failed internally (e.g. the VMCS/VMCB swap)."""

    status = b.L0_E_HW


class SimIOError(L0Error):
    """The simulated L0 could not read or write its state file."""

    status = b.L0_E_IO


class CorruptStateError(L0Error):
    """The simulated L0's state file failed its magic/size/checksum check."""

    status = b.L0_E_CORRUPT


ERRORS: dict[int, type[L0Error]] = {
    cls.status: cls
    for cls in (
        NoL0Error,
        UnavailableError,
        AbiMismatchError,
        InvalidArgumentError,
        UnknownCallError,
        NotFoundError,
        AlreadyError,
        WrongStateError,
        BusyError,
        ResourceError,
        LimitError,
        NoGrantError,
        ImageError,
        HardwareError,
        SimIOError,
        CorruptStateError,
    )
}


def error_for(status: int, call: int | None, detail: str) -> L0Error:
    """The exception instance for a failed status (unknown codes map to L0Error)."""
    return ERRORS.get(status, L0Error)(status, call, detail)
