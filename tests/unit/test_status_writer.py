"""The shared status writer: what reaches the API server when a controller hands it a new status
model, and which condition transitions become Warning events."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from shinsa.api import Condition, ConditionStatus, ModelDeploymentPhase, ModelDeploymentStatus
from shinsa.api.conditions import _REASON_PATTERN, set_condition
from shinsa.api.lifecycle import (
    EvalRunCondition,
    EvalRunReason,
    ModelDeploymentCondition,
    ModelDeploymentReason,
)
from shinsa.controllers import kube
from shinsa.controllers.model_deployment import STATUS
from shinsa.controllers.status import ObjectLocks, status_patch, transition_events

pytestmark = pytest.mark.unit

Cond, Reason = ModelDeploymentCondition, ModelDeploymentReason
BODY = {
    "apiVersion": "shinsa.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "chat", "namespace": "models", "uid": "chat-uid", "generation": 2},
}


def status(**fields: Any) -> ModelDeploymentStatus:
    return ModelDeploymentStatus(observed_generation=2, **fields)


def conditions(*entries: tuple[str, bool | ConditionStatus, str]) -> list[Condition]:
    out: list[Condition] = []
    for type_, value, reason in entries:
        out = set_condition(out, type_, value, reason, "why")
    return out


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """What the writer sent to the API server, in order."""
    calls: list[tuple[str, Any]] = []
    monkeypatch.setattr(kube, "patch_status", lambda plural, ns, name, patch: calls.append(("patch", patch)))
    monkeypatch.setattr(
        kube, "post_event", lambda obj, type_, reason, message: calls.append(("event", (type_, reason)))
    )
    return calls


def test_an_unchanged_status_is_not_written(api: list[tuple[str, Any]]) -> None:
    before = status(phase=ModelDeploymentPhase.READY, conditions=conditions(("Ready", True, "Ready")))
    after = before.model_copy(update={"conditions": list(before.conditions)})
    assert status_patch(before, after) is None
    assert STATUS.write(BODY, before, after) is False
    assert api == []


def test_a_changed_status_is_written_whole_with_nulls_for_what_was_cleared() -> None:
    before = status(
        phase=ModelDeploymentPhase.LOADING, layout="TP2", endpoint="http://chat.models.svc:8000/v1"
    )
    after = status(phase=ModelDeploymentPhase.READY, layout="TP2")
    assert status_patch(before, after) == {
        "observedGeneration": 2,
        "phase": "Ready",
        "layout": "TP2",
        "conditions": [],
        "endpoint": None,
    }


def test_events_follow_the_write_one_per_transition_warnings_for_bad_news(api: list[tuple[str, Any]]) -> None:
    before = status(conditions=conditions(("Planned", True, "Planned"), ("Ready", False, "Loading")))
    after = status(
        conditions=conditions(
            ("Planned", True, "Planned"), ("Ready", False, "InsufficientGPU"), ("Degraded", False, "Healthy")
        )
    )
    assert STATUS.write(BODY, before, after) is True
    assert [kind for kind, _ in api] == ["patch", "event"]
    # Planned did not change; a first "not degraded" is no news; Ready moved to a scheduling problem.
    assert api[1] == ("event", ("Warning", "InsufficientGPU"))


@pytest.mark.parametrize(
    ("type_", "value", "reason", "expected"),
    [
        (Cond.READY, False, Reason.LOADING, "Normal"),  # on the way to Ready
        (Cond.READY, False, Reason.PENDING, "Normal"),
        (Cond.READY, False, Reason.SCALED_TO_ZERO, "Normal"),
        (Cond.READY, True, Reason.READY, "Normal"),
        (Cond.READY, False, Reason.CRASH_LOOP, "Warning"),
        (Cond.PLANNED, False, Reason.PLAN_FAILED, "Warning"),
        (Cond.SCHEDULED, ConditionStatus.UNKNOWN, Reason.PENDING, "Normal"),
        (Cond.DEGRADED, True, Reason.CRASH_LOOP, "Warning"),  # Degraded's True is the bad news
    ],
)
def test_which_transitions_are_warnings(
    type_: str, value: bool | ConditionStatus, reason: str, expected: str
) -> None:
    (event,) = transition_events([], conditions((type_, value, reason)), STATUS.policy)
    assert (event.type, event.reason) == (expected, reason)
    assert event.message.startswith(f"{type_}=")


def test_recovering_from_degraded_is_news_but_a_first_healthy_degraded_is_not() -> None:
    assert transition_events([], conditions(("Degraded", False, "Healthy")), STATUS.policy) == []
    crashed = conditions(("Degraded", True, "CrashLoop"))
    (event,) = transition_events(crashed, conditions(("Degraded", False, "Healthy")), STATUS.policy)
    assert (event.type, event.reason) == ("Normal", "Healthy")


def test_the_invalid_spec_report_writes_the_given_status_and_warns(api: list[tuple[str, Any]]) -> None:
    failed = status(
        phase=ModelDeploymentPhase.FAILED, conditions=conditions(("Planned", False, "InvalidSpec"))
    )
    STATUS.report_invalid(BODY, failed, Reason.INVALID_SPEC, "spec does not validate: " + "x" * 2000)
    (_, patch), (_, event) = api
    assert patch["phase"] == "Failed" and patch["conditions"][0]["reason"] == "InvalidSpec"
    assert event == ("Warning", "InvalidSpec")


def test_one_lock_per_object_until_it_is_forgotten() -> None:
    locks = ObjectLocks()
    first = locks["models", "chat"]
    assert locks["models", "chat"] is first and locks["models", "other"] is not first
    locks.forget(("models", "chat"))
    assert ("models", "chat") not in locks
    assert isinstance(locks["models", "chat"], asyncio.Lock)


@pytest.mark.parametrize("enum", [ModelDeploymentCondition, EvalRunCondition])
def test_condition_types_are_camel_case(enum: Any) -> None:
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", member.value) for member in enum)


@pytest.mark.parametrize("enum", [ModelDeploymentReason, EvalRunReason])
def test_reasons_are_valid_condition_reasons(enum: Any) -> None:
    assert all(re.match(_REASON_PATTERN, member.value) for member in enum)
