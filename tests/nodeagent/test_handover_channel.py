"""The handover channel's one decision: the first side to create the outcome wins, the other obeys."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostrefresh.nodeagent.migrate.channel import ABORTED, ARRIVED, HandoverChannel


def test_first_outcome_stands(tmp_path: Path) -> None:
    old, new = HandoverChannel(tmp_path, 1), HandoverChannel(tmp_path, 2)
    sent = old.transfer("vm1", 1, 2)
    sent.post_offer({"name": "vm1"}, user_paused=False)
    received = new.incoming()
    assert [(t.vm, t.frm, t.to) for t in received] == [("vm1", 1, 2)]
    assert received[0].decide(ARRIVED) == ARRIVED
    assert sent.decide(ABORTED) == ARRIVED, "the sender must see that the guest arrived"
    assert sent.outcome() == ARRIVED


def test_abort_first_keeps_the_receiver_from_resuming(tmp_path: Path) -> None:
    old, new = HandoverChannel(tmp_path, 1), HandoverChannel(tmp_path, 2)
    sent = old.transfer("vm1", 1, 2)
    sent.post_offer({"name": "vm1"}, user_paused=True)
    assert sent.decide(ABORTED) == ABORTED
    assert new.incoming()[0].decide(ARRIVED) == ABORTED
    assert sent.offer() == {"spec": {"name": "vm1"}, "userPaused": True, "from": 1}


def test_recall_and_forget(tmp_path: Path) -> None:
    old, new = HandoverChannel(tmp_path, 1), HandoverChannel(tmp_path, 2)
    old.transfer("vm1", 1, 2).post_offer({}, user_paused=False)
    old.request_recall("vm1", 1)
    assert new.recall_requested("vm1") == 1
    assert new.transfer("vm1", 2, 1).offer() is None
    old.forget("vm1")
    assert old.vms() == [] and new.recall_requested("vm1") is None


@pytest.mark.parametrize("name", ["", "a/b", ".hidden"])
def test_bad_vm_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="bad VM name"):
        HandoverChannel(tmp_path, 1).transfer(name, 1, 2)
