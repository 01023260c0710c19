"""Quantities for spec.partition.memory: the parser's table, checked against the API server too."""

from __future__ import annotations

GI = 1 << 30

#: (quantity, whole bytes): the API server accepts each, and the agent must parse each to these bytes.
ACCEPTED: list[tuple[str, int]] = [
    ("4Gi", 4 * GI),
    ("512Mi", 512 << 20),
    ("1Ki", 1024),
    ("1Ti", 1 << 40),
    ("1Pi", 1 << 50),
    ("1Ei", 1 << 60),
    ("1k", 1000),
    ("1M", 10**6),
    ("1G", 10**9),
    ("1T", 10**12),
    ("1P", 10**15),
    ("1E", 10**18),
    ("4294967296", 4 * GI),
    ("1", 1),
    ("+4Gi", 4 * GI),
    ("1.5Gi", 3 * GI // 2),
    ("0.5Gi", GI // 2),
    (".5Gi", GI // 2),
    ("5.", 5),
    ("1.5", 2),  # a fraction of a byte rounds up
    ("4e9", 4 * 10**9),
    ("4E9", 4 * 10**9),
    ("1.5e9", 1_500_000_000),
    ("1e+3", 1000),
    ("1E+3", 1000),
    ("1e-3", 1),
    ("100m", 1),
    ("1500m", 2),
    ("1000000000n", 1),
    ("2000001u", 3),
    ("0.0000001", 1),
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
]

#: Odd forms whose fate on the API server is its business; whatever it accepts must parse.
EDGES: list[str] = ["1e-999999999", "1E-18", "0.000000000001n", "1.", "+.5Ki", "00004Gi", "1e09", "4Gi\n"]
