"""An EvalRun spec parses into the engine's config; mistakes are reported by field, before any work."""

from __future__ import annotations

from typing import Any

import pytest

from shinsa.evaluation.config import ConfigError, Sampling, load_config, parse_config, redact_userinfo

pytestmark = pytest.mark.unit


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"endpoint": "http://model:8000/v1", "servedName": "llm-jp-4-8b"},
        "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt-bench"}}],
        "judges": [{"name": "gpt", "endpoint": "https://judge.example/v1", "model": "judge-model"}],
    }
    base.update(overrides)
    return base


def test_defaults_follow_the_evalrun_contract() -> None:
    config = parse_config(spec())
    assert (config.repeats, config.concurrency, config.max_error_rate) == (3, 16, 0.05)
    assert config.benchmarks[0].dataset.question_file == "question.jsonl"
    assert config.judges[0].temperature == 0.0


def test_a_whole_manifest_or_just_its_spec() -> None:
    manifest = {
        "apiVersion": "shinsa.dev/v1alpha1",
        "kind": "EvalRun",
        "metadata": {"name": "x"},
        "spec": spec(),
    }
    assert parse_config(manifest) == parse_config(spec())


def test_camel_case_fields_and_sampling_layers() -> None:
    config = parse_config(
        spec(
            sampling={"temperature": 0.7, "maxTokens": 1024},
            benchmarks=[
                {
                    "name": "mt-bench",
                    "dataset": {"uri": "s3://bucket/mt"},
                    "sampling": {"reasoningEffort": "medium", "topP": 0.9},
                    "categorySampling": {"math": {"temperature": 0.0}},
                }
            ],
            rateLimit={"requestsPerSecond": 5, "tokensPerMinute": 100000},
            maxErrorRate=0.1,
        )
    )
    bench = config.benchmarks[0]
    assert bench.sampling_for(config.sampling, "math") == Sampling(
        temperature=0.0, top_p=0.9, max_tokens=1024, reasoning_effort="medium"
    )
    assert bench.sampling_for(config.sampling, "writing").temperature == 0.7
    assert config.rate_limit is not None and config.rate_limit.tokens_per_minute == 100000


def test_operator_only_top_level_fields_are_tolerated() -> None:
    config = parse_config(spec(gates={"baseline": {"mlflowRunId": "abc"}}, promote=None))
    assert config.unknown_keys() == ["gates", "promote"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"repeats": 0}, "repeats"),
        ({"maxErrorRate": 1.5}, "maxErrorRate"),
        ({"model": {"endpoint": "model:8000", "servedName": "m"}}, "model.endpoint"),
        ({"model": {"endpoint": "http://m"}}, "model.servedName"),
        ({"benchmarks": []}, "benchmarks"),
        ({"benchmarks": [{"name": "mmlu", "dataset": {"uri": "/d"}}]}, "benchmarks[0].name"),
        (
            {"benchmarks": [{"name": "mt-bench", "dataset": {"uri": "ftp://x/y"}}]},
            "benchmarks[0].dataset.uri",
        ),
        (
            {"benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/d"}, "sampling": {"temprature": 1}}]},
            "benchmarks[0].sampling.temprature",
        ),
        (
            {
                "benchmarks": [
                    {"name": "mt-bench", "dataset": {"uri": "/d"}, "prompts": {"single": "{answr}"}}
                ]
            },
            "benchmarks[0].prompts.single",
        ),
        (
            {"benchmarks": [{"name": "long-context", "dataset": {"uri": "/d"}, "contextLengths": [100]}]},
            "benchmarks[0].contextLengths",
        ),
        ({"judges": []}, "judges"),
        (
            {"judges": [{"name": "a", "endpoint": "http://j", "model": "m", "apiKeyEnv": "NOPE_NOT_SET"}]},
            "judges[0].apiKeyEnv",
        ),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as raised:
        parse_config(spec(**change))
    assert field in str(raised.value)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": {"endpoint": "http://bob:hunter2@model:8000/v1", "servedName": "m"}}, "model.endpoint"),
        ({"model": {"endpoint": "bob:hunter2@model:8000", "servedName": "m"}}, "model.endpoint"),
        ({"judges": [{"name": "a", "endpoint": "https://hunter2@j/v1", "model": "m"}]}, "judges[0].endpoint"),
        ({"mlflow": {"trackingUri": "https://bob:hunter2@mlflow.example"}}, "mlflow.trackingUri"),
    ],
)
def test_credentials_in_urls_are_rejected_without_echoing_them(change: dict[str, Any], field: str) -> None:
    # URLs are logged (MLflow params, scores.json, error messages); a password in one would be too.
    with pytest.raises(ConfigError) as raised:
        parse_config(spec(**change))
    assert field in str(raised.value) and "credentials" in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_ordinary_urls_and_tracking_uris_pass() -> None:
    config = parse_config(spec(mlflow={"trackingUri": "http://mlflow.mlops.svc:5000"}))
    assert config.mlflow.tracking_uri == "http://mlflow.mlops.svc:5000"
    assert parse_config(spec(mlflow={"trackingUri": "file:///tmp/a@b/mlruns"})).mlflow.tracking_uri
    assert redact_userinfo("https://bob:hunter2@host/v1") == "https://***@host/v1"
    assert redact_userinfo("http://host/v1/@x") == "http://host/v1/@x"


def test_rule_scored_benchmarks_need_no_judge() -> None:
    config = parse_config(spec(judges=[], benchmarks=[{"name": "long-context", "dataset": {"uri": "/c"}}]))
    assert config.judges == []


def test_secret_refs_map_to_a_predictable_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    judge = {
        "name": "gpt-5",
        "endpoint": "https://j/v1",
        "model": "m",
        "apiKeySecretRef": {"name": "s", "key": "k"},
    }
    monkeypatch.delenv("SHINSA_JUDGE_API_KEY_GPT_5", raising=False)
    with pytest.raises(ConfigError, match=r"judges\[0\].apiKeySecretRef: .*SHINSA_JUDGE_API_KEY_GPT_5"):
        parse_config(spec(judges=[judge]))
    monkeypatch.setenv("SHINSA_JUDGE_API_KEY_GPT_5", "sk-test")
    assert parse_config(spec(judges=[judge])).judges[0].key_env == "SHINSA_JUDGE_API_KEY_GPT_5"


def test_duplicate_judges_are_rejected() -> None:
    judge = {"name": "a", "endpoint": "http://j", "model": "m"}
    with pytest.raises(ConfigError, match="judges: duplicate names"):
        parse_config(spec(judges=[judge, judge]))


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
