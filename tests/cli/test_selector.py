"""`-l` is read as kubectl reads a label selector, and what the API server is sent says the same."""

from __future__ import annotations

import pytest
from lightkube.core.selector import build_selector

from hostrefresh.cli.errors import CliError, Exit
from hostrefresh.cli.selector import parse


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("pool=gpu", "pool=gpu"),
        ("pool==gpu", "pool=gpu"),
        ("pool!=gpu", "pool!=gpu"),
        ("hostrefresh.io/plan=fleet-a", "hostrefresh.io/plan=fleet-a"),
        ("zone in (a, b),tier notin (x)", "zone in (a,b),tier notin (x)"),
        ("pool, !canary", "pool,!canary"),
        ("a!=x,a!=y", "a!=x,a!=y"),  # a key twice: both kept
        ("empty=", "empty="),
    ],
)
def test_kubectl_selectors(given: str, sent: str) -> None:
    assert build_selector(list(parse(given))) == sent


@pytest.mark.parametrize(
    ("given", "part"), [("pool in gpu", "pool in gpu"), ("a=b,", ""), ("=x", "=x"), ("a=b c", "a=b c")]
)
def test_what_is_no_requirement_is_named(given: str, part: str) -> None:
    with pytest.raises(CliError) as err:
        parse(given)
    assert f"{part!r} is not a label requirement" in str(err.value) and err.value.code == Exit.USAGE


def test_a_set_with_a_value_that_is_none_is_named() -> None:
    with pytest.raises(CliError, match="lists a value that is not a label value"):
        parse("zone in (a,b c)")
