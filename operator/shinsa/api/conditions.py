"""Kubernetes-style status conditions (the shape of `metav1.Condition`) and helpers to maintain them."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from shinsa.api.base import K8sStatusModel

READY = "Ready"
"""The summary condition of a living resource (a ModelDeployment); the `Ready` printer column
reads it. Each resource's condition types and reasons are listed in `shinsa.api.lifecycle`."""

# The patterns and limits of metav1.Condition, so conditions written by Shinsa would also be
# valid wherever the upstream type is expected.
_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
_REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"


class ConditionStatus(enum.StrEnum):
    """Whether a condition holds: True, False or Unknown."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(K8sStatusModel):
    """One aspect of the resource's current state, following Kubernetes API conventions."""

    type: str = Field(pattern=_TYPE_PATTERN, max_length=316)
    """The aspect this condition reports on, in CamelCase (for example `Ready`)."""
    status: ConditionStatus
    """Whether the condition holds: True, False or Unknown."""
    reason: str = Field(pattern=_REASON_PATTERN, min_length=1, max_length=1024)
    """A CamelCase, machine-readable cause of the last transition (for example `InsufficientGPUs`)."""
    message: str = Field(max_length=32768)
    """A human-readable explanation of the current status; may be empty."""
    last_transition_time: datetime
    """When the status last changed (not when the condition was last written)."""
    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` the condition was computed from."""


def get_condition(conditions: Sequence[Condition], type_: str) -> Condition | None:
    """The condition of a type, or None."""
    return next((c for c in conditions if c.type == type_), None)


def set_condition(
    conditions: Sequence[Condition],
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str = "",
    *,
    observed_generation: int | None = None,
    now: datetime | None = None,
) -> list[Condition]:
    """A new list with the condition of `type_` added or replaced; the input is not modified.

    `lastTransitionTime` moves only when the status changes, so a controller may call this on every
    reconcile without making the condition look freshly flipped.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    previous = get_condition(conditions, type_)
    if previous is not None and previous.status == status:
        transition = previous.last_transition_time
    else:
        # metav1.Time has second precision; more would make round trips through the API server lossy.
        transition = (now or datetime.now(UTC)).replace(microsecond=0)
    updated = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    replaced = [updated if c.type == type_ else c for c in conditions]
    return replaced if previous is not None else [*replaced, updated]


def conditions_to_k8s(conditions: Sequence[Condition]) -> list[dict[str, Any]]:
    """The conditions as JSON-ready dicts for a status patch."""
    return [c.to_k8s() for c in conditions]
