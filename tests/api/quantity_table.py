"""Quantities for spec.partition.memory: the parser's table, checked against the API server too."""

from __future__ import annotations

GI = 1 << 30

#: (quantity, whole bytes): the API server accepts each, and the agent must parse each to these bytes.
ACCEPTED: list[tuple[str, int]] = [
    ("4Gi", 4 * GI),
    ("512Mi", 512 << 20),
    ("128Mi", 128 << 20),  # one memory block: the least
    ("131072Ki", 128 << 20),
    ("1Ti", 1 << 40),
    ("1Pi", 1 << 50),
    ("1Ei", 1 << 60),
    ("134217728", 128 << 20),
    ("1G", 10**9),
    ("1T", 10**12),
    ("1P", 10**15),
    ("1E", 10**18),
    ("4294967296", 4 * GI),
    ("+4Gi", 4 * GI),
    ("1.5Gi", 3 * GI // 2),
    ("0.5Gi", GI // 2),
    (".5Gi", GI // 2),
    ("200000000.", 200_000_000),
    ("4e9", 4 * 10**9),
    ("4E9", 4 * 10**9),
    ("1.5e9", 1_500_000_000),
    ("2e+8", 200_000_000),
    ("2E+8", 200_000_000),
    ("200000000000m", 200_000_000),  # whole bytes in milli-units
    ("200000000000000000n", 200_000_000),
    ("1152921504606846976", 1 << 60),
]

#: The API server rejects each (so the agent never sees them); the parser refuses them as well.
REJECTED: list[str] = [
    "4 gigs",
    "4 Gi",
    "",
    "Gi",
    "0",
    "0Gi",
    "0.0",
    "-1Gi",
    "-4e9",
    "1K",
    "1ki",
    "1gi",
    "1.5.Gi",
    "1e",
    "e9",
    "1e1.5",
    "2Ei",
    "1e19",
    "1152921504606846977",
    "1e999999999",
    "12345678901234567890123456789012345",  # longer than 32 characters
    # A fraction of a byte: a slip for something else, never silently one memory block.
    "0.5",
    "500m",
    "1.5",
    "1e-3",
    "134217728.5",
    "1500m",
    "2000001u",
    # Less than one memory block.
    "1",
    "1Ki",
    "127Mi",
    "134217727",
    "1k",
    "1M",
]

#: Odd forms whose fate on the API server is its business; whatever it accepts must parse.
EDGES: list[str] = ["1e-999999999", "1E-18", "0.000000000001n", "1.", "+.5Ki", "00004Gi", "1e09", "4Gi\n", "1.0Gi"]
