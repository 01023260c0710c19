"""`kubectl hostrefresh start`'s default name is a valid object name for every version the CRD accepts."""

from __future__ import annotations

import re

import pytest

from hostrefresh.cli.control import MAX_NAME, start_name

#: An object name as the API server checks it (a DNS-1123 subdomain).
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.mark.parametrize(
    ("node", "version", "expected"),
    [
        ("n1", "6.12.4+kvm1", "n1-6-12-4-kvm1"),
        ("n1", "2.0", "n1-2-0"),
        ("worker-3.zone-a", "V1_2~rc1", "worker-3.zone-a-v1-2-rc1"),
        ("n1", "9-", "n1-9"),
    ],
)
def test_readable_names(node: str, version: str, expected: str) -> None:
    assert start_name(node, version) == expected


@pytest.mark.parametrize("version", ["6.12.4+kvm1", "a" * 128, "1" + "+~._-" * 25, "Z", "0.0.0-rc.1+build.7"])
@pytest.mark.parametrize("node", ["n1", "node-" + "x" * 240, "a." * 100 + "b"])
def test_every_version_the_crd_accepts_gives_a_valid_name(node: str, version: str) -> None:
    name = start_name(node, version)
    assert len(name) <= MAX_NAME and SUBDOMAIN.match(name), name


def test_two_long_names_that_share_their_start_do_not_meet() -> None:
    node = "node-" + "x" * 250
    assert start_name(node, "1.0") != start_name(node, "2.0")
