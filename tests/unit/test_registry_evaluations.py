"""The pure parts of the operator's evaluation-results adapter and the engine's MLflow tags: where
scores.json is under an S3 prefix, the search for a model version's evaluations, the decision's
tags and gates.json, the run URL, the baseline's failures that need no server."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shinsa.api import GateVerdict
from shinsa.api.eval_run import EvalRunPhase, EvalRunStatus
from shinsa.api.gates import BaselineRef, GatePolicy
from shinsa.evaluation.config import ConfigError, parse_config
from shinsa.evaluation.mlflow_log import (
    ENGINE_TAGS,
    TAG_EVALRUN_NAME,
    TAG_MODEL_VERSION,
    TAG_REGISTERED_MODEL,
    TAG_STATUS,
    run_tags,
)
from shinsa.evaluation.results import RunStatus
from shinsa.gates import evaluate_gates
from shinsa.registry.evaluations import (
    TAG_GATE_BASELINE,
    TAG_GATE_BASELINE_RUN_ID,
    TAG_GATE_DECISION,
    TAG_GATE_RULES,
    BaselineNotUsable,
    ResultsNotFound,
    ResultsStore,
    ResultsUnavailable,
    decision_tags,
    describe_baseline,
    evaluation_filter,
    fetch_results,
    gates_document,
    mlflow_run_url,
    resolve_baseline,
    rules_line,
    scores_key,
)
from tests.support.results import items_of, results_of

pytestmark = pytest.mark.unit


def config(**engine: Any) -> Any:
    return parse_config(
        {
            "model": {"endpoint": "http://model:8000/v1", "servedName": "llm-jp-4-8b"},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt-bench"}}],
            "judges": [{"name": "gpt", "endpoint": "https://judge.example/v1", "model": "judge-model"}],
            "engine": engine,
        }
    )


def decision(baseline: bool = True) -> dict[str, Any]:
    """A real decision of the gates, as the controller hands it over (its JSON)."""
    scores = {f"q{k}": [[7.0 + k % 3, 6.0 + k % 2]] for k in range(24)}
    candidate = results_of(items_of("mt-bench", scores))
    policy = GatePolicy.model_validate(
        {
            "rules": [
                {"type": "minimum", "benchmark": "mt-bench", "threshold": 5},
                {"type": "superiority", "benchmark": "mt-bench", "metric": "category/writing"},
                {"type": "maxErrorRate", "limit": 0.1},
            ]
        }
    )
    made = evaluate_gates(policy, candidate, candidate if baseline else None, draws=200)
    return made.model_dump(mode="json")


# -- the engine's tags ------------------------------------------------------------------------------


def test_the_operator_tags_the_run_through_engine_options() -> None:
    tags = {
        TAG_EVALRUN_NAME: "nightly",
        TAG_REGISTERED_MODEL: "llm-jp-4-8b",
        TAG_MODEL_VERSION: "3",
        "team": "platform",
    }
    cfg = config(mlflowTags=tags)
    assert cfg.engine.mlflow_tags == tags
    out = run_tags(cfg, results_of(items_of("mt-bench", {"q": [[7.0]]}), status=RunStatus.INCOMPLETE))
    assert out[TAG_REGISTERED_MODEL] == "llm-jp-4-8b" and out["team"] == "platform"
    assert out[TAG_STATUS] == "Incomplete" and out["shinsa.exit_code"] == "3"
    assert set(ENGINE_TAGS) <= set(out)


def test_the_engines_own_tags_win_over_engine_options() -> None:
    cfg = config(mlflowTags={TAG_STATUS: "Succeeded", "shinsa.kind": "other"})
    out = run_tags(cfg, results_of(items_of("mt-bench", {"q": [[7.0]]}), status=RunStatus.INCOMPLETE))
    assert out[TAG_STATUS] == "Incomplete" and out["shinsa.kind"] == "evaluation"


@pytest.mark.parametrize(
    ("tags", "problem"),
    [
        ({"bad*name": "x"}, "'bad*name' is not an MLflow tag name"),
        ({"mlflow.runName": "x"}, "'mlflow.runName' is not an MLflow tag name"),
        ({"x" * 251: "x"}, "is not an MLflow tag name"),
        ({"fine": "v" * 8001}, "mlflowTags.fine: longer than MLflow's 8000 characters"),
    ],
)
def test_tags_mlflow_would_refuse_are_refused_before_the_run(tags: dict[str, str], problem: str) -> None:
    with pytest.raises(ConfigError, match=r"^engine: ") as exc:
        config(mlflowTags=tags)
    assert problem in str(exc.value)


# -- where results are ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("s3://results/default/nightly/uid/results/", ("results", "default/nightly/uid/results/scores.json")),
        ("s3://results/run", ("results", "run/scores.json")),
        ("s3://results/run/scores.json", ("results", "run/scores.json")),
        ("s3://results", ("results", "scores.json")),
    ],
)
def test_scores_json_under_a_results_prefix(uri: str, expected: tuple[str, str]) -> None:
    assert scores_key(uri) == expected


def test_a_results_uri_that_is_not_s3_is_not_found_naming_it() -> None:
    with pytest.raises(ResultsNotFound, match="'/tmp/results' is not an s3://bucket/prefix URI"):
        scores_key("/tmp/results")


def test_fetching_needs_a_location() -> None:
    with pytest.raises(ValueError, match="results_uri or mlflow_run_id"):
        fetch_results(ResultsStore())


def test_only_unavailable_is_retryable() -> None:
    assert ResultsUnavailable.retryable
    assert not ResultsNotFound.retryable and not BaselineNotUsable.retryable


def test_the_search_for_a_versions_evaluations_uses_the_engines_tags() -> None:
    search = evaluation_filter("llm-jp-4-8b", "3")
    assert search == (
        "tags.`shinsa.kind` = 'evaluation' AND tags.`shinsa.status` = 'Succeeded' AND "
        "tags.`shinsa.model.registered_name` = 'llm-jp-4-8b' AND tags.`shinsa.model.version` = '3' "
        "AND attributes.status = 'FINISHED'"
    )
    assert '= "team\'s model"' in evaluation_filter("team's model", "1")
    with pytest.raises(ResultsNotFound, match="both quote characters"):
        evaluation_filter("a'b\"c", "1", "mlflowModel a'b\"c@x")


# -- the baseline, as far as no server is needed ----------------------------------------------------


def ref(**fields: Any) -> BaselineRef:
    return BaselineRef.model_validate(fields)


def test_a_missing_baseline_evalrun_is_not_found() -> None:
    with pytest.raises(ResultsNotFound, match="EvalRun team-a/champion does not exist") as exc:
        resolve_baseline(
            ref(evalRunRef={"name": "champion"}), "team-a", lambda ns, name: None, ResultsStore()
        )
    assert exc.value.source == "EvalRun team-a/champion"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (EvalRunStatus(phase=EvalRunPhase.RUNNING), "EvalRun ns/champion is Running, not Succeeded"),
        (EvalRunStatus(phase=EvalRunPhase.INCOMPLETE), "is Incomplete, not Succeeded"),
        (EvalRunStatus(), "is not started, not Succeeded"),
        (EvalRunStatus(phase=EvalRunPhase.SUCCEEDED), "records neither resultsUri nor mlflowRunId"),
    ],
)
def test_a_baseline_evalrun_must_have_succeeded(status: EvalRunStatus, message: str) -> None:
    asked: list[tuple[str, str]] = []

    def lookup(namespace: str, name: str) -> EvalRunStatus:
        asked.append((namespace, name))
        return status

    with pytest.raises(BaselineNotUsable, match=message):
        resolve_baseline(ref(evalRunRef={"name": "champion"}), "ns", lookup, ResultsStore())
    assert asked == [("ns", "champion")]


def test_an_mlflow_baseline_without_a_tracking_server_is_not_found() -> None:
    with pytest.raises(ResultsNotFound, match="mlflowModel m@champion: the operator has no MLflow"):
        resolve_baseline(ref(mlflowModel="m@champion"), "ns", lambda ns, name: None, ResultsStore())


def test_baselines_are_described_as_the_policy_names_them() -> None:
    assert describe_baseline(ref(evalRunRef={"name": "champion"})) == "EvalRun champion"
    assert describe_baseline(ref(mlflowRunId="abc123")) == "MLflow run abc123"
    assert describe_baseline(ref(mlflowModel="llm-jp-4-8b@champion")) == "mlflowModel llm-jp-4-8b@champion"


# -- the decision -----------------------------------------------------------------------------------


def test_the_decision_tags_show_every_rules_verdict_and_the_baseline() -> None:
    made = decision()
    tags = decision_tags(made, "base-run", "mlflowModel m@champion")
    assert tags[TAG_GATE_DECISION] == made["decision"]
    verdicts = [r["verdict"] for r in made["rules"]]
    assert tags[TAG_GATE_RULES] == (
        f"0 minimum mt-bench/score={verdicts[0]}; 1 superiority mt-bench/category/writing={verdicts[1]}; "
        f"2 maxErrorRate={verdicts[2]}"
    )
    assert tags[TAG_GATE_BASELINE_RUN_ID] == "base-run"
    assert tags[TAG_GATE_BASELINE] == "mlflowModel m@champion"
    assert set(decision_tags(decision(baseline=False), None)) == {TAG_GATE_DECISION, TAG_GATE_RULES}


def test_the_rules_tag_stays_within_mlflows_limit() -> None:
    made = decision()
    made["rules"] = [dict(made["rules"][0], rule=k, benchmark="b" * 60) for k in range(64)] * 3
    assert len(rules_line(made)) <= 8000 and rules_line(made).endswith("…")


def test_gates_json_is_the_decision_with_its_baseline_and_the_same_bytes_every_time() -> None:
    made = decision()
    document = gates_document(made, "base-run", "EvalRun champion")
    assert document == gates_document(made, "base-run", "EvalRun champion")
    loaded = json.loads(document)
    assert loaded["rules"] == made["rules"] and loaded["decision"] == made["decision"]
    assert loaded["baseline_run_id"] == "base-run" and loaded["baseline"] == "EvalRun champion"


def test_something_that_is_not_a_decision_is_refused() -> None:
    with pytest.raises(ValueError, match="not a gate decision"):
        decision_tags({"decision": "Maybe", "rules": []}, None)
    assert GateVerdict.PASSED.value in decision_tags({"decision": "Passed", "rules": []}, None).values()


# -- the run's page ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tracking_uri", "url"),
    [
        ("http://mlflow.mlflow.svc:5000", "http://mlflow.mlflow.svc:5000/#/experiments/4/runs/abc"),
        ("https://mlflow.example/", "https://mlflow.example/#/experiments/4/runs/abc"),
        ("https://mlflow.example/tracking/", "https://mlflow.example/tracking/#/experiments/4/runs/abc"),
        ("https://user:secret@mlflow.example", "https://mlflow.example/#/experiments/4/runs/abc"),
        ("http://[::1]:5000", "http://[::1]:5000/#/experiments/4/runs/abc"),
        ("file:///tmp/mlruns", None),
        ("sqlite:///mlflow.db", None),
        ("databricks", None),
    ],
)
def test_the_mlflow_run_url(tracking_uri: str, url: str | None) -> None:
    assert mlflow_run_url(tracking_uri, "4", "abc") == url
