"""Node taints and annotations: added once, removed exactly."""

from __future__ import annotations

import pytest

from hostrefresh.api.names import REFRESH_TAINT_KEY, label_value
from hostrefresh.operator.nodemarks import NodeMarkLog, mark, unmark
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


def test_a_mark_patch_is_not_repeated_until_its_echo_could_have_arrived(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("hostrefresh.operator.nodemarks.time.monotonic", lambda: clock[0])
    log = NodeMarkLog(echo_seconds=5.0)
    assert log.due("hr-a", "mark")
    assert not log.due("hr-a", "mark")  # the watch has not shown our patch yet
    assert log.due("hr-b", "mark")  # another refresh is another matter
    assert log.due("hr-a", "unmark")  # a different patch goes at once
    clock[0] += 5.1
    assert log.due("hr-a", "unmark")  # long enough: a mark still missing is someone else's doing
    log.forget("hr-a")
    assert log.due("hr-a", "unmark")


def test_a_long_refresh_name_makes_a_valid_taint_value_and_is_removed_again() -> None:
    owner = "fleet-upgrade-2024-ip-10-0-12-34.eu-west-1.compute.internal-1a2b3c4d"  # 68 characters
    patch = mark(NodeView("n"), owner, [], [])
    assert patch.taints is not None
    (taint,) = patch.taints
    assert len(taint["value"]) <= 63 and taint["value"] == label_value(owner)
    marked = NodeView("n", taints=(Taint(REFRESH_TAINT_KEY, "NoSchedule", taint["value"]),))
    assert unmark(marked, owner, patch.added_taints, patch.added_annotations).taints == []
