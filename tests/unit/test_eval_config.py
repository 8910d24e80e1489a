"""An EvalRun spec parses into the engine's config; mistakes are reported by field, before any work."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from shinsa.api import EvalRun
from shinsa.evaluation.benchmarks import check_config
from shinsa.evaluation.benchmarks.base import Benchmark
from shinsa.evaluation.config import (
    ConfigError,
    EvalConfig,
    Sampling,
    judge_sampling,
    load_config,
    parse_config,
    redact_userinfo,
)
from shinsa.evaluation.datasets import Question
from tests.support.api_cases import EVAL

pytestmark = pytest.mark.unit


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"endpoint": "http://model:8000/v1", "servedName": "llm-jp-4-8b"},
        "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt-bench"}}],
        "judges": [{"name": "gpt", "endpoint": "https://judge.example/v1", "model": "judge-model"}],
    }
    base.update(overrides)
    return base


def checked(data: Any) -> EvalConfig:
    """What `shinsa eval run` does before any request: parse, then the benchmark classes' checks."""
    config = parse_config(data)
    check_config(config)
    return config


def test_defaults_follow_the_evalrun_contract() -> None:
    config = parse_config(spec())
    assert (config.spec.repeats, config.spec.concurrency, config.spec.max_error_rate) == (3, 16, 0.05)
    assert (config.spec.timeout_seconds, config.spec.retries, config.spec.backoff_seconds) == (600.0, 4, 1.0)
    assert config.spec.benchmarks[0].dataset.question_file == "question.jsonl"
    assert config.spec.judges[0].temperature == 0.0
    engine = config.engine
    assert (engine.output_dir, engine.checkpoint_uri, engine.mlflow_run_name) == ("eval-results", None, None)


def test_the_spec_is_the_evalrun_spec() -> None:
    # Anything the engine accepts can be applied as an EvalRun, and the other way round.
    config = parse_config(spec(sampling={"reasoningEffort": "minimal"}, timeoutSeconds=30))
    run = EvalRun.model_validate({"spec": config.spec.to_k8s()})
    assert run.spec == config.spec


def test_a_whole_manifest_or_just_its_spec() -> None:
    manifest = {
        "apiVersion": "shinsa.dev/v1alpha1",
        "kind": "EvalRun",
        "metadata": {"name": "x"},
        "spec": spec(),
        "engine": {"outputDir": "/tmp/out"},
    }
    assert parse_config(manifest) == parse_config({**spec(), "engine": {"outputDir": "/tmp/out"}})
    assert parse_config(manifest).engine.output_dir == "/tmp/out"
    with pytest.raises(ConfigError, match="kind: expected EvalRun"):
        parse_config({**manifest, "kind": "ModelDeployment"})


def test_the_resolved_config_reads_back_as_the_same_config() -> None:
    # config.json of a run is the flat shape a config file has.
    config = parse_config(
        spec(judges=[{"name": "a", "endpoint": "http://j", "model": "m", "temperature": None}])
    )
    wire = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert wire["judges"][0]["temperature"] is None and "engine" in wire and "spec" not in wire
    assert parse_config(wire) == config


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
    bench = known_benchmark(config)

    def sampling(category: str) -> Sampling:
        return bench.sampling_for(Question("q", category, ("hi",)))

    assert sampling("math") == Sampling(
        temperature=0.0, top_p=0.9, max_tokens=1024, reasoning_effort="medium"
    )
    assert sampling("writing").temperature == 0.7
    assert config.spec.rate_limit is not None and config.spec.rate_limit.tokens_per_minute == 100000


def known_benchmark(config: EvalConfig) -> Benchmark:
    from shinsa.evaluation.benchmarks import known_benchmarks

    return known_benchmarks()[config.spec.benchmarks[0].name](config.spec.benchmarks[0], config.spec.sampling)


def test_operator_only_fields_are_noted() -> None:
    gates = {"rules": [{"type": "maxErrorRate", "limit": 0.1}]}
    config = parse_config(spec(gates=gates, promote={"registeredModel": "m", "alias": "production"}))
    assert config.operator_only_fields() == ["gates", "promote"]
    assert parse_config(spec()).operator_only_fields() == []


def test_a_deployment_ref_needs_an_endpoint_to_run_locally() -> None:
    with pytest.raises(ConfigError, match=r"spec\.model\.endpoint: required to run"):
        parse_config(spec(model={"deploymentRef": {"name": "llm-jp-4-8b"}}))


def test_fields_of_the_old_engine_schema_say_where_they_went() -> None:
    with pytest.raises(ConfigError, match=r"output: .*engine option now: engine.outputDir"):
        parse_config(spec(output={"dir": "x"}))
    judge = {"name": "a", "endpoint": "http://j", "model": "m", "apiKeyEnv": "K"}
    with pytest.raises(ConfigError, match=r"judges\[0\].apiKeyEnv: .*engine.judgeApiKeyEnv"):
        parse_config(spec(judges=[judge]))


def test_engine_options_name_the_key_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("MODEL_KEY", "sk-model")
    config = parse_config(
        spec(engine={"judgeApiKeyEnv": {"gpt": "OPENAI_API_KEY"}, "modelApiKeyEnv": "MODEL_KEY"})
    )
    assert config.judge_key_env(config.spec.judges[0]) == "OPENAI_API_KEY"
    assert config.model_key_env == "MODEL_KEY"
    with pytest.raises(ConfigError, match=r"engine.judgeApiKeyEnv.nope: no judge of that name"):
        parse_config(spec(engine={"judgeApiKeyEnv": {"nope": "OPENAI_API_KEY"}}))
    with pytest.raises(ConfigError, match=r"engine.judgeApiKeyEnv.gpt: environment variable UNSET_KEY"):
        parse_config(spec(engine={"judgeApiKeyEnv": {"gpt": "UNSET_KEY"}}))


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
        ({"judges": []}, "spec.judges"),
        ({"repeats": 21}, "repeats"),
        ({"sampling": {"reasoningEffort": "extreme"}}, "sampling.reasoningEffort"),
        ({"timeoutSeconds": 0}, "timeoutSeconds"),
        (
            {"benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/d"}, "criteria": ["accuracy"]}]},
            "spec.benchmarks[].criteria",
        ),
        ({"engine": {"modelApiKeyEnv": "NOPE_NOT_SET"}}, "engine.modelApiKeyEnv"),
        ({"engine": {"outputdir": "x"}}, "engine.outputdir"),
    ],
)
def test_errors_name_the_field(change: dict[str, Any], field: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError) as raised:
        checked(spec(**change))
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
    assert config.spec.mlflow.tracking_uri == "http://mlflow.mlops.svc:5000"
    assert parse_config(spec(mlflow={"trackingUri": "file:///tmp/a@b/mlruns"})).spec.mlflow.tracking_uri
    assert redact_userinfo("https://bob:hunter2@host/v1") == "https://***@host/v1"
    assert redact_userinfo("http://host/v1/@x") == "http://host/v1/@x"


def test_rule_scored_benchmarks_need_no_judge() -> None:
    config = checked(spec(judges=[], benchmarks=[{"name": "long-context", "dataset": {"uri": "/c"}}]))
    assert config.spec.judges == []


def test_the_documented_example_evalrun_is_a_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHINSA_JUDGE_API_KEY_GPT", "sk-test")
    example = {**EVAL, "spec": {**EVAL["spec"], "model": {"endpoint": "http://m/v1", "servedName": "m"}}}
    config = checked(example)
    assert config.judge_key_env(config.spec.judges[0]) == "SHINSA_JUDGE_API_KEY_GPT"
    assert judge_sampling(config.spec.judges[0]).temperature is None


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
    config = parse_config(spec(judges=[judge]))
    assert config.judge_key_env(config.spec.judges[0]) == "SHINSA_JUDGE_API_KEY_GPT_5"


def test_duplicate_judges_are_rejected() -> None:
    judge = {"name": "a", "endpoint": "http://j", "model": "m"}
    with pytest.raises(ConfigError, match=r"spec\.judges: duplicate name 'a'"):
        parse_config(spec(judges=[judge, judge]))


def test_load_config_reports_unreadable_and_invalid_files(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_the_config_does_not_import_the_benchmarks() -> None:
    # benchmarks import the config; the config importing them back would be a cycle.
    code = (
        "import sys, shinsa.evaluation.config\n"
        "assert 'shinsa.evaluation.benchmarks' not in sys.modules, sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
