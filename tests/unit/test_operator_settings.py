"""The operator's settings: read from the environment in one place, refused with the variable's
name, and documented as read."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from shinsa.controllers.settings import DEFAULT_EVALUATOR_IMAGE, OperatorSettings, SettingsError

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = OperatorSettings.from_env({"PATH": "/usr/bin", "MLFLOW_TRACKING_URI": ""})
    assert settings == OperatorSettings()
    assert settings.mlflow_tracking_uri is None and settings.s3_endpoint_url is None
    assert settings.registry_resync_s == 60 and settings.config_reader_image == "busybox:1.37.0"
    assert settings.evaluator_image == DEFAULT_EVALUATOR_IMAGE


def test_every_variable_is_read_into_its_field() -> None:
    settings = OperatorSettings.from_env(
        {
            "MLFLOW_TRACKING_URI": "http://mlflow.mlops:5000",
            "AWS_ENDPOINT_URL": "https://s3.internal",
            "SHINSA_RESULTS_BUCKET": "eval-results",
            "SHINSA_EVALUATOR_IMAGE": "registry.internal/shinsa-operator@sha256:" + "a" * 64,
            "SHINSA_EVALUATOR_SERVICE_ACCOUNT": "evaluator",
            "SHINSA_CONFIG_READER_IMAGE": "mirror.internal/busybox:1.37.0",
            "SHINSA_REGISTRY_RESYNC_SECONDS": "15",
            "SHINSA_EVALRUN_RESYNC_SECONDS": "5.5",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
        }
    )
    assert settings.mlflow_tracking_uri == "http://mlflow.mlops:5000"
    assert settings.s3_endpoint_url == "https://s3.internal"
    assert settings.results_bucket == "eval-results"
    assert settings.evaluator_service_account == "evaluator"
    assert (settings.registry_resync_s, settings.evalrun_resync_s) == (15, 5.5)
    assert settings.mlflow_client_environment() == {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    }


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHINSA_REGISTRY_RESYNC_SECONDS", "soon"),
        ("SHINSA_REGISTRY_RESYNC_SECONDS", "0"),
        ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "-1"),
        ("MLFLOW_HTTP_REQUEST_TIMEOUT", "2.5"),
        ("MLFLOW_TRACKING_URI", "mlflow.mlops:5000"),
        ("AWS_ENDPOINT_URL", "s3.internal"),
        ("SHINSA_RESULTS_BUCKET", "Eval_Results"),
        ("SHINSA_EVALUATOR_IMAGE", "shinsa operator"),
    ],
)
def test_an_unusable_value_is_refused_naming_the_variable(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        OperatorSettings.from_env({variable: value})


def test_a_refused_uri_is_not_echoed_since_it_may_hold_credentials() -> None:
    with pytest.raises(SettingsError) as caught:
        OperatorSettings.from_env({"MLFLOW_TRACKING_URI": "robot:hunter2@mlflow"})
    assert "hunter2" not in str(caught.value)


def test_settings_are_frozen() -> None:
    with pytest.raises(ValidationError):
        OperatorSettings().registry_resync_s = 1  # type: ignore[misc]


def test_the_default_evaluator_image_is_the_charts_app_version() -> None:
    chart = yaml.safe_load((REPO / "charts" / "shinsa" / "Chart.yaml").read_text())
    values = yaml.safe_load((REPO / "charts" / "shinsa" / "values.yaml").read_text())
    assert f"{values['image']['repository']}:{chart['appVersion']}" == DEFAULT_EVALUATOR_IMAGE


def test_docs_install_lists_every_variable_the_operator_reads() -> None:
    documented = (REPO / "docs" / "install.md").read_text()
    for field in OperatorSettings.model_fields.values():
        assert f"`{field.alias}`" in documented, field.alias


def test_shinsa_operator_run_stops_before_starting_on_an_unusable_variable() -> None:
    from typer.testing import CliRunner

    from shinsa.cli import app

    done = CliRunner().invoke(
        app, ["operator", "run", "--metrics-port", "0"], env={"SHINSA_REGISTRY_RESYNC_SECONDS": "soon"}
    )
    assert done.exit_code == 2, done.output
    assert "SHINSA_REGISTRY_RESYNC_SECONDS" in done.output
