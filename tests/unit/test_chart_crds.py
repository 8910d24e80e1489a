"""The Helm chart ships the generated CRDs unchanged, and its versions and defaults agree with the
package. (Rendering, installing and the chart's RBAC are tested against a real cluster in
tests/e2e/test_chart.py.)"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "shinsa"
COPY = "rm -f charts/shinsa/crds/*.yaml && cp crds/*.yaml charts/shinsa/crds/ (part of `make crds`)"


def test_chart_crds_are_exactly_the_generated_crds() -> None:
    generated = {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml"))}
    shipped = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert generated, "crds/ holds no CRDs"
    assert sorted(shipped) == sorted(generated), f"charts/shinsa/crds/ lists other files than crds/: {COPY}"
    stale = [name for name in generated if shipped[name] != generated[name]]
    assert not stale, f"charts/shinsa/crds/{', '.join(stale)} differ from crds/: {COPY}"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["apiVersion"] == "v2"
    # image.tag defaults to appVersion: the image built from this checkout carries this version.
    assert chart["appVersion"] == project["version"]


def test_default_values_satisfy_the_schema_and_a_bad_value_does_not() -> None:
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    validator = jsonschema.Draft7Validator(schema)
    validator.check_schema(schema)
    assert [e.message for e in validator.iter_errors(values)] == []

    errors = list(validator.iter_errors({**values, "replicaCount": "three", "replicas": 2}))
    paths = {"/".join(map(str, e.absolute_path)) or e.message for e in errors}
    assert "replicaCount" in paths
    assert any("replicas" in p for p in paths)
