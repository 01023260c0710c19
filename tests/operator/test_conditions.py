"""metav1.Condition bookkeeping."""

from __future__ import annotations

from datetime import timedelta

from hostrefresh.operator import conditions as cond
from hostrefresh.operator.conditions import FALSE, TRUE

from .helpers import T0


def test_transition_time_moves_only_when_status_changes() -> None:
    conds = cond.set_condition([], cond.READY, FALSE, "A", "m1", 1, T0)
    later = T0 + timedelta(seconds=5)
    same = cond.set_condition(conds, cond.READY, FALSE, "B", "m2", 2, later)
    assert same[0].last_transition_time == T0
    assert (same[0].reason, same[0].message, same[0].observed_generation) == ("B", "m2", 2)
    flipped = cond.set_condition(same, cond.READY, TRUE, "C", "", 2, later)
    assert flipped[0].last_transition_time == later


def test_ready_is_ordered_first() -> None:
    conds = cond.set_condition([], cond.DEGRADED, FALSE, "A", "", 1, T0)
    conds = cond.set_condition(conds, "Custom", FALSE, "A", "", 1, T0)
    conds = cond.set_condition(conds, cond.READY, FALSE, "A", "", 1, T0)
    assert [c.type for c in cond.ordered(conds, cond.HOST_REFRESH_TYPES)] == ["Ready", "Degraded", "Custom"]
