"""Spec pieces shared by HostRefresh and RefreshPlan (the plan stamps them into each HostRefresh)."""

import re
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, Field

from hostrefresh.api.base import ApiModel, rule
from hostrefresh.api.quantity import MIN_TEXT
from hostrefresh.api.schedule import CRON_PATTERN, DURATION_PATTERN, TIME_ZONE_PATTERN

#: The node agent renews its heartbeat Lease every 1/HEARTBEATS_PER_LEASE of its duration
#: (``hostrefresh-agent --lease-seconds``, default AGENT_LEASE_SECONDS: every 10 s).
HEARTBEATS_PER_LEASE = 3
AGENT_LEASE_SECONDS = 30
#: The shortest silence limit: two renewals of an agent with the default Lease, so one late
#: renewal never reads as a dead agent.
AGENT_SILENCE_MIN_SECONDS = 2 * AGENT_LEASE_SECONDS // HEARTBEATS_PER_LEASE
AGENT_SILENCE_DEFAULT_SECONDS = 60

#: The form of a quantity, with a decimal exponent of two digits at most: the API server's own quantity
#: parser takes longer than a request may last over ``1e999999999``, so such a string never reaches it.
QUANTITY_SHAPE = r"^[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]{1,2}|[KMGTPE]i|[numkMGTPE])?$"
QUANTITY_RULE = rule(
    f"self.matches('{QUANTITY_SHAPE}') && isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))"
    " && quantity(self).compareTo(quantity('1Ei')) <= 0",
    "must be a positive memory quantity of at most 1Ei, such as 4Gi, 512Mi, 1.5Gi or 4e9",
)
_IS_QUANTITY = f"self.matches('{QUANTITY_SHAPE}') && isQuantity(self)"
#: A memory amount is whole bytes: 0.5 or 500m (half a byte) is a slip, never silently one block.
#: (Not ``isInteger()``: that is false for whole amounts the API server keeps as decimals, 1Pi or
#: 1.5Gi. Below 2**53 bytes the float is exact; above it every float is whole, and so are the bytes
#: of any quantity short enough to be accepted, but for a fraction in its 17th digit.)
WHOLE_BYTES_RULE = rule(
    f"!({_IS_QUANTITY} && quantity(self).compareTo(quantity('1Ei')) <= 0)"
    " || double(int(quantity(self).asApproximateFloat())) == quantity(self).asApproximateFloat()",
    "must be a whole number of bytes (0.5 and 500m are half a byte): write the amount meant, such as 512Mi or 4Gi",
)
#: The smallest memory block Linux hot-unplugs on x86_64 (the agent rounds up to its node's block size).
MEMORY_MIN_TEXT = MIN_TEXT
AT_LEAST_ONE_BLOCK_RULE = rule(
    f"!({_IS_QUANTITY}) || quantity(self).compareTo(quantity('{MEMORY_MIN_TEXT}')) >= 0",
    f"must be at least {MEMORY_MIN_TEXT}, one memory block: the partition takes whole blocks; write {MEMORY_MIN_TEXT} "
    "or more, such as 4Gi",
)


#: Longest kernel or initrd path the L0 takes, in bytes (its image descriptor holds 256 with the NUL;
#: l0module/include/l0.h L0_PATH_MAX). Paths are printable ASCII, so characters are bytes.
IMAGE_PATH_MAX = 255
#: Longest kernel command line the L0 takes, in bytes (L0_CMDLINE_MAX 1024 with the NUL).
CMDLINE_MAX = 1023
#: An absolute path of printable ASCII (no NUL, no control characters).
IMAGE_PATH_PATTERN = r"^/[ -~]*$"
#: No ``..`` segment: the admission policy's "is it under an allowed directory" is then a prefix test.
NO_DOTDOT_RULE = rule(
    "!self.matches('(^|/)[.][.](/|$)')",
    "must not contain '..' segments; name the image by its path under an allowed image directory",
)
_DOTDOT = re.compile(r"(^|/)\.\.(/|$)")


def _no_dotdot(value: str | None) -> str | None:
    if value is not None and _DOTDOT.search(value):
        raise ValueError("must not contain '..' segments; name the image by its path under an allowed image directory")
    return value


CHECKSUM_PATTERN = r"^sha256:[0-9a-f]{64}$"


class TargetVMM(ApiModel):
    """The QEMU build a VMM-only refresh hands every VM to, on the node itself.

    The same gate as a kernel image: the binary must be a regular file in one of the allowed image
    directories, of bounded size, executable, and its sha256 must match ``checksum``.
    """

    binary: Annotated[
        str,
        Field(
            min_length=2,
            max_length=IMAGE_PATH_MAX,
            pattern=IMAGE_PATH_PATTERN,
            description="Absolute path on the node of the QEMU system emulator to move VMs to, e.g. "
            "/var/lib/hostrefresh/images/qemu-7.2.18/qemu-system-x86_64 (printable ASCII, no '..'). It must be an "
            "executable regular file in one of the allowed image directories (chart value agent.imageDirs).",
            json_schema_extra={"x-kubernetes-validations": [NO_DOTDOT_RULE]},
        ),
        AfterValidator(_no_dotdot),
    ]
    checksum: Annotated[
        str,
        Field(
            pattern=CHECKSUM_PATTERN,
            description="Required: sha256:<64 hex> of the binary, as printed by `sha256sum BINARY`. The node agent "
            "refuses a binary that does not match.",
        ),
    ]


class TargetHost(ApiModel):
    """The host software to refresh to: a new host (kernel + KVM + QEMU), or only a new QEMU.

    With ``scope: Host`` (the default) the L0 boots ``kernel`` in a new partition; ``kernel`` and
    ``checksum`` are required. With ``scope: VMM`` only ``qemu`` is used and required.

    The node agent boots only images under the directories its administrator allows (the chart's
    agent.imageDirs, the agent's --image-dir), only regular files of bounded size, and only when
    their sha256 matches ``checksum``.
    """

    version: Annotated[
        str,
        Field(
            min_length=1,
            max_length=128,
            pattern=r"^[A-Za-z0-9][A-Za-z0-9._+~-]*$",
            description="Version label of the target host software, e.g. 6.12.4-kvm1; shown in printer columns.",
        ),
    ]
    kernel: Annotated[
        str | None,
        Field(
            default=None,
            min_length=2,
            max_length=IMAGE_PATH_MAX,
            pattern=IMAGE_PATH_PATTERN,
            description="Host scope (required there): absolute path on the node of the target L1 kernel the L0 boots "
            "(printable ASCII, at most "
            f"{IMAGE_PATH_MAX} characters, no '..'). It must be a regular file in one of the image directories the "
            "cluster's administrator allows (chart value agent.imageDirs, default /var/lib/hostrefresh/images).",
            json_schema_extra={"x-kubernetes-validations": [NO_DOTDOT_RULE]},
        ),
        AfterValidator(_no_dotdot),
    ]
    initrd: Annotated[
        str | None,
        Field(
            default=None,
            min_length=2,
            max_length=IMAGE_PATH_MAX,
            pattern=IMAGE_PATH_PATTERN,
            description="Absolute path on the node of the target initrd, if any; the same rules as kernel.",
            json_schema_extra={"x-kubernetes-validations": [NO_DOTDOT_RULE]},
        ),
        AfterValidator(_no_dotdot),
    ]
    cmdline: Annotated[
        str,
        Field(
            default="",
            max_length=CMDLINE_MAX,
            pattern=r"^[ -~]*$",
            description=f"Kernel command line of the target L1 (printable ASCII, at most {CMDLINE_MAX} characters).",
        ),
    ]
    checksum: Annotated[
        str | None,
        Field(
            default=None,
            pattern=CHECKSUM_PATTERN,
            description="Host scope (required there): sha256:<64 hex> of the kernel's bytes followed by the "
            "initrd's, as printed by "
            "`sha256sum KERNEL` (with an initrd: `cat KERNEL INITRD | sha256sum`). The node agent and the L0 "
            "refuse to boot an image that does not match.",
        ),
    ]
    qemu: Annotated[
        TargetVMM | None,
        Field(default=None, description="VMM scope (required there): the QEMU build to hand every VM to."),
    ]


class PartitionSpec(ApiModel):
    """Resources taken from the running L1 (hot-unplug) to boot the target L1 in."""

    cpus: Annotated[
        int,
        Field(
            default=2,
            ge=1,
            le=1024,
            description="CPUs to hot-unplug into the new partition (CPU0 never moves).",
        ),
    ]
    memory: Annotated[
        str,
        Field(
            default="4Gi",
            max_length=32,
            description=f"Memory to hot-unplug into the new partition: whole bytes, from {MEMORY_MIN_TEXT} (one "
            "memory block) to 1Ei (e.g. 4Gi, 1.5Gi, 4e9); the agent rounds it up to whole memory blocks of its node "
            "and says so in the Partitioning step's message.",
            json_schema_extra={"x-kubernetes-validations": [QUANTITY_RULE, WHOLE_BYTES_RULE, AT_LEAST_ONE_BLOCK_RULE]},
        ),
    ]


class HandoverPolicy(ApiModel):
    """How VMs move from the old L1 to the new L1 on the same machine."""

    zero_copy: Annotated[
        bool,
        Field(
            default=True,
            description="Hand guest RAM over without copying when it is shared file-backed memory.",
        ),
    ]
    copy_fallback: Annotated[
        bool,
        Field(
            default=True,
            description="Fall back to a copying live migration for VMs whose RAM cannot be handed over zero-copy.",
        ),
    ]
    downtime_budget_millis: Annotated[
        int,
        Field(default=500, ge=1, le=60000, description="Per-VM downtime budget in milliseconds (1-60000)."),
    ]
    max_parallel: Annotated[
        int,
        Field(default=4, ge=1, le=64, description="VMs handed over at the same time (1-64)."),
    ]


def _seconds(default: int, what: str) -> object:
    return Field(default=default, ge=1, le=86400, description=f"Deadline of {what}, in seconds (1-86400).")


class PhaseTimeouts(ApiModel):
    """Per-phase deadlines. A phase that overruns before Retiring rolls back; from Retiring on, and in
    RollingBack, only the agent can end the refresh, so an overrun sets Degraded (DeadlineExceeded)
    while the agent goes on, and Failed comes only from the agent's report or its silence."""

    preflight_seconds: Annotated[int, _seconds(120, "Preflight")]
    partitioning_seconds: Annotated[int, _seconds(300, "Partitioning (CPU and memory hot-unplug)")]
    nested_enabling_seconds: Annotated[int, _seconds(60, "NestedEnabling")]
    booting_target_seconds: Annotated[int, _seconds(600, "BootingTarget")]
    migrating_seconds: Annotated[int, _seconds(1800, "Migrating (all VM handovers)")]
    retiring_seconds: Annotated[int, _seconds(300, "Retiring")]
    devirtualizing_seconds: Annotated[int, _seconds(120, "Devirtualizing")]
    verifying_seconds: Annotated[int, _seconds(300, "Verifying")]
    rolling_back_seconds: Annotated[int, _seconds(1800, "RollingBack")]
    agent_silence_seconds: Annotated[
        int,
        Field(
            default=AGENT_SILENCE_DEFAULT_SECONDS,
            ge=AGENT_SILENCE_MIN_SECONDS,
            le=3600,
            description="How long the node agent may stay silent (Lease not renewed) before the refresh is "
            f"rolled back or, after Retiring, marked Failed ({AGENT_SILENCE_MIN_SECONDS}-3600). The agent renews "
            f"its Lease every third of its --lease-seconds ({AGENT_LEASE_SECONDS} by default): keep this at least "
            "two renewals long.",
            json_schema_extra={
                "x-kubernetes-validations": [
                    rule(
                        f"self >= {AGENT_SILENCE_MIN_SECONDS}",
                        f"must be at least {AGENT_SILENCE_MIN_SECONDS} seconds: the node agent renews its heartbeat "
                        f"Lease only every {AGENT_LEASE_SECONDS // HEARTBEATS_PER_LEASE} s (a third of its "
                        f"--lease-seconds {AGENT_LEASE_SECONDS}), so a shorter limit would roll back refreshes of "
                        "healthy agents",
                    )
                ]
            },
        ),
    ]


class FailurePolicy(StrEnum):
    """What to do when a step fails before the point of no return (Retiring)."""

    ROLL_BACK = "RollBack"
    HOLD = "Hold"


class UnmovableVMPolicy(StrEnum):
    """What to do with VMs that cannot be handed over (host devices, GPUs, SR-IOV)."""

    BLOCK = "Block"
    PROCEED = "Proceed"


class RefreshScope(StrEnum):
    """What a refresh replaces, and so which mechanism it takes (the cheapest that does the job)."""

    HOST = "Host"  # kernel, KVM and QEMU: a new host boots beside the old one, nested for minutes
    VMM = "VMM"  # QEMU only: each VM handed to a new QEMU on the same host; no partition, no nesting


def scope_rules(scope: str) -> list[dict[str, str]]:
    """CEL rules on a spec: the target fields each scope needs. ``scope``: where the scope is, from the
    spec (``scope`` in a HostRefresh, ``template.scope`` in a RefreshPlan). Python's twin: ``scope_problems``."""
    has = " && ".join(f"has(self.{prefix})" for prefix in _prefixes(scope))
    return [
        rule(
            f"!({has}) || self.{scope} != 'VMM' || has(self.target.qemu)",
            f"spec.target.qemu is required when spec.{scope} is VMM: name the QEMU binary to hand the VMs to "
            "(binary) and its sha256 (checksum)",
        ),
        rule(
            f"(({has}) && self.{scope} == 'VMM') || (has(self.target.kernel) && has(self.target.checksum))",
            f"spec.target.kernel and spec.target.checksum are required when spec.{scope} is Host (the default): name "
            "the new host's kernel and its sha256, or set it to VMM to replace only QEMU",
        ),
    ]


def _prefixes(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def scope_problems(scope: str, target: TargetHost, field: str = "scope") -> list[str]:
    """The Python twin of ``scope_rules`` (``field``: where the scope is, from the spec)."""
    if scope == RefreshScope.VMM:
        if target.qemu is None:
            return [
                f"spec.target.qemu is required when spec.{field} is VMM: name the QEMU binary to hand the VMs to "
                "(binary) and its sha256 (checksum)"
            ]
        return []
    if target.kernel is None or target.checksum is None:
        return [
            f"spec.target.kernel and spec.target.checksum are required when spec.{field} is Host (the default): name "
            "the new host's kernel and its sha256, or set it to VMM to replace only QEMU"
        ]
    return []


class RefreshTemplate(ApiModel):
    """Everything about how one node refreshes, apart from which node and which target."""

    scope: Annotated[
        RefreshScope,
        Field(
            default=RefreshScope.HOST,
            description="Host (default): replace kernel, KVM and QEMU by booting a new host beside the old one "
            "(nested virtualization for minutes). VMM: replace only QEMU, handing each VM to spec.target.qemu on the "
            "same host; no partition, no second host, never nested.",
        ),
    ]

    partition: Annotated[
        PartitionSpec,
        Field(default_factory=PartitionSpec, description="Sizing of the partition the target L1 boots in."),
    ]
    handover: Annotated[
        HandoverPolicy,
        Field(default_factory=HandoverPolicy, description="VM handover policy."),
    ]
    timeouts: Annotated[
        PhaseTimeouts,
        Field(default_factory=PhaseTimeouts, description="Per-phase deadlines."),
    ]
    failure_policy: Annotated[
        FailurePolicy,
        Field(
            default=FailurePolicy.ROLL_BACK,
            description="RollBack (default): a failure before Retiring rolls back. Hold: stop where it failed and "
            "wait for a human (set spec.abort to roll back).",
        ),
    ]
    unmovable_vm_policy: Annotated[
        UnmovableVMPolicy,
        Field(
            default=UnmovableVMPolicy.BLOCK,
            alias="unmovableVMPolicy",
            description="Block (default): do not start while the node runs VMs that cannot be handed over "
            "(host devices, GPUs, SR-IOV). Proceed: refresh anyway and report them.",
        ),
    ]


class MaintenanceWindow(ApiModel):
    """A recurring window in which new node refreshes may start (running ones always finish)."""

    schedule: Annotated[
        str,
        Field(
            max_length=256,
            pattern=CRON_PATTERN,
            description="Start of the window, a five-field cron expression (minute hour day-of-month month "
            "day-of-week), e.g. '0 2 * * 1-5'.",
        ),
    ]
    duration: Annotated[
        str,
        Field(
            min_length=2,
            max_length=16,
            pattern=DURATION_PATTERN,
            description="Length of the window as hours and minutes, e.g. 4h or 1h30m (1m to 168h).",
            json_schema_extra={
                "x-kubernetes-validations": [
                    rule(
                        "duration(self) >= duration('1m') && duration(self) <= duration('168h')",
                        "must be between 1m and 168h, e.g. 4h or 1h30m",
                    )
                ]
            },
        ),
    ]
    time_zone: Annotated[
        str,
        Field(
            default="UTC",
            max_length=64,
            pattern=TIME_ZONE_PATTERN,
            description="IANA time zone the schedule is read in, e.g. Europe/Berlin (default UTC).",
        ),
    ]
