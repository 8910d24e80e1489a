"""The engine config of an EvalRun: every spec field reaches the engine unless the operator acts on it."""

from __future__ import annotations

import copy
import types
import typing
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from shinsa.api import EvalJobSpec, EvalRun, EvalRunSpec, ModelDeployment, StorageSpec
from shinsa.api.base import wire_name
from shinsa.api.model_deployment import RopeScaling
from shinsa.controllers.eval_desired import (
    JOB_ONLY,
    EvalSettings,
    ModelVersion,
    engine_config,
    secret_env,
    served_revision,
    served_version,
)
from shinsa.evaluation.config import OPERATOR_ONLY, parse_config
from shinsa.registry.evaluations import evaluation_filter
from tests.support.api_cases import with_value

pytestmark = pytest.mark.unit

# Set by engine_config from the target and the operator's settings rather than copied from the spec.
RESOLVED = {"model.endpoint", "model.servedName", "mlflow.trackingUri"}

# Every field of EvalRunSpec set to a value other than its default: the walk below fails when a
# field is added to the spec and not here, so each new field is checked to reach the engine.
FULL_SPEC: dict[str, Any] = {
    "model": {
        "deploymentRef": {"name": "llm-jp-4-8b"},
        "servedName": "llm-jp-4-8b-thinking",
        "revision": "0123abcd",
        "maxTokensParam": "max_completion_tokens",
        "extraBody": {"chat_template_kwargs": {"enable_thinking": True}},
        "ropeScaling": {"type": "yarn", "factor": 4, "originalMaxPositionEmbeddings": 32768},
    },
    "benchmarks": [
        {
            "name": "mt-bench-ja",
            "dataset": {"uri": "s3://data/mt", "questionFile": "q.jsonl", "referenceFile": "ref/a.jsonl",
                        "corpusFile": "c.txt"},
            "sampling": {"temperature": 0.5, "topP": 0.9, "maxTokens": 100, "seed": 7,
                         "reasoningEffort": "high"},
            "categorySampling": {"math": {"temperature": 0.0, "topP": 0.5, "maxTokens": 50, "seed": 3,
                                          "reasoningEffort": "low"}},
            "systemPrompt": "Be brief.",
            "prompts": {"system": "s", "single": "{question}", "singleReference": "{reference}",
                        "multi": "{answer_1}", "multiReference": "{ref_answer_1}"},
            "limit": 5,
            "referenceCategories": ["math"],
        },
        {"name": "llm-jp-instructions", "dataset": {"uri": "/d/inst"}, "criteria": ["accuracy"],
         "promptFile": "s3://data/prompts/quality_ja.yaml",
         "judging": {"sampling": {"temperature": 1.0, "topP": 0.95, "maxTokens": 1024, "seed": 1234,
                                  "reasoningEffort": "low"},
                     "ratings": "first", "rangeCheck": False, "attempts": 4, "retryRefused": True,
                     "apiErrorScore": 1, "failedGeneration": "empty", "formatting": "python"}},
        {"name": "long-context", "dataset": {"uri": "/d/corpus"}, "contextLengths": [8192], "depths": [0.5],
         "samplesPerLength": 2, "charsPerToken": 1.5},
        {"name": "rubric", "dataset": {"uri": "/d/culture/test.json"},
         "rubric": {"id": "culture-ja", "criteria": "Is it right?", "minScore": 1, "maxScore": 5,
                    "regex": "\\[\\[([1-5])\\]\\]", "reference": "required",
                    "rates": [{"name": "violation_rate", "below": 3}, {"name": "high", "atLeast": 4},
                              {"name": "low", "atMost": 2}, {"name": "top", "above": 4}],
                    "emptyAnswerScore": 1, "categoryField": "eval_aspect", "templateSyntax": "jinja2"}},
    ],
    "judges": [
        {"name": "gpt", "endpoint": "https://api.openai.com/v1", "model": "gpt-5.4-2026-03-05",
         "apiKeySecretRef": {"name": "openai", "key": "api-key"}, "temperature": None, "maxTokens": 4096,
         "topP": 0.9, "seed": 42,
         "reasoningEffort": "minimal", "maxTokensParam": "max_completion_tokens", "parseRetries": 3,
         "rateLimit": {"requestsPerSecond": 2, "tokensPerMinute": 1000},
         "extraBody": {"service_tier": "flex"}},
    ],
    "profile": "llm-jp-judge",
    "answers": "s3://data/answers/run-1",
    "sampling": {"temperature": 0.7, "topP": 0.95, "maxTokens": 2048, "seed": 1, "reasoningEffort": "medium"},
    "repeats": 5,
    "concurrency": 32,
    "rateLimit": {"requestsPerSecond": 10, "tokensPerMinute": 200000},
    "timeoutSeconds": 120,
    "retries": 2,
    "backoffSeconds": 0.5,
    "maxResponseBytes": 131072,
    "maxErrorRate": 0.1,
    "mlflow": {"trackingUri": "http://mlflow.mlops:5000", "experiment": "llm-jp-4"},
    "gates": {
        "baseline": {"evalRunRef": {"name": "production"}},
        "confidence": 0.9,
        "minPairs": 10,
        "rules": [{"type": "nonInferiority", "benchmark": "mt-bench-ja", "metric": "score", "margin": 0.1},
                  {"type": "minimum", "benchmark": "mt-bench-ja", "threshold": 1.0},
                  {"type": "maxErrorRate", "limit": 0.5}],
    },
    "promote": {"registeredModel": "llm-jp-4-8b", "alias": "production", "enabled": True},
    "job": {"image": "registry.example/shinsa:0.1.0",
            "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "2Gi"}},
            "serviceAccountName": "evaluator", "nodeSelector": {"pool": "batch"},
            "tolerations": [{"key": "batch", "operator": "Equal", "value": "true", "effect": "NoSchedule",
                             "tolerationSeconds": 60}],
            "queueName": "evals", "activeDeadlineSeconds": 3600, "backoffLimit": 1},
    "storage": {"bucket": "team-evals", "prefix": "nightly"},
}  # fmt: skip
# Fields exclusive of ones FULL_SPEC sets, covered by variants of it: (path, value).
VARIANTS: list[tuple[str, Any]] = [
    ("gates.baseline", {"mlflowRunId": "abc123"}),
    ("gates.baseline", {"mlflowModel": "llm-jp-4-8b@champion"}),
    ("model", {"endpoint": "https://api.example/v1", "servedName": "gpt-4o",
               "apiKeySecretRef": {"name": "example", "key": "key"}}),
]  # fmt: skip

SETTINGS = EvalSettings(tracking_uri="http://mlflow.shinsa:5000", results_bucket="runs")
ENDPOINT = "http://llm-jp-4-8b.models.svc:8000/v1"


def full_run(spec: dict[str, Any] | None = None) -> EvalRun:
    return EvalRun.model_validate(
        {
            "metadata": {"name": "candidate", "namespace": "models", "uid": "5c8a"},
            "spec": copy.deepcopy(spec or FULL_SPEC),
        }
    )


def _models_in(annotation: Any) -> Iterator[tuple[str, type[BaseModel]]]:
    """The models a field's type holds, with the path suffix that reaches them (`[]`, `{}`)."""
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield "", annotation
    elif origin in (typing.Union, types.UnionType):
        for member in typing.get_args(annotation):
            yield from _models_in(member)
    elif origin is list:
        yield from (("[]" + s, m) for s, m in _models_in(typing.get_args(annotation)[0]))
    elif origin is dict:
        yield from (("{}" + s, m) for s, m in _models_in(typing.get_args(annotation)[1]))
    elif origin is typing.Annotated:
        yield from _models_in(typing.get_args(annotation)[0])


def schema_paths(model: type[BaseModel], prefix: str = "") -> Iterator[str]:
    """Every field of `model`, recursively, as wire paths (`benchmarks[].dataset.uri`)."""
    for attribute, field in model.model_fields.items():
        path = f"{prefix}{wire_name(attribute)}"
        yield path
        for suffix, sub in _models_in(field.annotation):
            yield from schema_paths(sub, f"{path}{suffix}.")


def value_paths(value: Any, prefix: str = "") -> Iterator[str]:
    """The paths of `value` (a wire dict) down to the schema's fields: free-form maps are leaves."""
    if isinstance(value, dict):
        for key, sub in value.items():
            path = f"{prefix}{key}"
            yield path
            if path.endswith("categorySampling"):
                for entry in sub.values():
                    yield from value_paths(entry, f"{path}{{}}.")
            elif not path.endswith("extraBody"):
                yield from value_paths(sub, f"{path}.")
    elif isinstance(value, list):
        for item in value:
            yield from value_paths(item, prefix.rstrip(".") + "[].")


def get(wire: Any, path: str) -> list[Any]:
    """The values at `path` in `wire` (several below a list)."""
    values = [wire]
    for part in path.split("."):
        key, many = part.removesuffix("[]").removesuffix("{}"), part.endswith(("[]", "{}"))
        values = [v[key] for v in values if isinstance(v, dict) and key in v]
        if many:
            values = [x for v in values for x in (v.values() if isinstance(v, dict) else v)]
    return values


def operator_only(path: str) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[]") for p in OPERATOR_ONLY)


def job_only(path: str) -> bool:
    return path.split(".")[0] in JOB_ONLY


def test_the_full_spec_sets_every_field() -> None:
    covered = set(value_paths(FULL_SPEC))
    for path, value in VARIANTS:
        covered |= set(value_paths(with_value(FULL_SPEC, path, value)))
        full_run(with_value(FULL_SPEC, path, value))  # each variant is a valid spec
    missing = set(schema_paths(EvalRunSpec)) - covered
    assert not missing, (
        f"set these in FULL_SPEC (and decide whether the engine needs them): {sorted(missing)}"
    )
    assert set(OPERATOR_ONLY) <= set(schema_paths(EvalRunSpec))


@pytest.mark.parametrize("variant", [None, *VARIANTS], ids=["full", *(p for p, _ in VARIANTS)])
def test_every_spec_field_reaches_the_engine_or_is_declared_operator_only(
    variant: tuple[str, Any] | None,
) -> None:
    run = full_run(with_value(FULL_SPEC, *variant) if variant else FULL_SPEC)
    spec_wire = run.spec.to_k8s()
    engine_wire = engine_config(run, ENDPOINT, SETTINGS).spec.to_k8s()
    paths = set(schema_paths(EvalRunSpec))
    leaves = {p for p in paths if not any(q.startswith((f"{p}.", f"{p}[].", f"{p}{{}}.")) for q in paths)}
    for path in sorted(leaves):
        if job_only(path):
            continue  # defaulted again by the engine's spec model: see the test below
        if operator_only(path):
            assert get(engine_wire, path) == [], f"{path} is operator-only but reached the engine"
        elif path not in RESOLVED:
            assert get(engine_wire, path) == get(spec_wire, path), f"{path} did not reach the engine"


def test_an_endpoint_target_keeps_its_key_ref_and_name() -> None:
    spec = with_value(FULL_SPEC, "model", {"endpoint": "https://api.example/v1", "servedName": "gpt-4o",
                                           "apiKeySecretRef": {"name": "example", "key": "key"}})  # fmt: skip
    run = full_run(spec)
    config = engine_config(run, "https://api.example/v1", SETTINGS)
    assert config.spec.model.api_key_secret_ref == run.spec.model.api_key_secret_ref
    assert config.served_name == "gpt-4o"
    assert config.model_key_env in secret_env(run)


def test_what_the_operator_fills_in() -> None:
    config = engine_config(full_run(with_value(FULL_SPEC, "model.servedName", ...)), ENDPOINT, SETTINGS,
                           served_name="llm-jp-4-8b-thinking")  # fmt: skip
    assert config.endpoint == ENDPOINT
    assert config.served_name == "llm-jp-4-8b-thinking"
    assert config.spec.mlflow.tracking_uri == "http://mlflow.mlops:5000"  # the spec's own wins
    assert config.engine.output_dir == "/var/run/shinsa/results"
    assert config.engine.checkpoint_uri == "s3://team-evals/nightly/models/candidate/5c8a/checkpoint"
    assert config.engine.results_uri == "s3://team-evals/nightly/models/candidate/5c8a/results"
    assert config.engine.mlflow_run_name == "candidate"

    bucket = engine_config(full_run(with_value(FULL_SPEC, "storage", {})), ENDPOINT, SETTINGS)
    assert bucket.engine.results_uri == "s3://runs/evalruns/models/candidate/5c8a/results"

    bare = with_value(with_value(FULL_SPEC, "mlflow", {}), "storage", {})
    defaulted = engine_config(
        full_run(bare), ENDPOINT, EvalSettings(tracking_uri="http://mlflow.shinsa:5000")
    )
    assert defaulted.spec.mlflow.tracking_uri == "http://mlflow.shinsa:5000"
    assert defaulted.engine.checkpoint_uri is None  # under the output directory
    assert defaulted.engine.results_uri is None


def test_the_deployments_rope_scaling_reaches_the_engine_unless_the_spec_states_one() -> None:
    yarn = RopeScaling(type="yarn", factor=4)
    run = full_run(with_value(FULL_SPEC, "model.ropeScaling", ...))
    assert engine_config(run, ENDPOINT, SETTINGS, rope_scaling=yarn).spec.model.rope_scaling == yarn
    assert engine_config(run, ENDPOINT, SETTINGS).spec.model.rope_scaling is None
    stated = engine_config(full_run(), ENDPOINT, SETTINGS, rope_scaling=RopeScaling(type="yarn", factor=2))
    assert stated.spec.model.rope_scaling == RopeScaling(
        type="yarn", factor=4, original_max_position_embeddings=32768
    )


def test_the_job_and_storage_settings_stay_with_the_operator() -> None:
    config = engine_config(full_run(), ENDPOINT, SETTINGS)
    assert config.spec.job == EvalJobSpec()
    assert config.spec.storage == StorageSpec()


def test_spec_storage_overrides_the_operators_bucket() -> None:
    run = full_run(with_value(FULL_SPEC, "storage", {"bucket": "team-evals", "prefix": "nightly/ja"}))
    config = engine_config(run, ENDPOINT, SETTINGS)
    assert config.engine.results_uri == "s3://team-evals/nightly/ja/models/candidate/5c8a/results"


def test_a_deployment_without_a_served_name_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"spec\.model\.servedName"):
        engine_config(full_run(with_value(FULL_SPEC, "model.servedName", ...)), ENDPOINT, SETTINGS)


def test_judge_keys_come_from_the_variables_the_job_sets() -> None:
    run = full_run()
    config = engine_config(run, ENDPOINT, SETTINGS)
    env = secret_env(run)
    assert env == {"SHINSA_JUDGE_API_KEY_GPT": run.spec.judges[0].api_key_secret_ref}
    assert config.judge_key_env(config.spec.judges[0]) in env
    assert config.model_key_env is None


def test_the_job_reads_back_the_config_it_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the operator writes (the config as JSON) is what `shinsa eval run --config` parses.
    monkeypatch.setenv("SHINSA_JUDGE_API_KEY_GPT", "sk-test")
    config = engine_config(full_run(), ENDPOINT, SETTINGS)
    assert parse_config(config.model_dump(mode="json", by_alias=True, exclude_none=True)) == config
    assert config.operator_only_fields() == []


def deployment(uri: str, registered: dict[str, str] | None = None) -> ModelDeployment:
    return ModelDeployment.model_validate(
        {
            "metadata": {"name": "llm-jp-4-8b", "namespace": "models"},
            "spec": {"model": {"uri": uri}, "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}}},
            "status": {"registeredModel": registered},
        }
    )


def test_the_mlflow_run_is_tagged_with_the_eval_run_and_the_model_version_it_evaluated() -> None:
    # The status as the ModelDeployment controller writes an alias it resolved.
    resolved = {"name": "llm-jp-4-8b", "version": "7", "source": "hf://llm-jp/llm-jp-4-8b"}
    version = served_version(deployment("models:/llm-jp-4-8b@champion", resolved))
    assert version == ModelVersion("llm-jp-4-8b", "7")
    tags = engine_config(full_run(), ENDPOINT, SETTINGS, version=version).engine.mlflow_tags
    assert tags == {
        "shinsa.evalrun.namespace": "models",
        "shinsa.evalrun.name": "candidate",
        "shinsa.evalrun.uid": "5c8a",
        "shinsa.model.registered_name": "llm-jp-4-8b",
        "shinsa.model.version": "7",
    }
    # They are the tags a later run's `baseline.mlflowModel: llm-jp-4-8b@champion` searches for.
    search = evaluation_filter("llm-jp-4-8b", "7")
    assert all(f"tags.`{key}` = '{tags[key]}'" in search
               for key in ("shinsa.model.registered_name", "shinsa.model.version"))  # fmt: skip


def test_the_revision_a_deployment_serves_is_evaluated_and_logged_unless_the_spec_names_one() -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    # The spec's own revision wins; without one, the deployment's is what was evaluated.
    assert engine_config(full_run(), ENDPOINT, SETTINGS, revision=commit).spec.model.revision == "0123abcd"
    unpinned = copy.deepcopy(FULL_SPEC)
    del unpinned["model"]["revision"]
    assert (
        engine_config(full_run(unpinned), ENDPOINT, SETTINGS, revision=commit).spec.model.revision == commit
    )
    promoted = deployment(
        "models:/llm-jp-4-8b@champion",
        {"name": "llm-jp-4-8b", "version": "7", "source": "hf://a/b", "revision": commit},
    )
    assert served_revision(promoted) == commit
    assert served_revision(deployment("hf://llm-jp/llm-jp-4-8b")) is None


def test_the_version_is_the_one_the_deployment_resolved_and_serves() -> None:
    assert served_version(deployment("models:/llm-jp-4-8b@champion")) is None  # not resolved yet
    assert served_version(deployment("hf://llm-jp/llm-jp-4-8b")) is None
    tags = engine_config(full_run(), ENDPOINT, SETTINGS).engine.mlflow_tags
    assert set(tags) == {"shinsa.evalrun.namespace", "shinsa.evalrun.name", "shinsa.evalrun.uid"}
