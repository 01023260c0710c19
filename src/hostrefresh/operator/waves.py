"""RefreshPlan rollout planning as a pure function: which nodes start now, and the plan's status.

Rollout shape: the first ``canary`` nodes go alone; the rest wait until every canary succeeded and
soaked. After that the rollout is rolling: whenever a slot is free (``maxUnavailable``, and
``maxUnavailablePerZone`` per ``topology.kubernetes.io/zone``), the next node starts, once the
slot's previous node has soaked for ``soakSeconds``. Nodes are ordered round-robin across zones so
consecutive starts land in different failure domains.

A changed target is a new rollout of the same plan: refreshes already running for the old target
finish (aborting mid-refresh would cost more nesting than finishing), nodes on the old target count
as pending again, and new HostRefresh objects are named after the new target.

Two gates a person or a monitoring system holds (``spec.approval``, ``spec.healthGates.prometheus``):
a wave the approval covers starts only once the plan's ``hostrefresh.io/approved-wave`` annotation
reaches its number, and no node starts while the Prometheus gate's reading is not quiet. With
``approval.everyWave`` the rollout goes in whole waves (no refill of a freed slot mid-wave), so that
"after each wave" names a point at which the fleet is at rest.

A selected node someone cordoned waits (``spec.cordonedNodes: Wait``, the default): it stays pending,
is neither started nor a canary, and the plan is not Ready while it waits. A cordon is how Kubernetes
users say "hands off this node" (a drain, a repair, an investigation); refreshing its host under them
would be a surprise, and declaring the fleet done without it would be a lie. ``Include`` refreshes it
like any other node. The operator's own mark on a refreshing node is a taint, never a cordon, so every
cordon it sees is someone else's.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hostrefresh.api import CordonedNodes, Phase, RefreshPlanSpec, RefreshPlanStatus, is_terminal
from hostrefresh.api.meta import ConditionStatus
from hostrefresh.api.names import APPROVED_WAVE_ANNOTATION
from hostrefresh.api.phases import FAILED_ENDS
from hostrefresh.api.refreshplan import resolve_count
from hostrefresh.operator import conditions as cond
from hostrefresh.operator.conditions import FALSE, TRUE, Reason
from hostrefresh.operator.views import AgentView, NodeView
from hostrefresh.operator.windows import WindowError, any_window_open


@dataclass(frozen=True)
class OwnedRefresh:
    """A HostRefresh created by the plan, as far as planning cares."""

    name: str
    node: str
    target_version: str
    phase: Phase | None
    degraded: bool = False
    completed_at: datetime | None = None
    retried: bool = False  # a failed refresh someone asked to retry (RETRY_ANNOTATION): a record only

    @property
    def active(self) -> bool:
        return not is_terminal(self.phase)

    @property
    def superseded(self) -> bool:
        """A failed refresh whose node is to be refreshed again: kept as the record, counted for nothing."""
        return self.retried and self.phase in FAILED_ENDS


@dataclass(frozen=True)
class GateReading:
    """What the plan's Prometheus gate said at its last reading (the reconciler reads it; planning is pure)."""

    quiet: bool
    message: str  # why it is closed (what fired, or why it could not be read); "" when quiet


@dataclass(frozen=True)
class PlanInputs:
    """Everything one plan decision depends on."""

    name: str
    generation: int
    spec: RefreshPlanSpec
    status: RefreshPlanStatus
    nodes: tuple[NodeView, ...]  # nodes the selector matches
    agents: dict[str, AgentView]
    owned: tuple[OwnedRefresh, ...]
    now: datetime
    #: Starts the operator may make now (start pacing, the API server's backlog); None: no limit.
    start_budget: int | None = None
    #: Selected nodes an older plan with another target selects too, and that plan's name: they are
    #: left to it (two plans moving one node to two targets would move it back and forth for ever).
    claimed: Mapping[str, str] = field(default_factory=dict)
    #: Selected nodes with a refresh under way that this plan did not start (a standalone HostRefresh,
    #: another plan's): unavailable all the same, so they take a maxUnavailable slot.
    busy_elsewhere: frozenset[str] = frozenset()
    #: The plan's hostrefresh.io/approved-wave annotation as written (None: absent).
    approved_wave: str | None = None
    #: The Prometheus gate's reading; None when the plan has no such gate.
    gate: GateReading | None = None


@dataclass
class PlanDecision:
    """Nodes to start now and the plan's new status."""

    start: list[str] = field(default_factory=list)
    #: Per node in ``start`` that retries failed refreshes: how many of its refreshes of this target
    #: were retried (the attempt number in its child's name), and the last of them (its record).
    retries: dict[str, tuple[int, str]] = field(default_factory=dict)
    deferred: int = 0  # nodes that could start but wait for the start budget (counted as pending)
    status: RefreshPlanStatus = field(default_factory=RefreshPlanStatus)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)


def refresh_name(plan: str, node: str, version: str, attempt: int = 0) -> str:
    """Deterministic HostRefresh name: a re-run after a crash finds, not duplicates, the object. A
    retry (``attempt`` 1, 2, ...) has a name of its own: the failed refresh it retries stays."""
    key = f"{plan}\0{node}\0{version}" + (f"\0{attempt}" if attempt else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    base = f"{plan}-{node}"[: 253 - 9].rstrip("-.")  # a cut before a dot or dash leaves a valid name
    return f"{base}-{digest}"


def spread_by_zone(nodes: list[NodeView]) -> list[NodeView]:
    """Round-robin across zones (zones and nodes in name order) so a wave spans failure domains."""
    by_zone: dict[str, list[NodeView]] = defaultdict(list)
    for node in sorted(nodes, key=lambda n: n.name):
        by_zone[node.zone].append(node)
    ordered: list[NodeView] = []
    queues = [by_zone[z] for z in sorted(by_zone)]
    while any(queues):
        for queue in queues:
            if queue:
                ordered.append(queue.pop(0))
    return ordered


def held_for_cordon(spec: RefreshPlanSpec, pending: Collection[NodeView]) -> list[str]:
    """The pending nodes the plan leaves alone for now because someone cordoned them, by name.

    Only ``spec.unschedulable`` counts (what ``kubectl cordon`` and a drain set), not taints: the
    operator's own ``hostrefresh.io/refreshing`` taint, or another tool's, is no cordon. Nodes already
    started are not in ``pending``: a cordon never stops a refresh under way.
    """
    if spec.cordoned_nodes == CordonedNodes.INCLUDE:
        return []
    return sorted(n.name for n in pending if n.unschedulable)


def cordon_message(held: list[str]) -> str:
    """What the plan says about the cordoned nodes it waits for: which, and the two ways on."""
    names = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "")
    return (
        f"{len(held)} selected node(s) are cordoned and wait: {names}. Each starts once uncordoned "
        "(kubectl uncordon NODE); to refresh cordoned nodes too, set spec.cordonedNodes: Include"
    )


def plan(inputs: PlanInputs) -> PlanDecision:
    """Decide which nodes of the plan start now."""
    spec, now = inputs.spec, inputs.now
    target = spec.target.version
    decision = PlanDecision(status=inputs.status.model_copy(deep=True))
    status = decision.status
    status.observed_generation = inputs.generation
    status.target_version = target

    ordered = spread_by_zone(list(inputs.nodes))
    latest: dict[str, OwnedRefresh] = {}
    selected = {n.name for n in ordered}
    retried: dict[str, list[OwnedRefresh]] = defaultdict(list)
    for owned in inputs.owned:
        if owned.node not in selected and not owned.active:
            continue
        if owned.superseded:
            if owned.target_version == target:
                retried[owned.node].append(owned)
            continue
        if owned.target_version == target or owned.active:
            prev = latest.get(owned.node)
            if prev is None or owned.active or (prev.target_version != target and owned.target_version == target):
                latest[owned.node] = owned
    active = [o for o in inputs.owned if o.active]
    succeeded = {n for n, o in latest.items() if o.target_version == target and o.phase == Phase.SUCCEEDED}
    failed = {n for n, o in latest.items() if o.target_version == target and o.phase in FAILED_ENDS}
    troubled = [o for o in active if o.degraded or o.phase == Phase.ROLLING_BACK]
    pending = [
        n
        for n in ordered
        if n.name not in inputs.claimed
        and (n.name not in latest or (not latest[n.name].active and n.name not in succeeded and n.name not in failed))
    ]

    held = held_for_cordon(spec, pending)
    held_set = frozenset(held)
    startable = [n for n in pending if n.name not in held_set]

    status.nodes = len(ordered)
    status.active = len(active)
    status.succeeded = len(succeeded)
    status.failed = len(failed)
    status.pending = len(pending)
    gen = inputs.generation

    def set_c(type_: str, st: ConditionStatus, reason: str, msg: str) -> None:
        status.conditions = cond.set_condition(status.conditions, type_, st, reason, msg, gen, now)

    hold_reason: tuple[str, str] | None = None
    if not ordered:
        hold_reason = (Reason.NO_NODES, "the nodeSelector matches no node")
    elif spec.paused:
        hold_reason = (Reason.PAUSED_BY_USER, "spec.paused is true; running refreshes finish, none start")
    elif len(failed) >= spec.failure_threshold:
        hold_reason = (
            Reason.FAILURE_THRESHOLD,
            f"{len(failed)} refresh(es) failed or rolled back (failureThreshold {spec.failure_threshold}); "
            "inspect them, then retry them (kubectl hostrefresh retry PLAN) or raise spec.failureThreshold",
        )
    paused = hold_reason is not None and hold_reason[0] in (Reason.PAUSED_BY_USER, Reason.FAILURE_THRESHOLD)
    if paused and not status.paused:
        assert hold_reason is not None
        decision.events.append(
            ("Warning" if hold_reason[0] == Reason.FAILURE_THRESHOLD else "Normal", hold_reason[0], hold_reason[1])
        )
    status.paused = paused
    status.paused_reason = hold_reason[1] if paused and hold_reason else None

    overlap = _overlap_message(inputs.claimed, latest)
    if hold_reason is None and overlap and not pending and not active:
        hold_reason = (Reason.OVERLAPPING_PLAN, overlap)
    if hold_reason is None and held and not startable:
        # Not Stalled: a cordon is most often a drain or a repair that ends by itself.
        hold_reason = (Reason.NODES_CORDONED, cordon_message(held))
    if hold_reason is None and len(troubled) > spec.health_gates.max_failed:
        hold_reason = (
            Reason.HEALTH_GATE,
            f"{len(troubled)} running refresh(es) are failing or rolling back (healthGates.maxFailed "
            f"{spec.health_gates.max_failed})",
        )
    if hold_reason is None:
        try:
            if not any_window_open(spec.maintenance_windows, now):
                hold_reason = (Reason.WAITING_FOR_WINDOW, "no maintenance window is open; waiting")
        except WindowError as exc:
            hold_reason = (Reason.INVALID_SPEC, f"spec.maintenanceWindows: {exc}")
    approved, approval_problem = parse_approved_wave(inputs.approved_wave)
    status.awaiting_approval = None

    if hold_reason is None and startable:
        chosen = _choose(inputs, ordered, startable, active, latest, succeeded, held_set)
        wave = approval_wave(inputs, chosen, latest, held_set, from_rest=status.active == 0)
        if wave is not None and approved < wave:
            status.awaiting_approval = wave
            hold_reason = (Reason.AWAITING_APPROVAL, approval_message(inputs.name, wave, approval_problem))
            if inputs.status.awaiting_approval != wave:
                decision.events.append(("Normal", Reason.AWAITING_APPROVAL, hold_reason[1]))
            chosen = []
        elif chosen and spec.health_gates.prometheus is not None:  # read before each start, refills too
            reading = inputs.gate or GateReading(False, "the Prometheus gate has not been read yet")
            if not reading.quiet:
                hold_reason = (Reason.HEALTH_GATE, f"spec.healthGates.prometheus: {reading.message}")
                chosen = []
        budget = len(chosen) if inputs.start_budget is None else max(inputs.start_budget, 0)
        decision.start, decision.deferred = chosen[:budget], max(len(chosen) - budget, 0)
        for node_name in decision.start:
            if retried.get(node_name):
                records = sorted(retried[node_name], key=lambda o: o.completed_at or now)
                decision.retries[node_name] = (len(records), records[-1].name)
        if decision.start and status.active == 0:  # a start from rest; refills of freed slots are not waves
            status.waves_started += 1
            status.wave_starts = len(decision.start)
        elif decision.start:
            status.wave_starts += len(decision.start)
        elif status.active == 0 and not decision.deferred and hold_reason is None:
            hold_reason = (Reason.SOAKING, "waiting for the soak time or for nodes that pass the health gates")
    status.active += len(decision.start)
    status.pending -= len(decision.start)

    done = bool(ordered) and len(succeeded) == len(ordered)
    # A canary as large as the fleet or larger is legal (the plan may select fewer nodes than when it
    # was written); say what it means rather than leave the user to wonder where the second wave went.
    note = ""
    if ordered and spec.canary > len(ordered):
        note = (
            f"; spec.canary {spec.canary} is more than the {len(ordered)} selected node(s): every node is a "
            "canary, refreshed maxUnavailable at a time, and no later wave follows"
        )
    says_cordon = hold_reason is not None and hold_reason[0] == Reason.NODES_CORDONED and not status.active
    if held and not says_cordon:
        note += f"; {cordon_message(held)}"  # said while the others roll out, not only at the end
    if hold_reason is not None and hold_reason[0] in (Reason.HEALTH_GATE, Reason.AWAITING_APPROVAL) and status.active:
        note += f"; new starts wait: {hold_reason[1]}"  # a gate that holds refills shows while others run
    if done:
        set_c(cond.READY, TRUE, Reason.ROLLOUT_COMPLETE, f"all {len(ordered)} nodes run {target}")
    else:
        set_c(cond.READY, FALSE, Reason.ROLLING_OUT, f"{len(succeeded)}/{len(ordered)} nodes run {target}")
    if done or (not pending and not status.active):
        reason = Reason.ROLLOUT_COMPLETE if done else Reason.FAILED
        set_c(cond.PROGRESSING, FALSE, reason, "nothing left to start" + note)
    elif hold_reason is not None and not status.active:
        set_c(cond.PROGRESSING, FALSE, hold_reason[0], hold_reason[1] + note)
    else:
        progress = f"{status.active} refreshing, {status.pending} pending"
        set_c(cond.PROGRESSING, TRUE, Reason.ROLLING_OUT, progress + note)
    if paused and hold_reason is not None:
        set_c(cond.PAUSED, TRUE, hold_reason[0], hold_reason[1])
    else:
        set_c(cond.PAUSED, FALSE, Reason.AS_EXPECTED, "")
    if failed or troubled:
        set_c(cond.DEGRADED, TRUE, Reason.FAILED, f"{len(failed)} failed, {len(troubled)} failing")
    elif overlap:
        set_c(cond.DEGRADED, TRUE, Reason.OVERLAPPING_PLAN, overlap)
    else:
        set_c(cond.DEGRADED, FALSE, Reason.AS_EXPECTED, "")
    # kstatus: a rollout that needs a human (halted by failures, ended with failures, selects nothing,
    # invalid) is Stalled, not InProgress forever; a user's pause stays Reconciling (not done yet).
    ended_failed = not done and not pending and not status.active and bool(ordered)
    stalled: tuple[str, str] | None = None
    stalling = (Reason.FAILURE_THRESHOLD, Reason.NO_NODES, Reason.INVALID_SPEC, Reason.OVERLAPPING_PLAN)
    if hold_reason is not None and hold_reason[0] in stalling:
        stalled = hold_reason
    elif ended_failed:
        stalled = (Reason.FAILED, f"{len(failed)} node(s) failed or rolled back; nothing left to start")
    if stalled is not None:
        set_c(cond.STALLED, TRUE, *stalled)
    else:
        set_c(cond.STALLED, FALSE, Reason.AS_EXPECTED, "")
    if done:
        set_c(cond.RECONCILING, FALSE, Reason.ROLLOUT_COMPLETE, "nothing left to do")
    elif stalled is not None:
        set_c(cond.RECONCILING, FALSE, stalled[0], "stalled: see the Stalled condition")
    elif hold_reason is not None and not status.active:
        set_c(cond.RECONCILING, TRUE, hold_reason[0], hold_reason[1])
    else:
        set_c(cond.RECONCILING, TRUE, Reason.ROLLING_OUT, f"{status.active} refreshing, {status.pending} pending")
    status.conditions = cond.ordered(status.conditions, cond.PLAN_TYPES)
    return decision


def _choose(
    inputs: PlanInputs,
    ordered: list[NodeView],
    pending: list[NodeView],
    active: list[OwnedRefresh],
    latest: dict[str, OwnedRefresh],
    succeeded: set[str],
    held: frozenset[str] = frozenset(),
) -> list[str]:
    """Of ``pending`` (startable now), the nodes to start.

    The canaries are the first ``canary`` nodes in order, those already started for the target first,
    and none of ``held`` (waiting for their uncordon) nor of those an older plan keeps: such a canary
    would hold the whole fleet, and a node uncordoned mid-rollout joins it instead of taking the
    canary's part again.
    """
    spec, now = inputs.spec, inputs.now
    total = len(ordered)
    budget = resolve_count(spec.max_unavailable, total) or 1
    canaries = canary_nodes(inputs, ordered, latest, held)
    canary_pending = [n for n in pending if n.name in canaries]
    soak = timedelta(seconds=spec.soak_seconds)
    if canary_pending or any(o.node in canaries for o in active):
        candidates = canary_pending
        budget = min(budget, len(canaries))
    else:
        candidates = pending
        if canaries:
            canary_done = [latest[c].completed_at for c in canaries if c in succeeded and c in latest]
            if len(canary_done) < len(canaries):
                return []  # a canary failed: the failure threshold / health gate decides
            last = max((t for t in canary_done if t is not None), default=None)
            if last is not None and now < last + soak and not active:
                return []
    # Rolling slots: a slot freed by a success is reusable only after the soak time.
    recent = sorted(
        (o.completed_at for o in latest.values() if o.completed_at is not None and now < o.completed_at + soak),
    )
    elsewhere = [n for n in inputs.busy_elsewhere if n not in {o.node for o in active}]
    free = budget - len(active) - len(recent) - len(elsewhere)
    if spec.approval.every_wave:  # whole waves: no refill mid-wave, the next wave after the last one soaked
        if active:
            free = min(free, budget - inputs.status.wave_starts)
        elif recent:
            return []
    if free <= 0:
        return []
    zone_totals: dict[str, int] = defaultdict(int)
    for n in ordered:
        zone_totals[n.zone] += 1
    zone_active: dict[str, int] = defaultdict(int)
    zone_of = {n.name: n.zone for n in ordered}
    for o in active:
        zone_active[zone_of.get(o.node, "")] += 1
    chosen: list[str] = []
    gates = spec.health_gates
    for node in candidates:
        if len(chosen) >= free:
            break
        if node.name in inputs.busy_elsewhere:
            continue  # another refresh of it runs: start it once that one ended
        if gates.require_node_ready and not node.ready:
            continue
        agent = inputs.agents.get(node.name, AgentView())
        if gates.require_agent_alive and not agent.alive(now):
            continue
        zone_limit = resolve_count(spec.max_unavailable_per_zone, zone_totals[node.zone])
        if zone_limit is not None and zone_active[node.zone] >= zone_limit:
            continue
        zone_active[node.zone] += 1
        chosen.append(node.name)
    return chosen


def canary_nodes(
    inputs: PlanInputs, ordered: list[NodeView], latest: Mapping[str, OwnedRefresh], held: Collection[str]
) -> list[str]:
    """The plan's canaries: the first ``canary`` eligible nodes, those already started for the target
    first (a canary, once started, stays one)."""
    target = inputs.spec.target.version
    eligible = [n.name for n in ordered if n.name not in held and n.name not in inputs.claimed]
    started = {n for n, o in latest.items() if o.target_version == target}
    return [*(n for n in eligible if n in started), *(n for n in eligible if n not in started)][: inputs.spec.canary]


def parse_approved_wave(raw: str | None) -> tuple[int, str]:
    """The approved wave from the annotation's text (0: none), and what is wrong with the text ("" if nothing)."""
    if raw is None:
        return 0, ""
    text = raw.strip()
    if text.isdigit():
        return int(text), ""
    return 0, f"annotation {APPROVED_WAVE_ANNOTATION}={raw!r} is not a wave number and approves nothing"


def approval_wave(
    inputs: PlanInputs, chosen: list[str], latest: Mapping[str, OwnedRefresh], held: Collection[str], from_rest: bool
) -> int | None:
    """The wave number whose start ``chosen`` would be, if spec.approval holds that wave; else None.

    Wave numbers are status.wavesStarted + 1 for a start from rest (a refill belongs to the running wave).
    After the canary: the first start of a node that is no canary, once no such node started for the target.
    """
    if not chosen:
        return None
    approval = inputs.spec.approval
    wave = inputs.status.waves_started + (1 if from_rest else 0)
    if approval.every_wave and from_rest and wave >= 2:
        return wave
    if approval.after_canary and inputs.spec.canary > 0:
        ordered = spread_by_zone(list(inputs.nodes))
        canaries = set(canary_nodes(inputs, ordered, latest, held))
        target = inputs.spec.target.version
        others_started = any(
            o.target_version == target and n not in canaries and (o.active or o.phase is not None)
            for n, o in latest.items()
        )
        if not others_started and any(n not in canaries for n in chosen):
            return max(wave, 1)
    return None


def approval_message(plan_name: str, wave: int, problem: str) -> str:
    """What the plan says while a wave waits for approval: which wave, and how to approve it."""
    text = (
        f"wave {wave} waits for approval: kubectl hostrefresh approve {plan_name} (sets the annotation "
        f"{APPROVED_WAVE_ANNOTATION}={wave})"
    )
    return f"{text}; {problem}" if problem else text


def _overlap_message(claimed: Mapping[str, str], latest: Mapping[str, OwnedRefresh]) -> str:
    """What the Degraded condition says about nodes left to an older plan ("" when none are)."""
    left = sorted(n for n in claimed if n not in latest or not latest[n].active)
    if not left:
        return ""
    by_plan: dict[str, list[str]] = defaultdict(list)
    for node in left:
        by_plan[claimed[node]].append(node)
    named = "; ".join(
        f"RefreshPlan {p} (created first, another target) selects {', '.join(ns[:5])}{' ...' if len(ns) > 5 else ''}"
        for p, ns in sorted(by_plan.items())
    )
    return (
        f"{len(left)} selected node(s) are left to another plan: {named}. Narrow spec.nodeSelector, or delete "
        "one of the plans"
    )


def overlapping_claims(
    name: str,
    created: str,
    target: str,
    nodes: Collection[NodeView],
    others: Collection[tuple[str, str, str, RefreshPlanSpec]],
) -> dict[str, str]:
    """Of ``nodes`` (this plan's selection), those an older plan with another target selects too, and
    that plan. ``others``: (name, creationTimestamp, target version, spec) of every other plan. The
    older plan keeps its nodes whatever happens later, so neither plan ever undoes the other."""
    mine = (created, name)
    claimed: dict[str, str] = {}
    for other, other_created, other_target, spec in sorted(others, key=lambda o: (o[1], o[0])):
        if other == name or other_target == target or (other_created, other) >= mine:
            continue
        for node in nodes:
            if node.name not in claimed and spec.selects(node.labels):
                claimed[node.name] = other
    return claimed


def merge_ahead(
    indexed: dict[str, OwnedRefresh], ahead: dict[str, OwnedRefresh]
) -> tuple[tuple[OwnedRefresh, ...], dict[str, OwnedRefresh]]:
    """A plan's children as planning should see them, and what is still ahead of the watch.

    ``indexed`` is the watch's view; ``ahead`` what the operator itself wrote and the watch may not
    show yet (a child just created: phase None; a phase just written). An entry stays ahead until
    the watch shows the child with that phase, or terminal (nothing follows a terminal phase).
    """
    still = {
        name: known
        for name, known in ahead.items()
        if (seen := indexed.get(name)) is None
        or (known.phase is not None and seen.phase != known.phase and not is_terminal(seen.phase))
    }
    merged = {**indexed, **still}
    return tuple(merged.values()), still


def counts_only(old: RefreshPlanStatus, new: RefreshPlanStatus) -> bool:
    """Whether ``new`` differs from ``old`` in counters (and the wording of messages) only.

    Such a change is worth a write, but not one per child event: during a large wave every child
    moves the counters, and a status write per move would keep the plan object churning (and
    every writer of it retrying). The reconcile loop writes it at most once per pass interval.
    """

    def shape(status: RefreshPlanStatus) -> tuple[object, ...]:
        conditions = tuple((c.type, c.status, c.reason, c.observed_generation) for c in status.conditions)
        return (
            status.observed_generation,
            conditions,
            status.target_version,
            status.waves_started,
            status.wave_starts,
            status.awaiting_approval,
            status.last_wave_completed_at,
            status.paused,
            status.paused_reason,
        )

    return shape(old) == shape(new)
