"""Shared plumbing of the resource models: camelCase wire names and CEL rules mirrored in Python."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

GROUP = "shinsa.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# Kubernetes spells unit suffixes in capitals, which no generic camelCase function can guess.
_ALIAS_OVERRIDES = {"memory_gib": "memoryGiB", "mlflow_run_id": "mlflowRunId"}


def wire_name(attribute: str) -> str:
    """The camelCase name a snake_case attribute has in YAML and in the CRD schema."""
    return _ALIAS_OVERRIDES.get(attribute) or to_camel(attribute)


@dataclass(frozen=True)
class CelRule:
    """One invariant, stated twice: in CEL for the API server and in Python for local validation.

    Both must agree; keeping them side by side in one object is what keeps them agreeing.
    The message must name the offending field: it is all a user sees from `kubectl apply`.
    """

    rule: str
    message: str
    holds: Callable[[Any], bool]
    field_path: str | None = None
    reason: str | None = None

    def to_schema(self) -> dict[str, str]:
        out = {"rule": self.rule, "message": self.message}
        if self.field_path:
            out["fieldPath"] = self.field_path
        if self.reason:
            out["reason"] = self.reason
        return out


def _add_cel_rules(schema: dict[str, Any], cls: type[Any]) -> None:
    rules: tuple[CelRule, ...] = getattr(cls, "cel_rules", ())
    if rules:
        schema["x-kubernetes-validations"] = [r.to_schema() for r in rules]


class K8sModel(BaseModel):
    """Base of every object inside a Shinsa resource.

    Unknown fields are errors, so a typo in a manifest fails `shinsa plan` locally instead of being
    pruned silently by the API server.
    """

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        extra="forbid",
        use_attribute_docstrings=True,
        json_schema_extra=_add_cel_rules,
    )

    cel_rules: ClassVar[tuple[CelRule, ...]] = ()

    @model_validator(mode="after")
    def _check_cel_rules(self) -> K8sModel:
        for rule in type(self).cel_rules:
            if not rule.holds(self):
                raise ValueError(rule.message)
        return self

    def to_k8s(self) -> dict[str, Any]:
        """The object as the API server wants it: camelCase keys, JSON types, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class K8sStatusModel(K8sModel):
    """Base of status objects: lenient, because status is read back from the cluster.

    Tools other than Shinsa (kopf's own progress records, an older operator version) may have left
    fields the current model does not know; reading must not fail on them.
    """

    model_config = ConfigDict(extra="ignore")


def defaulted(factory: Callable[[], K8sModel]) -> Any:
    """A nested object that may be omitted: Python builds it from its defaults, and the CRD says
    `default: {}` so the API server fills in the nested defaults too and `kubectl get -o yaml` shows
    the values in effect."""
    return Field(default_factory=factory, json_schema_extra={"default": {}})


def require_unique(items: list[Any], key: str, where: str) -> None:
    """What `x-kubernetes-list-type: map` makes the API server check: one entry per key."""
    seen: set[Any] = set()
    for item in items:
        value = getattr(item, key)
        if value in seen:
            raise ValueError(f"{where}: duplicate {key} {value!r}")
        seen.add(value)
