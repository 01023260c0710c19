"""Node taints and annotations: added once, removed exactly; the record of what a node runs."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hostrefresh.api.names import REFRESH_TAINT_KEY, label_value
from hostrefresh.operator.nodemarks import NodeMarkLog, NodeMarkPatch, NodeRecord, mark, record, unmark
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


AT = datetime(2026, 12, 7, 12, 0, 5, 250000, tzinfo=UTC)
HOST = NodeRecord("Host", "6.12.4+kvm1", "hr-1", AT)


def _applied(node: NodeView, patch: NodeMarkPatch) -> NodeView:
    labels = {k: v for k, v in {**node.labels, **patch.labels}.items() if v is not None}
    annotations = {k: v for k, v in {**node.annotations, **patch.annotations}.items() if v is not None}
    return replace(node, labels=labels, annotations=annotations)


def test_a_record_labels_the_version_and_annotates_the_exact_one_the_refresh_and_its_time() -> None:
    node = NodeView("n", labels={"fleet": "a"}, annotations={"keep": "me"})
    patch = record(node, HOST)
    assert patch.labels == {"hostrefresh.io/host-version": "6.12.4_kvm1"}
    assert patch.annotations == {
        "hostrefresh.io/host-version": "6.12.4+kvm1",
        "hostrefresh.io/host-refreshed-by": "hr-1",
        "hostrefresh.io/host-refreshed-at": "2026-12-07T12:00:05.250000Z",
    }
    assert patch.taints is None and not patch.empty
    assert record(_applied(node, patch), HOST).empty, "idempotent"
    assert record(None, HOST).empty


def test_a_vmm_record_is_the_qemu_version_and_leaves_the_host_version_alone() -> None:
    node = _applied(NodeView("n"), record(NodeView("n"), HOST))
    patch = record(node, NodeRecord("VMM", "9.2.0", "hr-2", AT + timedelta(hours=1)))
    assert patch.labels == {"hostrefresh.io/qemu-version": "9.2.0"}
    assert set(patch.annotations) == {
        "hostrefresh.io/qemu-version",
        "hostrefresh.io/qemu-refreshed-by",
        "hostrefresh.io/qemu-refreshed-at",
    }


def test_a_later_refresh_replaces_the_record_and_an_earlier_one_never_takes_it_back() -> None:
    old = _applied(NodeView("n"), record(NodeView("n"), HOST))
    later = NodeRecord("Host", "6.13.0", "hr-2", AT + timedelta(days=1))
    patch = record(old, later)
    assert patch.labels == {"hostrefresh.io/host-version": "6.13.0"}
    new = _applied(old, patch)
    assert record(new, HOST).empty, "hr-1 succeeded before hr-2: the node runs hr-2's version"
    assert record(new, replace(HOST, at=later.at)).empty, "a tie keeps the record there"


def test_a_record_someone_changed_is_written_again() -> None:
    node = _applied(NodeView("n"), record(NodeView("n"), HOST))
    edited = replace(node, labels={**node.labels, "hostrefresh.io/host-version": "x"})
    assert record(edited, HOST).labels == {"hostrefresh.io/host-version": "6.12.4_kvm1"}
    garbled = replace(
        node,
        annotations={
            **node.annotations,
            "hostrefresh.io/host-refreshed-by": "hr-0",
            "hostrefresh.io/host-refreshed-at": "?",
        },
    )
    assert record(garbled, HOST).annotations["hostrefresh.io/host-refreshed-by"] == "hr-1"


def test_the_end_patch_takes_marks_off_and_writes_the_record_in_one() -> None:
    node = NodeView(
        "n", taints=(Taint(REFRESH_TAINT_KEY, "NoSchedule", "hr-1"),), annotations={REFRESH_TAINT_KEY: "hr-1"}
    )
    both = unmark(node, "hr-1", [REFRESH_TAINT_KEY], [REFRESH_TAINT_KEY]).merged(record(node, HOST))
    assert both.taints == []
    assert both.annotations[REFRESH_TAINT_KEY] is None
    assert both.annotations["hostrefresh.io/host-refreshed-by"] == "hr-1"
    assert both.labels == {"hostrefresh.io/host-version": "6.12.4_kvm1"}
