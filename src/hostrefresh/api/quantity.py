"""Kubernetes resource quantities (``4Gi``, ``512Mi``, ``1.5G``) as bytes."""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIX = {
    "": 1,
    "Ki": 1 << 10,
    "Mi": 1 << 20,
    "Gi": 1 << 30,
    "Ti": 1 << 40,
    "Pi": 1 << 50,
    "Ei": 1 << 60,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")


def parse_quantity(text: str) -> int:
    """Bytes in a quantity; raises ValueError naming the expected form."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity such as 4Gi or 512Mi")
    return int(Decimal(match["num"]) * _SUFFIX[match["suffix"] or ""])
