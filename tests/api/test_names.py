"""The API's shared names: each has one definition, and these are its values."""

from __future__ import annotations

import re

import pytest

from hostrefresh import api
from hostrefresh.api import HostRefresh, Phase, RefreshPlan, is_terminal
from hostrefresh.api import names as n
from hostrefresh.api.common import TargetHost
from hostrefresh.api.hostrefresh import SPEC_FROZEN_WHILE_RUNNING


def test_group_version_and_keys() -> None:
    assert (api.GROUP, api.VERSION, api.API_VERSION) == ("hostrefresh.io", "v1alpha1", "hostrefresh.io/v1alpha1")
    assert (n.NODE_LABEL, n.NODE_ANNOTATION, n.PLAN_LABEL, n.FINALIZER) == (
        "hostrefresh.io/node",
        "hostrefresh.io/node",
        "hostrefresh.io/plan",
        "hostrefresh.io/finalizer",
    )
    assert (n.REFRESH_TAINT_KEY, n.CLAIM_ANNOTATION) == ("hostrefresh.io/refreshing", "hostrefresh.io/claimed-by")
    for model in (HostRefresh, RefreshPlan):
        assert model.model_fields["api_version"].default == api.API_VERSION


@pytest.mark.parametrize("phase", list(Phase))
def test_is_terminal(phase: Phase) -> None:
    assert is_terminal(phase) is is_terminal(str(phase)) is (phase in api.TERMINAL)
    assert is_terminal(phase) is (phase in {Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.FAILED})
    assert api.FAILED_ENDS <= api.TERMINAL and Phase.SUCCEEDED not in api.FAILED_ENDS
    assert not is_terminal(None)


def test_spec_frozen_rule_names_the_terminal_phases() -> None:
    assert "oldSelf.status.phase in ['Succeeded', 'RolledBack', 'Failed']" in SPEC_FROZEN_WHILE_RUNNING["rule"]


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@pytest.mark.parametrize(
    ("version", "value"),
    [
        ("2.0", "2.0"),
        ("6.12.4-kvm1", "6.12.4-kvm1"),
        ("6.12.4+kvm1", "6.12.4_kvm1"),
        ("9.2~rc1", "9.2_rc1"),
        ("1.0-", "1.0"),
        ("1.0+~", "1.0"),
        ("v" + "1" * 127, None),  # the longest version the CRD accepts: shortened, with a hash
    ],
)
def test_a_target_version_as_a_label_value(version: str, value: str | None) -> None:
    TargetHost.model_validate({"version": version})  # a version the CRD accepts
    got = n.version_label_value(version)
    assert _LABEL_VALUE.match(got) and len(got) <= n.LABEL_VALUE_MAX, got
    if value is not None:
        assert got == value
    else:
        assert got != n.version_label_value("v" + "1" * 126 + "2"), "two long versions never share a value"


def test_the_node_record_keys() -> None:
    assert (n.HOST_VERSION_KEY, n.QEMU_VERSION_KEY) == ("hostrefresh.io/host-version", "hostrefresh.io/qemu-version")
    for key in (
        n.HOST_VERSION_KEY,
        n.QEMU_VERSION_KEY,
        n.HOST_REFRESHED_BY_ANNOTATION,
        n.HOST_REFRESHED_AT_ANNOTATION,
        n.QEMU_REFRESHED_BY_ANNOTATION,
        n.QEMU_REFRESHED_AT_ANNOTATION,
    ):
        assert n.qualified_name_problem(key) is None, key
