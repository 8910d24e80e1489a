"""Status writes shared by the controllers: one lock per object, a status patch only when the
status model changed, an Event for each condition transition, and the report of a spec that does
not validate. The controllers compute a new status model from the old one; this module decides
what reaches the API server.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shinsa.api import Condition, ConditionStatus
from shinsa.api.conditions import get_condition
from shinsa.controllers import kube

# Events and condition messages are read by people in `kubectl describe`; the API server takes
# more, but a long message there is a log dump nobody reads.
EVENT_MESSAGE_LIMIT = 1000

ObjectKey = tuple[str, str]


class StatusModel(Protocol):
    """What the writer needs of a status model (ModelDeploymentStatus, EvalRunStatus)."""

    @property
    def conditions(self) -> list[Condition]: ...

    def to_k8s(self) -> dict[str, Any]: ...


class ObjectLocks:
    """One asyncio lock per (namespace, name): the handlers of one object (reconcile, pod-driven
    refresh, registry follower) never interleave their reads and status writes."""

    def __init__(self) -> None:
        self._locks: defaultdict[ObjectKey, asyncio.Lock] = defaultdict(asyncio.Lock)

    def __getitem__(self, key: ObjectKey) -> asyncio.Lock:
        return self._locks[key]

    def forget(self, key: ObjectKey) -> None:
        """Drop a deleted object's lock (a recreated object of the same name gets a new one)."""
        self._locks.pop(key, None)

    def __contains__(self, key: object) -> bool:
        return key in self._locks


@dataclass(frozen=True)
class EventPolicy:
    """Which condition transitions are good news (Normal events) and which are Warnings."""

    inverted: frozenset[str] = frozenset()
    """Condition types whose True is the problem (Degraded); their first appearance as False is no
    news and posts nothing."""
    expected_false: frozenset[str] = frozenset()
    """Reasons of a False condition on the way to health (Loading, Pending): Normal, not Warning."""

    def is_news(self, before: Condition | None, after: Condition) -> bool:
        if before is not None:
            return before.status != after.status or before.reason != after.reason
        return not (after.type in self.inverted and after.status == ConditionStatus.FALSE)

    def event_type(self, condition: Condition) -> str:
        if condition.type in self.inverted:
            healthy = condition.status != ConditionStatus.TRUE
        else:
            healthy = condition.status != ConditionStatus.FALSE or condition.reason in self.expected_false
        return "Normal" if healthy else "Warning"


@dataclass(frozen=True)
class TransitionEvent:
    type: str
    reason: str
    message: str


def transition_events(
    before: Sequence[Condition], after: Sequence[Condition], policy: EventPolicy
) -> list[TransitionEvent]:
    """The Events a status change deserves: one per condition whose status or reason changed."""
    events = []
    for condition in after:
        if not policy.is_news(get_condition(before, condition.type), condition):
            continue
        message = f"{condition.type}={condition.status.value}: {condition.message}".strip().rstrip(":")
        events.append(
            TransitionEvent(policy.event_type(condition), condition.reason, message[:EVENT_MESSAGE_LIMIT])
        )
    return events


def status_patch(before: StatusModel, after: StatusModel) -> dict[str, Any] | None:
    """The merge patch from `before` to `after`, or None when they are equal. It carries every field
    of `after` (so a write racing an older one ends at `after` whole) and null for a field `after`
    cleared; conditions go as the whole list, which a merge patch replaces."""
    old, new = before.to_k8s(), after.to_k8s()
    if old == new:
        return None
    return new | {key: None for key in old.keys() - new.keys()}


class StatusWriter:
    """Writes the status of one resource kind (`plural`) and posts its transition Events."""

    def __init__(self, plural: str, policy: EventPolicy) -> None:
        self.plural = plural
        self.policy = policy

    def write(self, body: dict[str, Any], before: StatusModel, after: StatusModel) -> bool:
        """Patch the status from `before` (what `body` holds) to `after`; False when nothing
        changed and nothing was written. Events follow the write: one that was refused posts none."""
        patch = status_patch(before, after)
        if patch is None:
            return False
        meta = body["metadata"]
        kube.patch_status(self.plural, meta["namespace"], meta["name"], patch)
        for event in transition_events(before.conditions, after.conditions, self.policy):
            kube.post_event(body, event.type, event.reason, event.message)
        return True

    def report_invalid(self, body: dict[str, Any], status: StatusModel, reason: str, message: str) -> None:
        """Write `status` (the controller's description of an object whose spec does not validate)
        whole, and post `message` as a Warning: the operator stops retrying it, so this is all the
        user will see."""
        meta = body["metadata"]
        kube.patch_status(self.plural, meta["namespace"], meta["name"], status.to_k8s())
        kube.post_event(body, "Warning", reason, message[:EVENT_MESSAGE_LIMIT])


def invalid_spec_message(error: Exception) -> str:
    """The condition and event message for a spec the operator's models refuse."""
    return f"spec does not validate: {error}"[:EVENT_MESSAGE_LIMIT]
