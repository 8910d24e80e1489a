"""Issue 12, the operator: a ModelDeployment is never half applied, `replicas: 0` says it is scaled
to zero, fractional bounds hold for integer values too, and the operator's log levels are the
documented ones."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

import kopf
import pytest
from pydantic import ValidationError

from shinsa.api import ConditionStatus, ModelDeploymentPhase, ModelDeploymentStatus
from shinsa.api.conditions import get_condition, set_condition
from shinsa.api.crd import crd_manifests
from shinsa.api.model_deployment import DNS_1035_PATTERN, KSERVE_NAME_MAX
from shinsa.controllers import kube
from shinsa.controllers import model_deployment as controller
from shinsa.controllers.desired import desired_state
from shinsa.controllers.observed import observe
from shinsa.controllers.settings import BODY_LOGGERS, OperatorSettings, configure_logging
from shinsa.planner import lookup_model
from shinsa.render import lws_name
from tests.support.manifests import model_deployment

pytestmark = pytest.mark.unit

# -- names every child can carry ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["1edge-digit", "edge.dot", "edge-", "Edge", "a" * 64, "ed_ge", "edge\n"])
def test_names_that_cannot_name_the_service_are_refused_naming_metadata_name(name: str) -> None:
    with pytest.raises(ValidationError, match=r"metadata\.name"):
        model_deployment(name=name)


@pytest.mark.parametrize("name", ["a", "edge-1", "a" * 63, "x-" * 31 + "y"])
def test_dns_1035_labels_are_accepted_and_python_agrees_with_the_cel_pattern(name: str) -> None:
    assert model_deployment(name=name).metadata.name == name
    assert re.fullmatch(DNS_1035_PATTERN[1:-1], name)


def test_the_longest_name_still_gives_leaderworkerset_pods_valid_hostnames() -> None:
    md = model_deployment(name="a" * 63, backend="leaderworkerset")
    lws = lws_name(md)
    assert len(lws) <= 40 and re.fullmatch(DNS_1035_PATTERN[1:-1], lws)
    # LeaderWorkerSet names pods <lws>-<group>-<worker>; 1000 replicas of 1024 nodes at most.
    assert len(f"{lws}-999-1023") <= 63


def test_kserve_names_leave_room_for_the_predictor_suffix() -> None:
    assert model_deployment(name="k" * KSERVE_NAME_MAX, backend="kserve")
    with pytest.raises(ValidationError, match="kserve"):
        model_deployment(name="k" * (KSERVE_NAME_MAX + 1), backend="kserve")
    # Other backends are not held to KServe's suffix.
    assert model_deployment(name="k" * 63)


# -- a child refused after others were applied ----------------------------------------------------


@pytest.mark.parametrize("backend", ["deployment", "leaderworkerset"])
def test_the_service_is_applied_before_the_workload(backend: str) -> None:
    md = model_deployment(backend=backend)
    desired = desired_state(md, lookup_model("llm-jp-4-8b").architecture, 8, md.spec.model.uri)
    assert desired.children[0]["kind"] == "Service"
    assert desired.children[-1]["kind"] in ("Deployment", "LeaderWorkerSet")


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """The kube calls of a reconcile, recorded: `refuse` names the kinds the API server refuses,
    `pods` is what the pod listing returns, `applied` and `written` what the reconcile did."""
    state: dict[str, Any] = {"refuse": set(), "pods": [], "applied": [], "written": []}

    def apply(obj: dict[str, Any]) -> dict[str, Any]:
        if obj["kind"] in state["refuse"]:
            raise kube.Rejected(f"{obj['kind']} {obj['metadata']['name']}: exceeded quota")
        state["applied"].append(obj["kind"])
        return obj

    monkeypatch.setattr(kube, "apply", apply)
    monkeypatch.setattr(kube, "require_served", lambda objs: None)
    monkeypatch.setattr(kube, "gpus_per_node", lambda label: 8)
    monkeypatch.setattr(kube, "list_pods", lambda namespace, selector: list(state["pods"]))
    monkeypatch.setattr(controller, "_write", lambda body, md, status: state["written"].append(status))
    yield state


def _reconciled(state: dict[str, Any], **spec: Any) -> ModelDeploymentStatus:
    md = model_deployment(**spec)
    body = md.model_dump(mode="json", by_alias=True, exclude_none=True)
    with pytest.raises(kopf.TemporaryError):
        controller.reconcile_sync(body, OperatorSettings())
    written: ModelDeploymentStatus = state["written"][-1]
    return written


def test_a_refused_service_leaves_no_workload_and_says_what_exists(cluster: dict[str, Any]) -> None:
    cluster["refuse"] = {"Service"}
    status = _reconciled(cluster)
    assert cluster["applied"] == []  # no GPU pods held for a deployment that cannot be reached
    planned = get_condition(status.conditions, "Planned")
    assert planned is not None and planned.status == ConditionStatus.FALSE
    assert planned.reason == "Rejected"
    assert "Service llm-jp-4-8b: exceeded quota" in planned.message
    assert "applied and left in place: none" in planned.message
    assert "not applied: Service llm-jp-4-8b, Deployment llm-jp-4-8b" in planned.message
    assert "no serving pods exist" in planned.message
    assert status.phase == ModelDeploymentPhase.PENDING  # retried


def test_a_refused_workload_leaves_its_service_and_the_earlier_pods_and_says_so(
    cluster: dict[str, Any],
) -> None:
    cluster["refuse"] = {"Deployment"}
    cluster["pods"] = [{"metadata": {"name": "llm-jp-4-8b-abc"}, "status": {}}]
    status = _reconciled(cluster)
    assert cluster["applied"] == ["Service"]
    planned = get_condition(status.conditions, "Planned")
    assert planned is not None and planned.reason == "Rejected"
    assert "applied and left in place: Service llm-jp-4-8b" in planned.message
    assert "not applied: Deployment llm-jp-4-8b" in planned.message
    assert "1 serving pod(s) of an earlier apply left running" in planned.message


# -- replicas: 0 ----------------------------------------------------------------------------------

PLANNED = set_condition([], "Planned", True, "Planned", "TP1 on 1 GPU(s) per replica", observed_generation=1)


def test_zero_replicas_is_scaled_to_zero_not_pending() -> None:
    seen = observe(PLANNED, 1, 0, 1, [])
    assert seen.phase == ModelDeploymentPhase.SCALED_TO_ZERO
    ready = get_condition(seen.conditions, "Ready")
    assert ready is not None and (ready.status, ready.reason) == (ConditionStatus.FALSE, "ScaledToZero")
    # Pods still terminating after the scale-down do not make it Pending either.
    terminating = {"metadata": {"name": "p", "deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {}}
    assert observe(PLANNED, 1, 0, 1, [terminating]).phase == ModelDeploymentPhase.SCALED_TO_ZERO


def test_the_crd_stores_the_scaled_to_zero_phase() -> None:
    (md_crd,) = (c for c in crd_manifests() if c["spec"]["names"]["kind"] == "ModelDeployment")
    schema = md_crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    assert "ScaledToZero" in schema["properties"]["status"]["properties"]["phase"]["enum"]


# -- fractional bounds ----------------------------------------------------------------------------


def _number_nodes(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "number":
            yield path, node
        for key, value in node.items():
            yield from _number_nodes(value, f"{path}.{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _number_nodes(item, f"{path}[]")


def test_every_fractional_bound_is_restated_in_cel() -> None:
    found = []
    for crd in crd_manifests():
        for path, node in _number_nodes(crd):
            rules = {r["rule"] for r in node.get("x-kubernetes-validations", [])}
            for bound, exclusive, strict, inclusive in (
                ("minimum", "exclusiveMinimum", ">", ">="),
                ("maximum", "exclusiveMaximum", "<", "<="),
            ):
                value = node.get(bound)
                if isinstance(value, float) and not value.is_integer():
                    found.append(path)
                    op = strict if node.get(exclusive) else inclusive
                    assert f"self {op} {value!r}" in rules, (path, rules)
    # gpuMemoryUtilization (both ends), gates.confidence and minConfidence: the ones known today.
    assert len(found) >= 4, found


# -- log levels -----------------------------------------------------------------------------------


@pytest.fixture
def logging_restored() -> Iterator[None]:
    names = ["", "asyncio", "kopf", *BODY_LOGGERS]
    saved = {
        n: (logging.getLogger(n).level, list(logging.getLogger(n).handlers), logging.getLogger(n).propagate)
        for n in names
    }
    yield
    for n, (level, handlers, propagate) in saved.items():
        logger = logging.getLogger(n)
        logger.setLevel(level)
        logger.handlers[:] = handlers
        logger.propagate = propagate


def _body_logger() -> logging.Logger:
    # Where the kubernetes client logs "response body: ...".
    return logging.getLogger("kubernetes.client.rest")


@pytest.mark.parametrize("verbose", [False, True])
def test_the_default_and_verbose_log_at_info_without_response_bodies(
    logging_restored: None, verbose: bool
) -> None:
    configure_logging(verbose=verbose, debug=False)
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("kopf.objects").getEffectiveLevel() == logging.INFO
    for name in ("kubernetes.client.rest", "urllib3.connectionpool"):
        assert not logging.getLogger(name).isEnabledFor(logging.DEBUG), name
    assert not _body_logger().isEnabledFor(logging.INFO)


def test_debug_logs_everything(logging_restored: None) -> None:
    configure_logging(debug=True)
    assert logging.getLogger().level == logging.DEBUG
    assert _body_logger().isEnabledFor(logging.DEBUG)


def test_shinsa_operator_run_verbose_is_info(logging_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from shinsa.cli import app

    levels: dict[str, int] = {}

    def run(**_: Any) -> None:
        levels["root"] = logging.getLogger().level
        levels["body"] = _body_logger().getEffectiveLevel()

    monkeypatch.setattr(kopf, "run", run)
    done = CliRunner().invoke(app, ["operator", "run", "--verbose", "--metrics-port", "0"], env={})
    assert done.exit_code == 0, done.output
    assert levels["root"] == logging.INFO
    assert levels["body"] > logging.DEBUG
    done = CliRunner().invoke(app, ["operator", "run", "--debug", "--metrics-port", "0"], env={})
    assert done.exit_code == 0, done.output
    assert levels["root"] == logging.DEBUG and levels["body"] == logging.DEBUG
