"""Kubernetes meta types we embed: ``metav1.Condition`` and ``metav1.LabelSelector``."""

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Annotated, cast

from pydantic import ConfigDict, Field, model_validator
from pydantic.config import JsonDict

from hostrefresh.api.base import ApiModel, rule

# Same limits and patterns as k8s.io/apimachinery/pkg/apis/meta/v1 Condition.
CONDITION_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
CONDITION_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ConditionStatus(StrEnum):
    """Tri-state of a condition, as in metav1.ConditionStatus."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One observation of the object's state, in the ``metav1.Condition`` shape."""

    type: Annotated[
        str,
        Field(
            description="Type of condition in CamelCase, e.g. Ready or NestedActive.",
            max_length=316,
            pattern=CONDITION_TYPE_PATTERN,
        ),
    ]
    status: Annotated[ConditionStatus, Field(description="Status of the condition: True, False or Unknown.")]
    observed_generation: Annotated[
        int | None,
        Field(
            default=None,
            ge=0,
            description="metadata.generation the condition was set for; older than the object's means stale.",
        ),
    ]
    last_transition_time: Annotated[
        datetime,
        Field(description="Last time the status changed (not the reason or message)."),
    ]
    reason: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1024,
            pattern=CONDITION_REASON_PATTERN,
            description="CamelCase programmatic identifier for the last transition.",
        ),
    ]
    message: Annotated[
        str,
        Field(default="", max_length=32768, description="Human-readable details of the last transition."),
    ]


class LabelSelectorOperator(StrEnum):
    """Operators of a label selector requirement."""

    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


_VALUES_RULE = rule(
    "self.operator in ['In', 'NotIn'] ? has(self.values) && size(self.values) > 0"
    " : !has(self.values) || size(self.values) == 0",
    "values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist "
    "(as in any Kubernetes label selector)",
    ".values",
)


class LabelSelectorRequirement(ApiModel):
    """One ``matchExpressions`` entry of a label selector."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [cast("JsonDict", _VALUES_RULE)]})

    key: Annotated[str, Field(min_length=1, max_length=317, description="The label key the selector applies to.")]
    operator: Annotated[LabelSelectorOperator, Field(description="In, NotIn, Exists or DoesNotExist.")]
    values: Annotated[
        list[str] | None,
        Field(
            default=None,
            description="Values for In and NotIn (must be non-empty); must be empty for Exists and DoesNotExist.",
        ),
    ]

    @model_validator(mode="after")
    def _values_fit_the_operator(self) -> "LabelSelectorRequirement":
        wants_values = self.operator in (LabelSelectorOperator.IN, LabelSelectorOperator.NOT_IN)
        if wants_values != bool(self.values):
            raise ValueError("values must be non-empty for In and NotIn, and empty for Exists and DoesNotExist")
        return self


class LabelSelector(ApiModel):
    """A ``metav1.LabelSelector``; the requirements are ANDed."""

    match_labels: Annotated[
        dict[str, str] | None,
        Field(default=None, description="Labels a node must carry, all of them (ANDed)."),
    ]
    match_expressions: Annotated[
        list[LabelSelectorRequirement] | None,
        Field(default=None, description="Label requirements a node must satisfy, all of them (ANDed)."),
    ]

    def is_empty(self) -> bool:
        """An empty selector matches every node; plans must ask for that explicitly."""
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Evaluate the selector against a node's labels (same semantics as the API server)."""
        for key, value in (self.match_labels or {}).items():
            if labels.get(key) != value:
                return False
        for req in self.match_expressions or []:
            present = req.key in labels
            values = req.values or []
            if req.operator == LabelSelectorOperator.IN and (not present or labels[req.key] not in values):
                return False
            if req.operator == LabelSelectorOperator.NOT_IN and present and labels[req.key] in values:
                return False
            if req.operator == LabelSelectorOperator.EXISTS and not present:
                return False
            if req.operator == LabelSelectorOperator.DOES_NOT_EXIST and present:
                return False
        return True
