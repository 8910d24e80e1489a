"""pipelines/promote-workflowtemplate.yaml against Argo Workflows' own WorkflowTemplate CRD and JSON
schema, at the version pinned in tools/upstream-crds.txt (read from Argo's Go module), and against
Shinsa's API for the ModelDeployment and EvalRun it creates.

The API server with Argo's CRD refuses unknown fields and wrong types, but it accepts a call of a
template that does not exist, a misspelled `depends` or parameter, and anything inside the
manifests (they are strings to it): those are checked here from the file itself
(tests/support/argo_templates.py). No Argo controller runs; nothing is submitted.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from pydantic import BaseModel, ValidationError

from shinsa.api import BenchmarkName, EvalRun, ModelDeployment
from shinsa.devcluster import upstream
from shinsa.devcluster.cluster import LocalCluster, tool_bin_dir
from shinsa.devcluster.crds import install_crds
from tests.support.argo_templates import (
    ResourceCall,
    condition_errors,
    reference_errors,
    resource_calls,
    templates_of,
    workflow_values,
)

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "pipelines" / "promote-workflowtemplate.yaml"
ARGO_MODULE = "github.com/argoproj/argo-workflows/v3"
ARGO_JSON_SCHEMA = Path("api") / "jsonschema" / "schema.json"
WORKFLOW_TEMPLATE_DEFINITION = "io.argoproj.workflow.v1alpha1.WorkflowTemplate"
FIELD_MANAGER = "shinsa-tests"

MODELS: dict[str, type[BaseModel]] = {"ModelDeployment": ModelDeployment, "EvalRun": EvalRun}

# What `argo submit -p ...` would give for the parameters without a default.
SAMPLES = {
    "namespace": "ml",
    "candidate-uri": "hf://Qwen/Qwen3-8B",
    "candidate-revision": "9c925d64d72725edaf899c6cb9c377fd0709d9c5",
    "registered-model": "qwen3-8b",
    "dataset-uri": "s3://datasets/mt-bench",
    "judge-endpoint": "http://judge.ml.svc:8000/v1",
    "judge-model": "judge-a",
}
# Argo's globals as a run from the template has them.
VARIABLES = {
    "workflow.name": "shinsa-promote-x7k2p",
    "workflow.namespace": "argo",
    "workflow.status": "Failed",
}


def load(text: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def consistency_errors(calls: list[ResourceCall], samples: dict[str, str]) -> list[str]:
    """The objects the steps touch are the ones the flow means: the EvalRun evaluates the deployed
    candidate, the waits and deletes name what was created, the promotion moves the baseline's alias."""
    errors = []
    creating = [call.manifest for call in calls if call.action in ("apply", "create")]
    kinds = sorted(manifest["kind"] for manifest in creating)
    if kinds != ["EvalRun", "ModelDeployment"]:
        return [f"expected one ModelDeployment and one EvalRun created, got {kinds}"]
    created = {manifest["kind"]: manifest for manifest in creating}
    candidate, run = created["ModelDeployment"], created["EvalRun"]
    for call in calls:
        meta = call.manifest.get("metadata", {})
        if (
            call.manifest.get("apiVersion") != "shinsa.dev/v1alpha1"
            or call.manifest.get("kind") not in MODELS
        ):
            errors.append(f"{call.caller}: not a Shinsa resource")
            continue
        if meta.get("namespace") != samples["namespace"]:
            errors.append(
                f"{call.caller}: namespace {meta.get('namespace')!r}, not the namespace parameter's"
            )
        if meta.get("name") != created[call.manifest["kind"]]["metadata"]["name"]:
            errors.append(f"{call.caller}: {call.action}s {meta.get('name')!r}, which no step created")
        if call.action == "delete" and call.manifest["kind"] != "ModelDeployment":
            errors.append(f"{call.caller}: deletes a {call.manifest['kind']}; only the candidate goes")
    spec = run["spec"]
    if spec["model"].get("deploymentRef", {}).get("name") != candidate["metadata"]["name"]:
        errors.append("the EvalRun does not evaluate the candidate ModelDeployment")
    if spec["model"].get("revision") != candidate["spec"]["model"].get("revision"):
        errors.append("the EvalRun records another revision than the candidate serves")
    promote = spec.get("promote", {})
    expected_baseline = f"{samples['registered-model']}@{promote.get('alias')}"
    if spec["gates"].get("baseline", {}).get("mlflowModel") != expected_baseline:
        errors.append(f"the baseline is not the champion the promotion moves ({expected_baseline})")
    if promote.get("registeredModel") != samples["registered-model"] or promote.get("enabled") is not True:
        errors.append(f"spec.promote does not promote to the registered model: {promote}")
    return errors


def problems(document: dict[str, Any], samples: dict[str, str] = SAMPLES) -> list[str]:
    """Everything the API server does not check about the template; empty when nothing is wrong."""
    found = reference_errors(document)
    if found:
        # Rendering follows the references; with broken ones it would only fail less clearly.
        return found
    calls = resource_calls(document, workflow_values(document, samples, VARIABLES))
    for call in calls:
        found += condition_errors(call, MODELS)
        if call.action in ("apply", "create"):
            try:
                MODELS[call.manifest["kind"]].model_validate(call.manifest)
            except ValidationError as exc:
                found.append(f"{call.caller}: {exc}")
    return found or consistency_errors(calls, samples)


@pytest.fixture(scope="module")
def argo_module() -> Path:
    return upstream.module_dir(upstream.pin_for(ARGO_MODULE))


@pytest.fixture(scope="module")
def argo_crd(kube: client.ApiClient) -> list[str]:
    # Only Argo's pin, not the session's upstream_crds fixture: that one installs LeaderWorkerSet
    # too, and test_backends (which runs after this file) first checks a cluster without it.
    return install_crds(kube, upstream.load_crds([upstream.pin_for(ARGO_MODULE)]), FIELD_MANAGER)


@pytest.fixture(scope="module")
def dry_run_apply(
    cluster: LocalCluster, argo_crd: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str, str], subprocess.CompletedProcess[str]]:
    """`kubectl apply` of a WorkflowTemplate's text as a user would, stored nowhere."""
    kubectl = tool_bin_dir() / "kubectl"
    folder = tmp_path_factory.mktemp("workflow-templates")

    def apply(text: str, namespace: str) -> subprocess.CompletedProcess[str]:
        path = folder / "template.yaml"
        path.write_text(text)
        return subprocess.run(
            [str(kubectl), "--kubeconfig", str(cluster.kubeconfig), "-n", namespace, "apply",
             "--server-side", "--dry-run=server", "--validate=strict", "-f", str(path)],
            capture_output=True, text=True, check=False, timeout=120,
        )  # fmt: skip

    return apply


def broken(old: str, new: str) -> str:
    text = TEMPLATE.read_text()
    assert text.count(old) == 1, f"{old!r} must occur once in {TEMPLATE.name} for this case"
    return text.replace(old, new)


def test_the_api_server_with_argos_crd_accepts_the_template(
    dry_run_apply: Callable[[str, str], subprocess.CompletedProcess[str]], namespace: str
) -> None:
    done = dry_run_apply(TEMPLATE.read_text(), namespace)
    assert done.returncode == 0, done.stderr
    assert "workflowtemplate.argoproj.io/shinsa-promote serverside-applied (server dry run)" in done.stdout


@pytest.mark.parametrize(
    ("old", "new", "named"),
    [
        pytest.param(
            "successCondition: status.phase == Ready",
            "successCondtion: status.phase == Ready",
            ".spec.templates[3].resource.successCondtion: field not declared in schema",
            id="misspelled-field-of-a-resource-step",
        ),
        pytest.param(
            "    - name: require-passed\n",
            "    - name: require-passed\n      retries: 3\n",
            ".spec.templates[7].retries: field not declared in schema",
            id="unknown-field-in-a-template",
        ),
        pytest.param(
            "    - name: promote\n",
            "    - name: promote\n      parallelism: two\n",
            ".spec.templates[0].parallelism: expected numeric (int or float), got string",
            id="wrong-type",
        ),
    ],
)
def test_a_template_with_a_field_argo_does_not_have_is_refused_naming_it(
    dry_run_apply: Callable[[str, str], subprocess.CompletedProcess[str]],
    namespace: str,
    old: str,
    new: str,
    named: str,
) -> None:
    done = dry_run_apply(broken(old, new), namespace)
    assert done.returncode != 0, done.stdout
    assert named in done.stderr, done.stderr


# What the server lets through, each with what the check here says about it.
SERVER_ACCEPTS = [
    pytest.param(
        "template: create-eval-run",
        "template: create-evalrun",
        "'create-evalrun' is not defined",
        id="call-of-a-missing-template",
    ),
    pytest.param(
        "depends: tear-down-candidate",
        "depends: tear-down-candiate",
        "depends on 'tear-down-candiate'",
        id="misspelled-depends",
    ),
    pytest.param(
        "depends: decision",
        "depends: decision.Succeded",
        "depends on 'decision.Succeded'",
        id="misspelled-task-result",
    ),
    pytest.param(
        'name: "{{inputs.parameters.deployment}}"\n            namespace: "{{workflow.parameters.namespace}}"'
        "\n\n    # `create`",
        'name: "{{inputs.parameters.deploymnet}}"\n            namespace: "{{workflow.parameters.namespace}}"'
        "\n\n    # `create`",
        "{{inputs.parameters.deploymnet}} names no input parameter",
        id="undeclared-input-parameter",
    ),
    pytest.param(
        "{{workflow.parameters.judge-endpoint}}",
        "{{workflow.parameters.judge-url}}",
        "{{workflow.parameters.judge-url}} names no parameter",
        id="undeclared-workflow-parameter",
    ),
    pytest.param(
        "{{tasks.decision.outputs.parameters.decision}}",
        "{{tasks.decision.outputs.parameters.verdict}}",
        "decision has no output parameter verdict",
        id="undeclared-output-parameter",
    ),
    pytest.param(
        "status.phase in (Succeeded, Failed, Incomplete)",
        "status.phse in (Succeeded, Failed, Incomplete)",
        "EvalRunStatus has no field 'phse'",
        id="condition-on-a-missing-status-field",
    ),
    pytest.param(
        "successCondition: status.phase == Ready",
        "successCondition: status.phase == Running",
        "status.phase is never 'Running'",
        id="condition-on-a-phase-never-reached",
    ),
    pytest.param(
        "              deploymentRef:\n",
        "              deploymentRefs:\n",
        "deploymentRefs",
        id="unknown-field-in-the-eval-run",
    ),
    pytest.param(
        "                  limit: 0.05\n",
        "                  limit: 5\n",
        "limit",
        id="out-of-range-value-in-the-eval-run",
    ),
    pytest.param(
        '              revision: "{{workflow.parameters.candidate-revision}}"\n            benchmarks:',
        "            benchmarks:",
        "another revision than the candidate serves",
        id="eval-run-without-the-candidates-revision",
    ),
]


@pytest.mark.parametrize(("old", "new", "reported"), SERVER_ACCEPTS)
def test_what_the_api_server_accepts_the_checks_here_report(
    dry_run_apply: Callable[[str, str], subprocess.CompletedProcess[str]],
    namespace: str,
    old: str,
    new: str,
    reported: str,
) -> None:
    text = broken(old, new)
    done = dry_run_apply(text, namespace)
    assert done.returncode == 0, f"the API server now refuses this itself: {done.stderr}"
    found = problems(load(text))
    assert any(reported in problem for problem in found), found


def test_every_reference_in_the_template_resolves_and_its_manifests_are_valid_shinsa_objects() -> None:
    assert problems(load(TEMPLATE.read_text())) == []


def test_every_benchmark_the_template_offers_makes_a_valid_eval_run() -> None:
    document = load(TEMPLATE.read_text())
    (benchmark,) = [p for p in document["spec"]["arguments"]["parameters"] if p["name"] == "benchmark"]
    assert benchmark["value"] in benchmark["enum"]
    for name in benchmark["enum"]:
        assert name in set(BenchmarkName)
        assert problems(document, {**SAMPLES, "benchmark": name}) == [], name


def test_the_created_objects_are_accepted_by_the_api_server_with_shinsas_crds(
    kube: client.ApiClient, crds: list[str], namespace: str
) -> None:
    document = load(TEMPLATE.read_text())
    calls = resource_calls(
        document, workflow_values(document, {**SAMPLES, "namespace": namespace}, VARIABLES)
    )
    created = [call.manifest for call in calls if call.action in ("apply", "create")]
    assert [m["kind"] for m in created] == ["ModelDeployment", "EvalRun"]
    for manifest in created:
        client.CustomObjectsApi(kube).create_namespaced_custom_object(
            "shinsa.dev", "v1alpha1", namespace, f"{manifest['kind'].lower()}s", manifest,
            dry_run="All", field_validation="Strict",
        )  # fmt: skip


def test_the_template_matches_argos_json_schema(argo_module: Path) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    published = json.loads((argo_module / ARGO_JSON_SCHEMA).read_text())
    schema = {
        "$schema": published["$schema"],
        "definitions": published["definitions"],
        "$ref": f"#/definitions/{WORKFLOW_TEMPLATE_DEFINITION}",
    }
    validator = jsonschema.Draft202012Validator(schema)
    document = load(TEMPLATE.read_text())
    assert [error.message for error in validator.iter_errors(document)] == []

    # The schema is really applied: a wrong type in a nested template is found.
    templates_of(document)["wait-until-ready"]["resource"]["setOwnerReference"] = "no"
    assert [error.json_path for error in validator.iter_errors(document)] == [
        "$.spec.templates[3].resource.setOwnerReference"
    ]
