"""The API server itself refuses bad ModelDeployments and EvalRuns (OpenAPI schema and CEL rules
generated from the pydantic models), with a message naming the field: the same cases the models
refuse in Python."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.api import EvalRun
from tests.support.api_cases import (
    BAD_EVAL_RUNS,
    BAD_MODEL_DEPLOYMENTS,
    EVAL,
    GOOD_EVAL_RUNS,
    GOOD_MODEL_DEPLOYMENTS,
    MOE,
    with_value,
)

pytestmark = pytest.mark.e2e


def dry_run_create(kube: client.ApiClient, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
    """The object as the API server would store it (defaulted), without storing it."""
    plural = {"ModelDeployment": "modeldeployments", "EvalRun": "evalruns"}[body["kind"]]
    body = with_value(body, "metadata.namespace", namespace)
    stored: dict[str, Any] = client.CustomObjectsApi(kube).create_namespaced_custom_object(
        # Strict field validation is what kubectl asks for: unknown fields (typos) are errors.
        "shinsa.dev",
        "v1alpha1",
        namespace,
        plural,
        body,
        dry_run="All",
        field_validation="Strict",
    )
    return stored


@pytest.mark.parametrize("good", [MOE, EVAL], ids=["ModelDeployment", "EvalRun"])
def test_the_documented_examples_are_accepted(
    kube: client.ApiClient, crds: list[str], good: dict[str, Any]
) -> None:
    dry_run_create(kube, "default", good)


@pytest.mark.parametrize(
    ("path", "value"), GOOD_EVAL_RUNS, ids=[f"{p}={v!r}"[:60] for p, v in GOOD_EVAL_RUNS]
)
def test_eval_runs_are_stored_as_python_reads_them(
    kube: client.ApiClient, crds: list[str], path: str, value: Any
) -> None:
    # The server's defaults are Python's, and a null that means "send none" (a judge's temperature)
    # is kept rather than pruned and defaulted.
    body = with_value(EVAL, path, value)
    stored = dry_run_create(kube, "default", body)
    assert EvalRun.from_body(stored).spec == EvalRun.model_validate(body).spec


@pytest.mark.parametrize(
    ("path", "value"), GOOD_MODEL_DEPLOYMENTS, ids=[f"{v}" for _, v in GOOD_MODEL_DEPLOYMENTS]
)
def test_layouts_the_planner_can_fill_are_accepted_by_the_api_server(
    kube: client.ApiClient, crds: list[str], path: str, value: Any
) -> None:
    dry_run_create(kube, "default", with_value(MOE, path, value))


@pytest.mark.parametrize(
    ("good", "path", "value", "names"),
    [(MOE, *case) for case in BAD_MODEL_DEPLOYMENTS] + [(EVAL, *case) for case in BAD_EVAL_RUNS],
    ids=[f"md:{p}={v!r}"[:60] for p, v, _ in BAD_MODEL_DEPLOYMENTS]
    + [f"er:{p}={v!r}"[:60] for p, v, _ in BAD_EVAL_RUNS],
)
def test_bad_specs_are_refused_by_the_api_server_naming_the_field(
    kube: client.ApiClient, crds: list[str], good: dict[str, Any], path: str, value: Any, names: str
) -> None:
    with pytest.raises(ApiException) as refused:
        dry_run_create(kube, "default", with_value(good, path, value))
    assert refused.value.status in (400, 422), refused.value.body
    assert names in refused.value.body, refused.value.body
