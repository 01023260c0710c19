"""Kubernetes resource quantities (``4Gi``, ``512Mi``, ``1.5G``, ``4e9``) as whole bytes.

The grammar is the API server's (``resource.ParseQuantity``, which CEL's ``isQuantity`` uses), so
every string the CRD accepts for ``spec.partition.memory`` parses here too:

    quantity ::= [+-] number suffix
    number   ::= digits | digits "." [digits] | "." digits
    suffix   ::= "" | Ki | Mi | Gi | Ti | Pi | Ei          (binary)
               | n | u | m | k | M | G | T | P | E       (decimal)
               | ("e" | "E") [+-] digits                  (decimal exponent)

Memory comes in whole bytes: a fraction of a byte (``0.5``, ``500m``, ``1e-3``) is refused, as the CRD
refuses it (rounding it up to a memory block would run a refresh with an amount nobody asked for).
So is less than :data:`MIN_BYTES` (one memory block). The agent rounds bytes up to whole memory
blocks of its node. Amounts beyond :data:`MAX_BYTES` are refused instead of being turned into an
integer with millions of digits (``1e999999``).
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_CEILING, Context, Decimal

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"^(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])|[eE](?P<exp>[+-]?[0-9]+))?$"
)
#: The largest amount accepted (1 EiB; also the CRD's upper bound for spec.partition.memory).
MAX_BYTES = 1 << 60
MAX_TEXT = "1Ei"
#: The smallest amount accepted: one memory block of the smallest size Linux hot-unplugs on x86_64
#: (the CRD's lower bound too, api.common.MEMORY_MIN_TEXT).
MIN_BYTES = 128 << 20
MIN_TEXT = "128Mi"
#: Enough digits for any mantissa of a 32-character quantity times 2**60, so nothing is rounded off.
_EXACT = Context(prec=100, rounding=ROUND_CEILING)


def parse_quantity(text: str) -> int:
    """The bytes of a memory quantity; raises ValueError naming the form, or the fix."""
    match = _QUANTITY.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a quantity such as 4Gi, 512Mi, 1.5Gi or 4e9")
    number = Decimal(match["num"])
    if match["sign"] == "-":
        number = -number
    if match["exp"] is not None:
        exponent, base2 = int(match["exp"]), 0
    elif match["suffix"] in _BINARY:
        exponent, base2 = 0, _BINARY[match["suffix"]]
    else:
        exponent, base2 = _DECIMAL[match["suffix"] or ""], 0
    if number <= 0:
        raise ValueError(f"{text!r} is not a positive quantity")
    # Size check on the decimal exponent first: 1e999999999 must not become a giant integer.
    if number.adjusted() + exponent + math.ceil(base2 * math.log10(2)) > 19:
        raise ValueError(f"{text!r} is more than {MAX_TEXT}")
    if number.adjusted() + exponent < -30:
        raise ValueError(f"{text!r} is less than {MIN_TEXT}, one memory block: write {MIN_TEXT} or more, such as 4Gi")
    value = _EXACT.multiply(_EXACT.scaleb(number, exponent), Decimal(1 << base2))
    whole = int(value.to_integral_value(rounding=ROUND_CEILING))
    if whole != value:
        raise ValueError(
            f"{text!r} is not a whole number of bytes ({value.normalize()}): write the amount meant, such as 512Mi or 4Gi"
        )
    if whole > MAX_BYTES:
        raise ValueError(f"{text!r} is more than {MAX_TEXT}")
    if whole < MIN_BYTES:
        raise ValueError(f"{text!r} is less than {MIN_TEXT}, one memory block: write {MIN_TEXT} or more, such as 4Gi")
    return whole
