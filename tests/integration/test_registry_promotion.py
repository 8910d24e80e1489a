"""Promotion against a real MLflow registry: one version and one alias move per EvalRun whatever
is retried, no move back over a newer promotion, rollback, and the history read back from MLflow."""

from __future__ import annotations

import uuid

import pytest
from mlflow import MlflowClient

from shinsa.registry.promotion import PromotionRefused, history, promote, rollback

pytestmark = pytest.mark.e2e


def _promote(tracking: str, model: str, uid: str, source: str, name: str = "team-a/cand") -> object:
    return promote(
        tracking, model=model, alias="champion", source=source, eval_run=name, eval_run_uid=uid,
        decision="Passed", run_id=None, version_tags={"shinsa.score.mt-bench": "7.5"},
    )  # fmt: skip


def test_a_retried_promotion_creates_one_version_and_moves_the_alias_once(mlflow_server: str) -> None:
    model = f"chat-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    first = _promote(mlflow_server, model, "uid-1", "hf://org/chat@r1")
    assert (first.version, first.previous, first.moved) == ("1", None, True)

    # The operator killed after creating the version and before moving the alias: the version is
    # there, the alias is not; the retry finds the version by the EvalRun's uid.
    client.create_model_version(model, "hf://org/chat@r2", tags={"shinsa.evalrun.uid": "uid-2"})
    second = _promote(mlflow_server, model, "uid-2", "hf://org/chat@r2")
    again = _promote(mlflow_server, model, "uid-2", "hf://org/chat@r2")
    assert (second.version, second.previous, second.moved) == ("2", "1", True)
    assert (again.version, again.moved) == ("2", False)
    assert len(client.search_model_versions(f"name = '{model}'")) == 2
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    version = client.get_model_version(model, "1")
    assert version.tags["shinsa.evalrun.name"] == "cand" and version.tags["shinsa.gate.decision"] == "Passed"
    assert version.tags["shinsa.score.mt-bench"] == "7.5" and version.source == "hf://org/chat@r1"
    assert [m.version for m in history(mlflow_server, model=model, alias="champion")] == ["1", "2"]


def test_an_older_candidate_never_moves_the_alias_back_over_a_newer_promotion(mlflow_server: str) -> None:
    model = f"chat-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    # Two EvalRuns finishing together: the older one's version exists, the newer one moves first.
    client.create_registered_model(model)
    client.create_model_version(model, "hf://org/chat@old", tags={"shinsa.evalrun.uid": "old"})
    _promote(mlflow_server, model, "new", "hf://org/chat@new")
    with pytest.raises(PromotionRefused, match="newer than this candidate"):
        _promote(mlflow_server, model, "old", "hf://org/chat@old")
    assert client.get_model_version_by_alias(model, "champion").version == "2"


def test_rollback_returns_to_the_previous_version_and_says_who_and_why(mlflow_server: str) -> None:
    model = f"chat-{uuid.uuid4().hex[:8]}"
    client = MlflowClient(tracking_uri=mlflow_server, registry_uri=mlflow_server)
    _promote(mlflow_server, model, "a", "hf://org/chat@a")
    _promote(mlflow_server, model, "b", "hf://org/chat@b", name="team-a/better")

    back = rollback(mlflow_server, model=model, alias="champion", to=None, by="alice", reason="latency")
    assert (back.version, back.previous) == ("1", "2")
    assert client.get_model_version_by_alias(model, "champion").version == "1"
    moves = history(mlflow_server, model=model, alias="champion")
    assert [(m.kind, m.version, m.by) for m in moves] == [
        ("promote", "1", "team-a/cand"), ("promote", "2", "team-a/better"), ("rollback", "1", "alice"),
    ]  # fmt: skip
    assert moves[-1].reason == "latency"
    # A promotion retried after the rollback does not undo it: the alias left where it was put.
    with pytest.raises(PromotionRefused, match="was moved to version 1"):
        _promote(mlflow_server, model, "b", "hf://org/chat@b", name="team-a/better")
    with pytest.raises(Exception, match="99"):
        rollback(mlflow_server, model=model, alias="champion", to="99", by="alice", reason="typo")
    assert client.get_model_version_by_alias(model, "champion").version == "1"
