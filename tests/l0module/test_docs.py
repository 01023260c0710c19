"""The hypercall documentation and the header agree: every call and status is documented."""

from __future__ import annotations

import re

from hostrefresh.l0 import _binding as b

from .conftest import L0MODULE

DOC = (L0MODULE / "docs" / "hypercalls.rst").read_text()
HEADER = (L0MODULE / "include" / "l0.h").read_text()


def _enum(name: str) -> dict[str, int]:
    body = re.search(rf"enum {name} \{{(.*?)\}};", HEADER, re.DOTALL)
    assert body, name
    return {k: int(v) for k, v in re.findall(r"(L0_\w+) = (\d+)", body[1]) if not k.endswith("_LAST")}


def test_every_call_has_a_block_with_number_and_sections() -> None:
    calls = _enum("l0_call")
    assert calls
    for name, number in calls.items():
        m = re.search(rf"^{number}\. {name}\n-+\n(.*?)(?=^\d+\. L0_CALL_|^Status codes)", DOC, re.M | re.S)
        assert m, f"{name} has no block '{number}. {name}' in hypercalls.rst"
        block = m[1]
        for field in (f":Number: {number}", ":C:", ":Registers:", ":Returns:", ":Errors:", ":Legal:"):
            assert field in block, f"{name}: missing {field}"
        assert getattr(b, name) == number


def test_every_status_is_documented_with_its_number() -> None:
    statuses = _enum("l0_status")
    assert len(statuses) == b.L0_STATUS_LAST + 1
    for name, number in statuses.items():
        assert re.search(rf"^{number}\s+``{name}``", DOC, re.M), f"{name} missing in the status table"
        assert getattr(b, name) == number
    for name in statuses:
        if name != "L0_OK":
            assert DOC.count(f"``{name}``") >= 2, f"{name} is never explained beyond the table"


def test_documented_errors_exist() -> None:
    statuses = _enum("l0_status")
    for name in set(re.findall(r"``(L0_E_\w+)``", DOC)):
        assert name in statuses, f"hypercalls.rst mentions unknown status {name}"
