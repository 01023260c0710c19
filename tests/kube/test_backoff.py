"""Retry delays that never run out: kopf gives up on a request after its last delay (a watch that gives
up leaves the operator deaf), so the operator hands kopf a Backoff."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import kopf
import pytest

from hostrefresh.kube.errors import Backoff
from hostrefresh.operator import handlers
from hostrefresh.operator.config import OperatorConfig
from hostrefresh.operator.state import OperatorState


def test_delays_double_up_to_the_most_and_never_run_out() -> None:
    delays = list(itertools.islice(Backoff(0.5, 5.0), 1000))
    assert delays[:6] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert len(delays) == 1000 and max(delays) == 5.0


def test_each_iteration_starts_over() -> None:
    backoff = Backoff(1.0, 8.0)
    first = list(itertools.islice(backoff, 3))
    assert list(itertools.islice(backoff, 3)) == first == [1.0, 2.0, 4.0]


@pytest.mark.parametrize(("first", "most"), [(0.0, 1.0), (1.0, 0.0), (-1.0, 1.0)])
def test_a_backoff_that_could_not_wait_is_refused(first: float, most: float) -> None:
    with pytest.raises(ValueError, match="must be above 0"):
        Backoff(first, most)


def test_a_cap_below_the_first_delay_caps_it_too() -> None:
    # (until_answered(first_delay=0.5, max_delay=0.02): what a test's quick reporter asks for)
    assert list(itertools.islice(Backoff(0.5, 0.02), 3)) == [0.02, 0.02, 0.02]


def test_the_operator_gives_kopf_request_retries_that_never_run_out() -> None:
    settings = kopf.OperatorSettings()
    # kopf's own default gives up after its last delay: that is what left a watch dead for good.
    default: Any = settings.networking.error_backoffs
    assert len(list(default)) < 100
    state = OperatorState(config=OperatorConfig(), writer=None, link=None)  # type: ignore[arg-type]
    configure: Any = handlers.configure  # kopf's decorator types it as an activity of many arguments
    asyncio.run(configure(settings=settings, memo=kopf.Memo(state=state)))
    backoffs = settings.networking.error_backoffs
    assert isinstance(backoffs, Backoff)
    delays = list(itertools.islice(backoffs, 1000))
    assert len(delays) == 1000 and max(delays) <= 5.0
