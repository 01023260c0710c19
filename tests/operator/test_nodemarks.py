"""Node taints and annotations: added once, removed exactly."""

from __future__ import annotations

from hostrefresh.operator.nodemarks import REFRESH_TAINT_KEY, mark, unmark
from hostrefresh.operator.views import NodeView, Taint


def test_mark_adds_and_records_then_is_idempotent() -> None:
    node = NodeView("n", taints=(Taint("dedicated", "NoSchedule", "db"),))
    patch = mark(node, "hr-1", [], [])
    assert (
        patch.taints is not None and {"key": REFRESH_TAINT_KEY, "effect": "NoSchedule", "value": "hr-1"} in patch.taints
    )
    assert {"key": "dedicated", "effect": "NoSchedule", "value": "db"} in patch.taints
    assert patch.added_taints == [REFRESH_TAINT_KEY]
    assert patch.annotations == {"hostrefresh.io/refreshing": "hr-1"}
    marked = NodeView(
        "n",
        taints=(*node.taints, Taint(REFRESH_TAINT_KEY, "NoSchedule", "hr-1")),
        annotations={"hostrefresh.io/refreshing": "hr-1"},
    )
    again = mark(marked, "hr-1", patch.added_taints, patch.added_annotations)
    assert again.empty


def test_someone_elses_taint_is_not_recorded_or_removed() -> None:
    node = NodeView("n", unschedulable=True, taints=(Taint(REFRESH_TAINT_KEY, "NoSchedule", "manual"),))
    patch = mark(node, "hr-1", [], [])
    assert patch.taints is None and patch.added_taints == []
    removal = unmark(node, "hr-1", patch.added_taints, patch.added_annotations)
    assert removal.taints is None


def test_unmark_removes_only_what_was_added() -> None:
    node = NodeView(
        "n",
        taints=(Taint("other", "NoExecute"), Taint(REFRESH_TAINT_KEY, "NoSchedule", "hr-1")),
        annotations={"hostrefresh.io/refreshing": "hr-1", "keep": "me"},
    )
    patch = unmark(node, "hr-1", [REFRESH_TAINT_KEY], ["hostrefresh.io/refreshing"])
    assert patch.taints == [{"key": "other", "effect": "NoExecute"}]
    assert patch.annotations == {"hostrefresh.io/refreshing": None}
    assert unmark(None, "hr-1", [REFRESH_TAINT_KEY], []).empty
