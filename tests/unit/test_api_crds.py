"""crds/ and docs/api.md match the models, and the generated schemas are structural."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from shinsa.api import EvalRun, ModelDeployment
from shinsa.api.crd import RESOURCES, crd_file_name, crd_manifests, render_crd_yaml
from shinsa.api.docs import render_api_markdown
from shinsa.api.resource import K8sResource
from shinsa.cli import app

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `make crds` (shinsa crds --output-dir crds --api-doc docs/api.md) and commit the result"

# What apiextensions.k8s.io/v1 JSONSchemaProps can hold; anything else is a generator bug.
ALLOWED_KEYS = {
    "type", "format", "description", "enum", "default", "minimum", "exclusiveMinimum", "maximum",
    "exclusiveMaximum", "minLength", "maxLength", "pattern", "minItems", "maxItems", "minProperties",
    "maxProperties", "required", "properties", "items", "additionalProperties", "nullable",
    "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations", "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys", "x-kubernetes-map-type", "x-kubernetes-int-or-string",
    "x-kubernetes-embedded-resource",
}  # fmt: skip
PYTHON_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "object": dict,
    "array": list,
}


def _schema(resource: type[K8sResource]) -> dict[str, Any]:
    crd = next(c for c in crd_manifests() if c["spec"]["names"]["kind"] == resource.__name__)
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{}}")


def test_crds_directory_matches_the_models() -> None:
    expected = {crd_file_name(crd): render_crd_yaml(crd) for crd in crd_manifests()}
    assert set(expected) == {
        "modeldeployments.shinsa.dev.yaml", "evalruns.shinsa.dev.yaml", "promotionpolicies.shinsa.dev.yaml"
    }  # fmt: skip
    on_disk = {p.name for p in (ROOT / "crds").glob("*.shinsa.dev.yaml")}
    assert on_disk == set(expected), f"crds/ has other CRD files than the models define: {REGENERATE}"
    for name, text in expected.items():
        assert (ROOT / "crds" / name).read_text(encoding="utf-8") == text, (
            f"crds/{name} is out of date with operator/shinsa/api: {REGENERATE}"
        )


def test_api_reference_matches_the_models() -> None:
    doc = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert doc == render_api_markdown(), f"docs/api.md is out of date with operator/shinsa/api: {REGENERATE}"


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.__name__)
def test_schema_is_structural(resource: type[K8sResource]) -> None:
    schema = _schema(resource)
    assert "$ref" not in str(schema) and "$defs" not in str(schema)
    for path, node in _nodes(schema):
        assert set(node) <= ALLOWED_KEYS, f"{path}: {set(node) - ALLOWED_KEYS}"
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        for bound in ("exclusiveMinimum", "exclusiveMaximum"):
            assert node.get(bound) in (None, True), f"{path}: {bound} must be a draft-4 boolean"
        assert set(node.get("required", [])) <= set(node.get("properties", {})), path
        if node.get("x-kubernetes-list-type") == "map":
            assert set(node["x-kubernetes-list-map-keys"]) <= set(node["items"].get("required", [])), path
        expected_type = PYTHON_TYPES.get(node.get("type", ""), object)
        for value in [node["default"]] if "default" in node else []:
            assert isinstance(value, expected_type), f"{path}: default {value!r}"
        for value in node.get("enum", []):
            assert isinstance(value, expected_type), f"{path}: enum value {value!r}"


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.__name__)
def test_every_field_is_documented_for_kubectl_explain(resource: type[K8sResource]) -> None:
    schema = _schema(resource)
    for path, node in _nodes(schema["properties"]["spec"], ".spec"):
        assert node.get("description") or path.endswith(("[]", "{}")), f"{path} has no description"
    for path, node in _nodes(schema["properties"]["status"], ".status"):
        assert node.get("description") or path.endswith(("[]", "{}")), f"{path} has no description"


def _resolve_path(schema: dict[str, Any], path: str) -> dict[str, Any] | None:
    node: dict[str, Any] | None = schema
    for part in path.strip(".").split("."):
        if node is None:
            return None
        # A map's keys (status.scores.<benchmark>) are any name; its values have one schema.
        properties = node.get("properties")
        node = properties.get(part) if properties is not None else node.get("additionalProperties")
    return node


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.__name__)
def test_cel_rules_reference_fields_that_exist(resource: type[K8sResource]) -> None:
    schema = _schema(resource)
    schema = copy.deepcopy(schema)
    # The API server gives CEL at the root metadata.name and metadata.generateName.
    schema["properties"]["metadata"]["properties"] = {"name": {"type": "string"}}
    rules = 0
    for path, node in _nodes(schema):
        for rule in node.get("x-kubernetes-validations", []):
            rules += 1
            assert rule["message"] and len(rule["message"]) < 200
            assert rule["rule"].count("(") == rule["rule"].count(")"), rule["rule"]
            # Field references, not method calls such as `self.matches(...)`.
            for ref in re.findall(r"self((?:\.[A-Za-z][A-Za-z0-9]*)+)(?![A-Za-z0-9(])", rule["rule"]):
                assert _resolve_path(node, ref) is not None or _resolve_path(node, ref.rsplit(".", 1)[0]), (
                    f"{path}: rule {rule['rule']!r} names {ref}, which the schema lacks"
                )
            if "fieldPath" in rule:
                assert _resolve_path(node, rule["fieldPath"]) is not None, f"{path}: {rule['fieldPath']}"
    assert rules >= 3


def _apply_defaults(value: Any, schema: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: fill missing fields, then descend."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
        for name, sub in schema["properties"].items():
            if name in value:
                _apply_defaults(value[name], sub)
    elif isinstance(value, list) and "items" in schema:
        for item in value:
            _apply_defaults(item, schema["items"])
    return value


@pytest.mark.parametrize(
    ("resource", "minimal"),
    [
        (ModelDeployment, {"spec": {"model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
                                    "resources": {"gpu": {"memoryGiB": 80}}}}),
        (EvalRun, {"spec": {"model": {"deploymentRef": {"name": "m"}},
                            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/d"}}],
                            "judges": [{"name": "j", "endpoint": "http://j/v1", "model": "judge"}]}}),
    ],
    ids=["ModelDeployment", "EvalRun"],
)  # fmt: skip
def test_server_defaults_equal_python_defaults(resource: type[K8sResource], minimal: dict[str, Any]) -> None:
    server_defaulted = _apply_defaults(copy.deepcopy(minimal), _schema(resource))
    assert server_defaulted != minimal, "the CRD should default something"
    from_server = resource.model_validate(server_defaulted)
    assert from_server == resource.model_validate(minimal)
    # Every default the CRD stored is a value Python would have chosen, and vice versa for the spec.
    python_spec = resource.model_validate(minimal).to_k8s()["spec"]
    for key, value in server_defaulted["spec"].items():
        assert python_spec[key] == value or isinstance(value, dict), key


@pytest.mark.parametrize("resource", RESOURCES, ids=lambda r: r.__name__)
def test_printer_columns_point_at_schema_fields(resource: type[K8sResource]) -> None:
    schema = _schema(resource)
    for column in resource.printer_columns:
        if column.json_path.startswith(".metadata."):
            continue
        path = column.json_path.split("[", 1)[0]
        assert _resolve_path(schema, path) is not None, column


def test_crd_names_and_subresources() -> None:
    by_kind = {c["spec"]["names"]["kind"]: c for c in crd_manifests()}
    md, er = by_kind["ModelDeployment"], by_kind["EvalRun"]
    assert md["metadata"]["name"] == "modeldeployments.shinsa.dev"
    assert md["spec"]["names"]["shortNames"] == ["md"]
    assert er["spec"]["names"]["shortNames"] == ["er"]
    for crd in (md, er):
        (version,) = crd["spec"]["versions"]
        assert crd["spec"]["scope"] == "Namespaced"
        assert version["name"] == "v1alpha1" and version["served"] and version["storage"]
        assert version["subresources"] == {"status": {}}
    columns = [
        c["name"] for c in md["spec"]["versions"][0]["additionalPrinterColumns"] if not c.get("priority")
    ]
    assert columns == ["Model", "GPUs", "Layout", "Ready", "Endpoint", "Age"]
    columns = [c["name"] for c in er["spec"]["versions"][0]["additionalPrinterColumns"]]
    assert columns == ["Model", "Phase", "JA", "EN", "Decision", "Age"]
    plan = md["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"][
        "plan"
    ]
    assert plan == {**plan, "type": "object", "x-kubernetes-preserve-unknown-fields": True}


def test_free_form_and_nullable_fields() -> None:
    spec = _schema(EvalRun)["properties"]["spec"]
    model = spec["properties"]["model"]["properties"]
    assert model["extraBody"] == {
        **model["extraBody"],
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    assert "additionalProperties" not in model["extraBody"]
    judge = spec["properties"]["judges"]["items"]["properties"]
    # null means "send none": kept by the server instead of pruned and defaulted.
    assert judge["temperature"]["nullable"] is True and judge["temperature"]["default"] == 0
    assert "nullable" not in judge["reasoningEffort"]  # unset is the default there
    for path, node in _nodes(_schema(EvalRun)):
        if node.get("nullable"):
            assert "default" in node, f"{path}: nullable only where null differs from the default"


def test_cli_prints_all_crds(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["crds"])
    assert result.exit_code == 0, result.output
    assert list(yaml.safe_load_all(result.stdout)) == crd_manifests()

    result = runner.invoke(
        app, ["crds", "--output-dir", str(tmp_path / "out"), "--api-doc", str(tmp_path / "api.md")]
    )
    assert result.exit_code == 0, result.output
    for crd in crd_manifests():
        assert yaml.safe_load((tmp_path / "out" / crd_file_name(crd)).read_text()) == crd
    assert (tmp_path / "api.md").read_text() == render_api_markdown()
