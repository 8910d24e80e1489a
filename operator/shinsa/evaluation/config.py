"""The evaluation engine's view of an EvalRun spec.

The engine parses the spec itself instead of importing the CRD models from `shinsa.api`, so that it can
run on a laptop from a plain YAML file and stays usable while the CRD evolves. Only the fields the
engine acts on are modelled; unknown top-level keys (gates, baseline, promotion, ...) belong to the
operator and are tolerated, while unknown keys inside the engine's own sections are typos and rejected.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel


class ConfigError(Exception):
    """The configuration cannot be run; the message names the offending field."""


class _Strict(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


ReasoningEffort = Literal["minimal", "low", "medium", "high"]


class Sampling(_Strict):
    """Sampling parameters; unset fields inherit from the enclosing level and are not sent when unset."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1)
    seed: int | None = None
    reasoning_effort: ReasoningEffort | None = None

    def merged(self, override: Sampling | None) -> Sampling:
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class RateLimit(_Strict):
    requests_per_second: float | None = Field(default=None, gt=0)
    tokens_per_minute: float | None = Field(default=None, gt=0)


_USERINFO = re.compile(r"^([^/@]*//)?[^/@]*@")


def redact_userinfo(value: str) -> str:
    """`https://user:secret@host/x` -> `https://***@host/x`, for messages that echo a URL."""
    return _USERINFO.sub(lambda m: (m.group(1) or "") + "***@", value, count=1)


def _no_credentials(value: str, instead: str) -> str:
    # URLs are logged (MLflow params, scores.json, error messages), so credentials must not be in them.
    if _USERINFO.match(value):
        raise ValueError(f"must not embed credentials (user:password@); they would be logged. {instead}")
    return value


def _check_url(value: str) -> str:
    _no_credentials(value, "Use apiKeyEnv or apiKeySecretRef.")
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"must be an http(s) URL, got {redact_userinfo(value)!r}")
    return value


class DeploymentRef(_Strict):
    name: str
    namespace: str | None = None


class ModelTarget(_Strict):
    """The model under evaluation: an OpenAI-compatible endpoint and the name it serves the model under."""

    endpoint: str | None = None
    served_name: str
    api_key_env: str | None = None
    revision: str | None = None
    deployment_ref: DeploymentRef | None = None
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, v: str | None) -> str | None:
        return None if v is None else _check_url(v)

    @model_validator(mode="after")
    def _endpoint_or_deployment(self) -> ModelTarget:
        if self.endpoint is None and self.deployment_ref is None:
            raise ValueError("either endpoint or deploymentRef is required")
        return self


class SecretKeyRef(_Strict):
    name: str
    key: str


def judge_key_env(judge_name: str) -> str:
    """The environment variable the EvalRun Job exposes a judge's `apiKeySecretRef` as."""
    return "SHINSA_JUDGE_API_KEY_" + "".join(c if c.isalnum() else "_" for c in judge_name.upper())


class JudgeConfig(_Strict):
    name: str = Field(min_length=1)
    endpoint: str
    model: str
    api_key_env: str | None = None
    # In-cluster the Secret is mounted as the variable judge_key_env(name); apiKeyEnv wins when set.
    api_key_secret_ref: SecretKeyRef | None = None
    # Zero keeps judging reproducible; reasoning judges that reject a temperature take `temperature: null`.
    temperature: float | None = 0.0
    max_tokens: int | None = 2048
    reasoning_effort: ReasoningEffort | None = None
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    parse_retries: int = Field(default=2, ge=0, le=10)
    rate_limit: RateLimit | None = None
    extra_body: dict[str, Any] = Field(default_factory=dict)

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, v: str) -> str:
        return _check_url(v)

    @property
    def key_env(self) -> str | None:
        if self.api_key_env:
            return self.api_key_env
        return judge_key_env(self.name) if self.api_key_secret_ref else None

    def sampling(self) -> Sampling:
        return Sampling(
            temperature=self.temperature, max_tokens=self.max_tokens, reasoning_effort=self.reasoning_effort
        )


class DatasetSource(_Strict):
    """Where a benchmark's files are: a local path, s3://bucket/prefix or pvc://claim/path."""

    uri: str
    question_file: str = "question.jsonl"  # a *.json file is read in the llm-jp-judge layout
    # Relative to the dataset root; when unset the first *.jsonl under reference_answer/ is used.
    reference_file: str | None = None
    corpus_file: str = "corpus.txt"

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, v: str) -> str:
        scheme = urlparse(v).scheme
        if scheme not in ("", "file", "s3", "pvc"):
            raise ValueError(f"unsupported scheme {scheme!r}; use a local path, s3:// or pvc://")
        return v


class JudgePrompts(_Strict):
    """Per-benchmark overrides of the judge prompt templates (Python str.format fields)."""

    system: str | None = None
    single: str | None = None
    single_reference: str | None = None
    multi: str | None = None
    multi_reference: str | None = None


class BenchmarkConfig(_Strict):
    name: str
    dataset: DatasetSource
    sampling: Sampling = Field(default_factory=Sampling)
    category_sampling: dict[str, Sampling] = Field(default_factory=dict)
    system_prompt: str | None = None
    prompts: JudgePrompts = Field(default_factory=JudgePrompts)
    # Benchmark-specific knobs; each benchmark documents and validates its own.
    reference_categories: list[str] | None = None
    criteria: list[str] | None = None
    context_lengths: list[int] | None = None
    depths: list[float] | None = None
    samples_per_length: int | None = Field(default=None, ge=1)
    chars_per_token: float | None = Field(default=None, gt=0)
    limit: int | None = Field(default=None, ge=1)

    def sampling_for(self, base: Sampling, category: str) -> Sampling:
        return base.merged(self.sampling).merged(self.category_sampling.get(category))


class CheckpointConfig(_Strict):
    uri: str | None = None


class OutputConfig(_Strict):
    dir: str = "eval-results"


class MlflowConfig(_Strict):
    tracking_uri: str | None = None
    experiment: str = "shinsa"
    run_name: str | None = None

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_uri(cls, v: str | None) -> str | None:
        return v and _no_credentials(v, "Use MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD.")


class EvalConfig(BaseModel):
    """An EvalRun spec as the engine runs it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", frozen=True)

    model: ModelTarget
    benchmarks: list[BenchmarkConfig] = Field(min_length=1)
    judges: list[JudgeConfig] = Field(default_factory=list)
    sampling: Sampling = Field(default_factory=Sampling)
    repeats: int = Field(default=3, ge=1, le=100)
    concurrency: int = Field(default=16, ge=1, le=4096)
    rate_limit: RateLimit | None = None
    timeout_seconds: float = Field(default=600.0, gt=0)
    retries: int = Field(default=4, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    max_error_rate: float = Field(default=0.05, ge=0.0, le=1.0)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)

    @model_validator(mode="after")
    def _unique_names(self) -> EvalConfig:
        for label, names in (
            ("judges", [j.name for j in self.judges]),
            ("benchmarks", [b.name for b in self.benchmarks]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{label}: duplicate names {dupes}")
        return self

    def unknown_keys(self) -> list[str]:
        return sorted((self.model_extra or {}).keys())


def _field_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


def parse_config(data: Any) -> EvalConfig:
    """Parse an EvalRun manifest (apiVersion/kind/spec) or a bare spec into an `EvalConfig`."""
    if not isinstance(data, dict):
        raise ConfigError("spec: expected a mapping")
    spec = data.get("spec") if "spec" in data and ("kind" in data or "apiVersion" in data) else data
    if not isinstance(spec, dict):
        raise ConfigError("spec: expected a mapping")
    try:
        cfg = EvalConfig.model_validate(spec)
    except ValidationError as exc:
        problems = [f"{_field_path(err['loc'])}: {err['msg']}" for err in exc.errors()]
        raise ConfigError("; ".join(problems)) from None
    from shinsa.evaluation.benchmarks import known_benchmarks

    registry = known_benchmarks()
    for i, bench in enumerate(cfg.benchmarks):
        if bench.name not in registry:
            raise ConfigError(
                f"benchmarks[{i}].name: unknown benchmark {bench.name!r}; known: {sorted(registry)}"
            )
        problems = registry[bench.name].config_problems(bench)
        if problems:
            raise ConfigError("; ".join(f"benchmarks[{i}].{p}" for p in problems))
        if registry[bench.name].needs_judge and not cfg.judges:
            raise ConfigError(f"judges: benchmark {bench.name!r} is judge-scored but no judge is configured")
    for i, judge in enumerate(cfg.judges):
        if judge.key_env and judge.key_env not in os.environ:
            source = "apiKeyEnv" if judge.api_key_env else "apiKeySecretRef"
            raise ConfigError(f"judges[{i}].{source}: environment variable {judge.key_env} is not set")
    if cfg.model.api_key_env and cfg.model.api_key_env not in os.environ:
        raise ConfigError(f"model.apiKeyEnv: environment variable {cfg.model.api_key_env} is not set")
    if cfg.model.endpoint is None:
        raise ConfigError("model.endpoint: required to run (the operator fills it in from deploymentRef)")
    return cfg


def load_config(path: str | Path) -> EvalConfig:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    return parse_config(data)
