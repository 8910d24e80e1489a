"""The evaluation engine's configuration: an EvalRun spec, plus the few options only the engine needs.

The spec is `shinsa.api.eval_run.EvalRunSpec` itself, so a file `shinsa eval run` accepts can be
applied as an EvalRun and the other way round, with the same limits and the same messages.
`EngineOptions` holds what has no place in a cluster resource: where results go on this machine,
the names of the variables holding API keys, a local checkpoint, the MLflow run name.

A config file is an EvalRun manifest or just its spec, with the engine options under a top-level
`engine:` key (beside `spec:` in a manifest).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from shinsa.api.base import K8sModel, defaulted
from shinsa.api.eval_run import (
    BenchmarkSpec,
    DatasetSource,
    EvalRunSpec,
    Judge,
    Sampling,
    redact_userinfo,
)
from shinsa.evaluation.phase import Phase


class ConfigError(Exception):
    """The configuration cannot be run; the message names the offending field."""


def check_phase(spec: EvalRunSpec, phase: Phase) -> None:
    """ConfigError when `phase` cannot run `spec`: judging needs answers, generating must not have them."""
    if phase is Phase.JUDGE and spec.answers is None:
        raise ConfigError(
            "--phase judge: no answers to judge: set spec.answers or pass --answers (a results directory "
            "of --phase generate, or llm-jp-judge's generation output)"
        )
    if phase is Phase.GENERATE and spec.answers is not None:
        raise ConfigError(
            "--phase generate: answers are given (spec.answers or --answers), so nothing would be "
            "generated; drop them, or run --phase judge"
        )


MODEL_KEY_ENV = "SHINSA_MODEL_API_KEY"
"""The environment variable the EvalRun Job exposes `spec.model.apiKeySecretRef` as."""


def judge_key_env(judge_name: str) -> str:
    """The environment variable the EvalRun Job exposes a judge's `apiKeySecretRef` as."""
    return "SHINSA_JUDGE_API_KEY_" + "".join(c if c.isalnum() else "_" for c in judge_name.upper())


OPERATOR_ONLY = ("model.deploymentRef", "gates", "promote")
"""Spec fields the engine does not act on: the operator resolves `deploymentRef` to an endpoint
before the engine runs, and applies gates and promotion to the results afterwards."""

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
# MLflow 3's tag rules (mlflow/utils/validation.py: _validate_tag_name, MAX_TAG_VAL_LENGTH).
_TAG_KEY = r"^[/\w.\- ]{1,250}$"
_TAG_VALUE_LIMIT = 8000


DEFAULT_MLFLOW_TRACES = 200
"""Traces logged per run unless `engine.mlflowTraces` says otherwise."""


class EngineOptions(K8sModel):
    """What only the engine running a spec needs; never part of an EvalRun."""

    output_dir: str = Field(default="eval-results", min_length=1)
    """The results directory (`--output` overrides it)."""
    checkpoint_uri: str | None = Field(default=None, min_length=1)
    """Where finished work is recorded for resuming: a local directory or `s3://bucket/prefix`.
    Default: `<outputDir>/checkpoint`."""
    results_uri: str | None = Field(default=None, pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?$")
    """`s3://bucket/prefix` the results files (scores.json, items.jsonl, ...) are uploaded to when
    the run ends, for readers without access to the output directory (the EvalRun controller)."""
    mlflow_run_name: str | None = Field(default=None, min_length=1, max_length=250)
    """The MLflow run's name. Default: `<servedName>-eval`."""
    mlflow_tags: dict[str, str] = Field(default_factory=dict, max_length=64)
    """Tags of the MLflow parent run besides the engine's own (`shinsa.kind`, `shinsa.status`,
    `shinsa.exit_code`, `shinsa.model`, which take precedence). The operator sets
    `shinsa.evalrun.namespace/name/uid` and, when it knows them, `shinsa.model.registered_name` and
    `shinsa.model.version`, by which a baseline `mlflowModel: name@alias` is found."""
    mlflow_traces: Annotated[int, Field(ge=0)] | Literal["all", "none"] = DEFAULT_MLFLOW_TRACES
    """How many judged items are logged as MLflow traces (one per question, turn and repeat, with a
    generation span, a span per judge and the judges' scores as assessments): a number (a sample
    spread evenly over the benchmarks' items), `all` or `none`. Each trace is a few requests to the
    tracking server (see docs/evaluation.md for the cost), so large runs log a sample."""
    model_api_key_env: str | None = Field(default=None, pattern=_ENV_NAME)
    """The variable holding the model endpoint's API key. Default: `SHINSA_MODEL_API_KEY` when
    `spec.model.apiKeySecretRef` is set, else none."""
    judge_api_key_env: dict[str, str] = Field(default_factory=dict)
    """Per judge name, the variable holding its API key. Default for a judge with `apiKeySecretRef`:
    `SHINSA_JUDGE_API_KEY_<NAME>`."""

    @property
    def trace_limit(self) -> int | None:
        """The most traces to log; None for all."""
        if self.mlflow_traces == "all":
            return None
        return 0 if self.mlflow_traces == "none" else int(self.mlflow_traces)

    @model_validator(mode="after")
    def _variable_names(self) -> EngineOptions:
        for judge, name in self.judge_api_key_env.items():
            if not re.match(_ENV_NAME, name):
                raise ValueError(f"judgeApiKeyEnv.{judge}: {name!r} is not a variable name")
        return self

    @model_validator(mode="after")
    def _tag_names(self) -> EngineOptions:
        # Checked here rather than refused by MLflow after the whole evaluation has run.
        for key, value in self.mlflow_tags.items():
            if not re.match(_TAG_KEY, key) or key.startswith("mlflow."):
                raise ValueError(
                    f"mlflowTags: {key!r} is not an MLflow tag name (up to 250 letters, digits, "
                    "'_-. /', not starting with 'mlflow.')"
                )
            if len(value) > _TAG_VALUE_LIMIT:
                raise ValueError(f"mlflowTags.{key}: longer than MLflow's {_TAG_VALUE_LIMIT} characters")
        return self


def judge_sampling(judge: Judge) -> Sampling:
    """The sampling settings sent with every request to a judge."""
    return Sampling(
        temperature=judge.temperature, max_tokens=judge.max_tokens, reasoning_effort=judge.reasoning_effort
    )


class EvalConfig(K8sModel):
    """An EvalRun spec as the engine runs it, with the engine's own options.

    On the wire (a config file, `config.json` of the results) it is flat: the spec's fields and an
    `engine` key beside them.
    """

    model_config = ConfigDict(frozen=True)

    spec: EvalRunSpec
    """What to evaluate, as in an EvalRun."""
    engine: EngineOptions = defaulted(EngineOptions)
    """How this engine runs it."""

    @model_validator(mode="before")
    @classmethod
    def _from_flat(cls, data: Any) -> Any:
        if isinstance(data, dict) and "spec" not in data:
            spec = dict(data)
            engine = spec.pop("engine", {})
            return {"spec": spec, "engine": engine}
        return data

    @model_serializer(mode="wrap")
    def _to_flat(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        nested: dict[str, Any] = handler(self)
        return {**nested["spec"], "engine": nested["engine"]}

    @model_validator(mode="after")
    def _runnable(self) -> EvalConfig:
        if self.spec.model.endpoint is None:
            raise ValueError(
                "spec.model.endpoint: required to run (the operator sets it from spec.model.deploymentRef)"
            )
        judges = {j.name for j in self.spec.judges}
        for name in self.engine.judge_api_key_env:
            if name not in judges:
                raise ValueError(f"engine.judgeApiKeyEnv.{name}: no judge of that name in spec.judges")
        return self

    # -- what the engine reads -----------------------------------------------------------------------

    @property
    def model_key_env(self) -> str | None:
        """The variable holding the model endpoint's API key, if it needs one."""
        if self.engine.model_api_key_env:
            return self.engine.model_api_key_env
        return MODEL_KEY_ENV if self.spec.model.api_key_secret_ref else None

    def judge_key_env(self, judge: Judge) -> str | None:
        """The variable holding a judge's API key, if it needs one."""
        if judge.name in self.engine.judge_api_key_env:
            return self.engine.judge_api_key_env[judge.name]
        return judge_key_env(judge.name) if judge.api_key_secret_ref else None

    def operator_only_fields(self) -> list[str]:
        """The fields of `OPERATOR_ONLY` this spec sets: the engine ignores them."""
        wire = self.spec.model_dump(by_alias=True, exclude_none=True)
        out = []
        for path in OPERATOR_ONLY:
            node: Any = wire
            for part in path.split("."):
                node = node.get(part) if isinstance(node, dict) else None
            if node is not None:
                out.append(path)
        return out

    @property
    def endpoint(self) -> str:
        """The model's base URL; a runnable config has one."""
        assert self.spec.model.endpoint is not None  # _runnable
        return self.spec.model.endpoint

    @property
    def served_name(self) -> str:
        """The model name requested; required with an endpoint (a CEL rule of the spec)."""
        assert self.spec.model.served_name is not None
        return self.spec.model.served_name


def field_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as the field path a user reads: `benchmarks[0].dataset.uri`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-wrap") or "[" in str(part):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "spec"


# Fields of the engine's earlier schema that became engine options, so an old file gets told where.
_MOVED = {
    "output": "engine.outputDir",
    "checkpoint": "engine.checkpointUri",
    "model.apiKeyEnv": "engine.modelApiKeyEnv",
    "judges.apiKeyEnv": "engine.judgeApiKeyEnv.<judge name>",
    "mlflow.runName": "engine.mlflowRunName",
}


# Settings a user coming from llm-jp-judge writes where Shinsa has them elsewhere.
_HINTS = {
    "judges.maxRetries": "judge attempts are `parseRetries` (+1), or `judging.attempts` per benchmark "
    "(llm-jp-judge's max_retries 3 is attempts 4)",
    "judges.samplingParams": "a judge takes temperature, topP, seed and maxTokens itself; per benchmark "
    "they are `judging.sampling`",
    "judges.frequencyPenalty": "send it in the judge's extraBody",
    "sampling.frequencyPenalty": "send it in spec.model.extraBody",
    "benchmarks.sampling.frequencyPenalty": "send it in spec.model.extraBody",
    "benchmarks.judging.maxRetries": "it is `judging.attempts`, counting the first request "
    "(llm-jp-judge's max_retries 3 is attempts 4)",
}


def _problem(err: Any) -> str:
    loc = tuple(err["loc"])
    if loc and loc[0] == "spec":
        loc = loc[1:]  # a spec field is named as in the spec
    path = field_path(loc)
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        key = ".".join(str(p) for p in loc if isinstance(p, str))
        moved = _MOVED.get(key)
        if moved:
            message += f"; it is an engine option now: {moved}"
        elif key in _HINTS:
            message += f"; {_HINTS[key]}"
    elif message.startswith("Value error, "):
        message = message.removeprefix("Value error, ")
        # Rules on a whole object name their own field (`spec.model.servedName ...`).
        if message.startswith(("spec.", "engine.")) or message.startswith(path + ":"):
            return message
    return f"{path}: {message}"


def parse_config(data: Any, *, phase: Phase = Phase.ALL, answers: str | None = None) -> EvalConfig:
    """Parse an EvalRun manifest (apiVersion/kind/spec, and `engine` beside `spec`) or a bare spec
    (with `engine` among its keys) into an `EvalConfig`, checking what this machine must provide.

    `answers` (an already checked URI, `--answers`) replaces `spec.answers`. Only the API keys the
    `phase` uses must be set: none of the judges' to generate, none of the model's with answers.
    Benchmark-specific settings are checked by `shinsa.evaluation.benchmarks.check_config`.
    """
    if not isinstance(data, dict):
        raise ConfigError("spec: expected a mapping")
    # A manifest, with or without apiVersion and kind: no field of a bare spec is named `spec`.
    if "spec" in data:
        if data.get("kind", "EvalRun") != "EvalRun":
            raise ConfigError(f"kind: expected EvalRun, got {data.get('kind')!r}")
        spec, engine = data.get("spec"), data.get("engine", {})
        if not isinstance(spec, dict):
            raise ConfigError("spec: expected a mapping")
        data = {"spec": spec, "engine": engine}
    try:
        config = EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("; ".join(_problem(err) for err in exc.errors())) from None
    if answers is not None:
        config = config.model_copy(update={"spec": config.spec.model_copy(update={"answers": answers})})
    check_phase(config.spec, phase)
    for i, judge in enumerate(config.spec.judges if phase is not Phase.GENERATE else []):
        env = config.judge_key_env(judge)
        if env and env not in os.environ:
            field = (
                f"engine.judgeApiKeyEnv.{judge.name}"
                if judge.name in config.engine.judge_api_key_env
                else f"judges[{i}].apiKeySecretRef"
            )
            raise ConfigError(f"{field}: environment variable {env} is not set")
    env = config.model_key_env if config.spec.answers is None else None
    if env and env not in os.environ:
        field = "engine.modelApiKeyEnv" if config.engine.model_api_key_env else "model.apiKeySecretRef"
        raise ConfigError(f"{field}: environment variable {env} is not set")
    return config


def load_config(path: str | Path, *, phase: Phase = Phase.ALL, answers: str | None = None) -> EvalConfig:
    """`parse_config` of a YAML file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        # Its own message quotes the bytes around the bad one, which may be a key.
        raise ConfigError(f"--config: {path} is not UTF-8 (byte offset {exc.start})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {exc}") from None
    return parse_config(data, phase=phase, answers=answers)


__all__ = [
    "MODEL_KEY_ENV",
    "OPERATOR_ONLY",
    "BenchmarkSpec",
    "ConfigError",
    "DatasetSource",
    "EngineOptions",
    "EvalConfig",
    "EvalRunSpec",
    "Phase",
    "Sampling",
    "check_phase",
    "field_path",
    "judge_key_env",
    "judge_sampling",
    "load_config",
    "parse_config",
    "redact_userinfo",
]
