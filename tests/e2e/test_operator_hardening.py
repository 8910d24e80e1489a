"""Issue 12 against the real API server: a child the server refuses leaves no GPU pods behind and
the status says what exists, `replicas: 0` reads ScaledToZero, integer values cannot slip under a
fractional bound, and an operator process leaves no discovery cache file behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from tests.e2e.test_model_deployment import condition, create, small, wait_condition
from tests.support.operator import (
    InProcessOperator,
    OperatorProcess,
    no_in_process_operator,
    operator_settings,
)
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e


def dry_run(kube: client.ApiClient, namespace: str, plural: str, body: dict[str, Any]) -> None:
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "shinsa.dev", "v1alpha1", namespace, plural, body, dry_run="All", field_validation="Strict"
    )


def test_a_refused_service_leaves_no_workload_and_the_status_says_what_exists(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    # A quota of no Services: the API server refuses the Service whatever its name.
    client.CoreV1Api(kube).create_namespaced_resource_quota(
        namespace, {"metadata": {"name": "no-services"}, "spec": {"hard": {"services": "0"}}}
    )
    create(kube, namespace, small("refused"))

    md = wait_condition(kube, namespace, "refused", "Planned", "False")
    planned = condition(md, "Planned")
    assert planned["reason"] == "Rejected", planned
    message = planned["message"]
    assert "Service refused" in message and "services" in message, message
    assert "applied and left in place: none" in message, message
    assert "not applied: Service refused, Deployment refused" in message, message
    assert md["status"]["phase"] == "Pending"  # retried: removing the quota heals it
    # The Service comes first: no Deployment holds GPUs for a model nobody could reach.
    assert not client.AppsV1Api(kube).list_namespaced_deployment(namespace).items


def test_zero_replicas_is_scaled_to_zero(
    kube: client.ApiClient, namespace: str, operator: InProcessOperator
) -> None:
    create(kube, namespace, small("idle", replicas=0))

    md = wait_condition(kube, namespace, "idle", "Planned", "True")
    md = eventually(
        lambda: (
            md if (md := _get(kube, namespace, "idle"))["status"].get("phase") == "ScaledToZero" else None
        ),
        timeout_s=30,
        what="phase ScaledToZero",
    )
    ready = condition(md, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ScaledToZero")


def _get(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(kube).get_namespaced_custom_object(
            "shinsa.dev", "v1alpha1", namespace, "modeldeployments", name
        )
    )


def test_a_kserve_name_without_room_for_the_predictor_suffix_is_refused(
    kube: client.ApiClient, crds: list[str]
) -> None:
    body = small("k" * 54, backend="kserve")
    with pytest.raises(ApiException) as refused:
        dry_run(kube, "default", "modeldeployments", body)
    assert refused.value.status == 422
    assert "metadata.name" in refused.value.body and "kserve" in refused.value.body
    dry_run(kube, "default", "modeldeployments", small("k" * 53, backend="kserve"))


@pytest.mark.parametrize("value", [0, -1])
def test_a_promotion_policy_min_confidence_below_its_fractional_bound_is_refused(
    kube: client.ApiClient, crds: list[str], value: int
) -> None:
    def dry_run_policy(min_confidence: float) -> None:
        body = {
            "apiVersion": "shinsa.dev/v1alpha1",
            "kind": "PromotionPolicy",
            "metadata": {"name": "strict"},
            "spec": {"registeredModel": "m", "namespaces": ["*"], "minConfidence": min_confidence},
        }
        client.CustomObjectsApi(kube).create_cluster_custom_object(
            "shinsa.dev", "v1alpha1", "promotionpolicies", body, dry_run="All", field_validation="Strict"
        )

    dry_run_policy(0.9)
    with pytest.raises(ApiException) as refused:
        dry_run_policy(value)
    assert refused.value.status == 422, refused.value.body
    assert "minConfidence" in refused.value.body, refused.value.body


def test_an_operator_stopped_with_sigterm_leaves_no_discovery_cache_file(
    kube: client.ApiClient, namespace: str, crds: list[str], tmp_path: Path
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    operator = OperatorProcess(operator_settings(), namespace, tmp_path / "operator.log")
    operator.env["TMPDIR"] = str(temp)
    # The session's in-process operator would handle the object first, and this one skip it.
    with no_in_process_operator():
        operator.start()
        try:
            create(kube, namespace, small("discovered"))
            # Planned=True: the children were applied, so discovery ran in that process.
            wait_condition(kube, namespace, "discovered", "Planned", "True")
            assert not list(temp.glob("*.json")), list(temp.iterdir())
        finally:
            operator.stop()
    assert operator.proc is not None and operator.proc.returncode == 0, operator.log_text()[-3000:]
    assert not list(temp.glob("*.json")), list(temp.iterdir())
