"""The agent's quantity parser takes every form the CRD lets through for spec.partition.memory."""

from __future__ import annotations

import pytest

from hostrefresh.api.quantity import MAX_BYTES, MIN_BYTES, parse_quantity
from tests.api.quantity_table import ACCEPTED, EDGES, REJECTED


@pytest.mark.parametrize(("text", "expected"), ACCEPTED, ids=[t for t, _ in ACCEPTED])
def test_accepted_quantity_parses_to_whole_bytes(text: str, expected: int) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("text", REJECTED, ids=[repr(t) for t in REJECTED])
def test_rejected_quantity_raises_naming_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"quantity|more than 1Ei|whole number of bytes|one memory block"):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("text", "fix"),
    [("0.5", "whole number of bytes"), ("500m", "whole number of bytes"), ("1Ki", "128Mi or more")],
)
def test_a_fraction_of_a_byte_or_less_than_a_block_says_what_to_write(text: str, fix: str) -> None:
    with pytest.raises(ValueError, match=fix):
        parse_quantity(text)


@pytest.mark.parametrize("text", EDGES, ids=[repr(t) for t in EDGES])
def test_edge_forms_parse_to_at_least_one_block_or_are_refused(text: str) -> None:
    try:
        parsed = parse_quantity(text)
    except ValueError:
        return  # the server refuses these as well (tests/api/test_crd_server.py)
    assert MIN_BYTES <= parsed <= MAX_BYTES


def test_huge_exponent_is_refused_quickly() -> None:
    # Not turned into an integer with a billion digits first.
    with pytest.raises(ValueError, match="more than 1Ei"):
        parse_quantity("9" * 20 + "e999999999")
