"""The API's shared names: each has one definition, and these are its values."""

from __future__ import annotations

import pytest

from hostrefresh import api
from hostrefresh.api import HostRefresh, Phase, RefreshPlan, is_terminal
from hostrefresh.api import names as n
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
