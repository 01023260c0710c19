"""Shared pydantic configuration for the custom resource models.

Every model uses camelCase JSON names (Kubernetes convention), snake_case Python attributes, and
rejects unknown fields so that a typo fails loudly in Python just as it does on the API server.
"""

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class ApiModel(BaseModel):
    """Base of every API type: camelCase aliases, no unknown fields, validated assignment."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
        use_enum_values=True,
    )

    def to_json(self) -> dict[str, object]:
        """The object as the API server stores it (aliases, unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


def rule(expr: str, message: str, field_path: str | None = None) -> dict[str, str]:
    """One CEL ``x-kubernetes-validations`` entry; ``message`` names the field and the fix."""
    entry = {"rule": expr, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    return entry
