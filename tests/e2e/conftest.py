"""Fixtures of the EvalRun end-to-end modules: each module names its own results bucket (`BUCKET`)
and dataset size (`QUESTIONS`), so that modules never read each other's results."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client
from mlflow import MlflowClient

from tests.support.eval_runs import create_bucket, create_evaluator_env, write_dataset

DEFAULT_QUESTIONS = 24


@pytest.fixture(scope="module")
def bucket(request: pytest.FixtureRequest, s3_server: str) -> str:
    """The module's results bucket (its `BUCKET`), on the session's S3 server."""
    return create_bucket(str(request.module.BUCKET))


@pytest.fixture(scope="module")
def dataset(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MT-Bench-style dataset of the module's `QUESTIONS` two-turn questions."""
    questions = int(getattr(request.module, "QUESTIONS", DEFAULT_QUESTIONS))
    return write_dataset(tmp_path_factory.mktemp("mt-bench"), questions)


@pytest.fixture
def evaluator_env(kube: client.ApiClient, namespace: str, bucket: str) -> None:
    """The Secret the test namespace's evaluation Jobs take their S3 credentials from."""
    create_evaluator_env(kube, namespace)


@pytest.fixture(scope="module")
def registry(mlflow_server: str) -> MlflowClient:
    """A client of the session's MLflow tracking server and model registry."""
    return MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
