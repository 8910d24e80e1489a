"""Model sources that do not answer: reported as conditions the operator retries, never a crash and
never a credential in the message."""

from __future__ import annotations

from pathlib import Path

import pytest

from shinsa.api import ModelDeployment
from shinsa.controllers.sources import SourceUnavailable, resolve_architecture, resolve_model_uri
from shinsa.devcluster.cluster import free_port
from tests.support import manifests
from tests.support.operator import operator_settings

pytestmark = pytest.mark.unit


def model_deployment(uri: str) -> ModelDeployment:
    return manifests.model_deployment(uri, name="m", gpu={"product": "H100"})


def test_an_unreachable_registry_is_retryable_and_its_credentials_stay_out_of_the_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()  # nothing listens there
    settings = operator_settings(mlflow_tracking_uri=f"http://robot:hunter2@127.0.0.1:{port}")
    # What the operator's start-up exports from its settings, here with no retry at all.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(SourceUnavailable) as caught:
        resolve_model_uri(model_deployment("models:/llm-jp-4-8b@champion"), settings)
    assert caught.value.reason == "RegistryUnavailable"
    assert f"127.0.0.1:{port}" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_an_unreachable_s3_config_is_retryable_and_names_the_object(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = operator_settings(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")
    # The AWS SDK's own configuration: credentials and retries are not operator settings.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    md = model_deployment("s3://models/custom-8b")
    with pytest.raises(SourceUnavailable) as caught:
        resolve_architecture(md, md.spec.model.uri, settings)
    assert caught.value.reason == "ConfigUnreadable"
    assert "s3://models/custom-8b/config.json" in caught.value.message


def test_a_registry_outage_leaves_a_serving_deployment_as_it_is(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The alias follower resolves again; when the registry does not answer it must not go on to
    reconcile (which would report the deployment as failing while its pods serve)."""
    from shinsa.controllers.model_deployment import resync_registry_sync

    settings = operator_settings(mlflow_tracking_uri=f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    # No API server either: a reconcile would fail writing the status, so returning quietly shows
    # that nothing was written.
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-cluster"))
    body = model_deployment("models:/chat@champion").model_dump(by_alias=True, mode="json")
    planned = {"type": "Planned", "status": "True", "reason": "Planned", "message": "TP1"}
    body["status"] = {
        "model": "s3://models/chat-v1 (registered model chat version 1)",
        "conditions": [{**planned, "lastTransitionTime": "2026-01-01T00:00:00Z"}],
    }
    resync_registry_sync(body, settings)
