"""The EvalRun resource: judge-scored benchmarks against a model, regression gates, and promotion.

These models are also the evaluation engine's configuration (`shinsa eval run --config`): every
option a user has on a laptop is a field here, validated once, whether the API server or the engine
reads it. What only a local run needs (output directory, key variables) is in
`shinsa.evaluation.config.EngineOptions`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import (
    BeforeValidator,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
)

from shinsa.api.base import CelRule, K8sModel, K8sStatusModel, defaulted, require_unique
from shinsa.api.conditions import Condition
from shinsa.api.gates import GatePolicy, LocalRef
from shinsa.api.model_deployment import RopeScaling, Toleration
from shinsa.api.resource import AGE_COLUMN, K8sResource, PrinterColumn

DATASET_URI_PATTERN = (
    r"^(/\S*"
    r"|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/\S*)?"
    r"|pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?(/\S*)?)$"
)
_HTTP_URL_PATTERN = r"^https?://\S+$"
_DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# CEL cost estimates treat a string without maxLength as megabytes long, which makes the rules that
# compare benchmark names too expensive for the API server to accept.
_SHORT_ENUM: dict[str, JsonValue] = {"maxLength": 64}
_PROMPT_CHARS = 65536
# Empty maps and lists Python fills in are CRD defaults too, so the server stores what Python reads.
_EMPTY_MAP: dict[str, JsonValue] = {"default": {}}
DEFAULT_MAX_RESPONSE_BYTES = 256 * 1024

# URLs are logged (MLflow params, scores.json, error messages, events), so no credential may be in
# one. CEL messages, unlike a pattern's, do not echo the value back; neither do the Python ones.
NO_CREDENTIALS = CelRule(
    # In an http(s) URL, an `@` is userinfo, or a password holding a `/`, `?` or `#` that cut the
    # authority short and left the rest in the path: refused either way.
    rule="!self.contains('@')",
    message="must not embed credentials (user:password@): URLs are logged; use a Secret or variable",
    holds=lambda url: "@" not in url,
)
NO_QUERY = CelRule(
    rule="!self.contains('?') && !self.contains('#')",
    message=(
        "must not have a query string or fragment: it is a base URL the API path is appended to, and "
        "URLs are logged; put an API key in apiKeySecretRef"
    ),
    holds=lambda url: "?" not in url and "#" not in url,
)
_AUTHORITY_USERINFO = r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#][^?#]*)?@"
NO_URI_CREDENTIALS = CelRule(
    # Any URI scheme (file:, sqlite:, postgresql://, databricks://): an `@` after a non-empty
    # authority, before the query. `file:///tmp/a@b` has an empty one and is a path.
    rule=f"!self.matches('{_AUTHORITY_USERINFO}')",
    message=NO_CREDENTIALS.message,
    holds=lambda uri: not _has_uri_userinfo(uri),
)
_HTTP_SCHEMES = ("http://", "https://")
NO_HTTP_QUERY = CelRule(
    rule="!(self.startsWith('http://') || self.startsWith('https://')) || "
    "(!self.contains('?') && !self.contains('#'))",
    message="an http(s) tracking URI must not have a query string or fragment: URLs are logged",
    holds=lambda uri: not uri.startswith(_HTTP_SCHEMES) or not any(c in uri for c in "?#"),
)


def _has_uri_userinfo(uri: str) -> bool:
    parts = urlsplit(uri)
    return bool(parts.scheme and parts.netloc) and "@" in parts.netloc + parts.path


def _authority_is_malformed(parts: SplitResult) -> bool:
    try:
        parts.port  # noqa: B018  # raises on a port that is not a number
    except ValueError:
        return True
    return False


def redact_userinfo(value: str) -> str:
    """`https://user:secret@host/x` -> `https://***@host/x`, for messages that echo a URL.

    A password with a `/` in it ends the authority early (`https://u:pa/ss@host`, whose "port" is
    `pa`): after an authority that is no host and port, the `@` in the path marks the credentials."""
    parts = urlsplit(value)
    if "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))
    if parts.netloc and _authority_is_malformed(parts) and "@" in parts.path:
        host, slash, path = parts.path.rpartition("@")[2].partition("/")
        return urlunsplit(parts._replace(netloc="***@" + host, path=slash + path))
    return value


def _check_http_url(value: Any) -> Any:
    # Runs before the pattern check (it follows the Field in `Annotated`), so that a URL with
    # credentials gets this message and not the pattern's; nothing here quotes the value.
    if not isinstance(value, str):
        return value
    for rule in (NO_CREDENTIALS, NO_QUERY):
        if not rule.holds(value):
            raise ValueError(rule.message)
    parts = urlsplit(value)
    if parts.scheme in ("http", "https"):
        if _authority_is_malformed(parts):
            raise ValueError("is not a valid URL: the port after the host is not a number")
        if not parts.hostname:
            raise ValueError("is not a valid URL: no host")
    return value


def _check_tracking_uri(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    for rule in (NO_URI_CREDENTIALS, NO_HTTP_QUERY):
        if not rule.holds(value):
            raise ValueError(rule.message)
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and (_authority_is_malformed(parts) or not parts.hostname):
        raise ValueError("is not a valid URL: expected http(s)://host[:port][/path]")
    return value


def _validations(*rules: CelRule) -> dict[str, JsonValue]:
    return {"x-kubernetes-validations": [dict(rule.to_schema()) for rule in rules]}


HttpUrl = Annotated[
    str,
    Field(
        pattern=_HTTP_URL_PATTERN,
        max_length=2048,
        json_schema_extra=_validations(NO_CREDENTIALS, NO_QUERY),
    ),
    BeforeValidator(_check_http_url),
]
"""An http(s) base URL without credentials or query string. Python also parses it (urllib.parse):
the port must be a number and there must be a host."""

TrackingUri = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        json_schema_extra=_validations(NO_URI_CREDENTIALS, NO_HTTP_QUERY),
    ),
    BeforeValidator(_check_tracking_uri),
]
"""An MLflow tracking URI (http(s), file:, databricks, ...) without credentials."""

ReasoningEffort = Literal["minimal", "low", "medium", "high"]
MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]


class BenchmarkName(enum.StrEnum):
    """A benchmark Shinsa knows how to run and score."""

    MT_BENCH = "mt-bench"
    MT_BENCH_JA = "mt-bench-ja"
    LLM_JP_INSTRUCTIONS = "llm-jp-instructions"
    ANSWER_CAREFULLY = "answer-carefully"
    LONG_CONTEXT = "long-context"
    RUBRIC = "rubric"


RULE_SCORED_BENCHMARKS = frozenset({BenchmarkName.LONG_CONTEXT})
"""Benchmarks scored by a rule rather than a judge: the only ones that may run without judges. The
engine's benchmark registry is tested to agree (`needs_judge`)."""


class _ExplicitNulls(K8sModel):
    """A model with fields whose null means something other than their default (for example "do not
    send a temperature"). `to_k8s()` leaves nulls out; these are kept so that a round trip through
    the wire format (and the API server, where they are `nullable`) does not bring the default back."""

    @model_serializer(mode="wrap")
    def _keep_meaningful_nulls(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        for name, field in type(self).model_fields.items():
            if getattr(self, name) is None and field.default is not None and not field.is_required():
                out[(field.alias or name) if info.by_alias else name] = None
        return out


class SecretKeyRef(K8sModel):
    """A key of a Secret in the same namespace."""

    name: str = Field(pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """The Secret's name."""
    key: str = Field(min_length=1, max_length=253)
    """The key holding the value."""


class Sampling(K8sModel):
    """Generation settings; unset fields inherit from the enclosing level and are not sent when unset."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    """Sampling temperature."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling probability mass."""
    max_tokens: int | None = Field(default=None, ge=1)
    """The most tokens to generate per answer."""
    seed: int | None = None
    """A sampling seed; each repeat offsets it so repeats stay independent."""
    reasoning_effort: ReasoningEffort | None = None
    """For thinking models: the `Reasoning:` level of the system prompt (minimal, low, medium or high)."""

    def merged(self, override: Sampling | None) -> Sampling:
        """These settings with the fields `override` sets replaced."""
        if override is None:
            return self
        return self.model_copy(update=override.model_dump(exclude_none=True))


class EvalProfile(enum.StrEnum):
    """Whose defaults fill what a spec leaves unset."""

    SHINSA = "shinsa"
    LLM_JP_JUDGE = "llm-jp-judge"


class JudgingPolicy(K8sModel):
    """How a benchmark's answers are judged and its judge replies read. Every field is optional:
    unset, the run's `profile` decides (`shinsa`: the value named `Shinsa:`; `llm-jp-judge`: what
    llm-jp-judge v2.0.0 does, named `llm-jp-judge:`). An explicit value always wins."""

    sampling: Sampling | None = None
    """The judge's sampling for this benchmark, over the judge's own `temperature`, `topP`, `seed`
    and `maxTokens` (the seed is sent as given, the same for every repeat). llm-jp-judge: mt-bench
    temperature 0 and maxTokens 2048; llm-jp-instructions and answer-carefully temperature 1.0,
    topP 0.95, seed 1234, maxTokens 1024. Shinsa: the judge's own."""
    ratings: Literal["first", "agree"] | None = None
    """How a rating is read from a judge reply that holds several: `first`, the first match, as
    llm-jp-judge's `re.search` (with criteria, each criterion must appear exactly once, as its
    quality reader wants); `agree` (Shinsa), all of them, which must agree."""
    range_check: bool | None = None
    """Whether a rating outside the benchmark's scale is unreadable and asked again (Shinsa: true).
    llm-jp-judge: false, it takes what its regex matched (its safety regex accepts any digit)."""
    attempts: int | None = Field(default=None, ge=1, le=11)
    """Judge requests per judgment in all, counting the ones asked again because the reply could
    not be read (and, with `retryRefused`, refused ones). Shinsa: the judge's `parseRetries` + 1;
    llm-jp-judge: 4 (its client's `max_retries: 3`)."""
    retry_refused: bool | None = None
    """Whether a judge API refusal (an HTTP 400 answer, such as a content filter's) is asked again
    within `attempts`, as llm-jp-judge does. Shinsa: false."""
    api_error_score: float | None = None
    """The score given to an answer whose judgment was refused by the judge's API (HTTP 400) at
    every attempt (a content filter's 400 often means the answer was unsafe), instead of an item error
    that counts against `maxErrorRate`. Unset: an error. llm-jp-judge: 1 for answer-carefully (its
    safety_ja `api_error_score`)."""
    failed_generation: Literal["error", "empty", "drop"] | None = None
    """What a turn whose answer could not be generated (or whose pre-generated answer recorded an
    error) becomes: `error` (Shinsa), an item error, and the later turns of the conversation too;
    `empty`, judged as an empty answer, and the conversation goes on (with `formatting: python` the
    missing answer is Python's `None`, rendered `None` or `[None]`, exactly as llm-jp-judge judges
    it; llm-jp-judge's default); `drop`, left out of the scores with the later turns, counted
    neither as scored nor as an error."""
    formatting: Literal["shinsa", "python"] | None = None
    """How judge prompt templates are filled: `shinsa`, each field a string; `python`, Python's
    `str.format` with the objects llm-jp-judge passes (llm-jp-instructions' `question` and
    `response`, answer-carefully's `question`, `reference` and `response` are one-element lists,
    rendered as Python lists; a missing answer is `None`). Shinsa: shinsa; llm-jp-judge: python."""


class RateLimit(K8sModel):
    """Token-bucket limits on the requests sent to one endpoint."""

    requests_per_second: float | None = Field(default=None, gt=0)
    """The most requests started per second."""
    tokens_per_minute: float | None = Field(default=None, gt=0)
    """The most tokens (prompt and completion, estimated before the request and corrected from the
    reported usage) per minute."""


class EvalTarget(K8sModel):
    """The model under evaluation: a ModelDeployment, or any OpenAI-compatible endpoint."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="has(self.deploymentRef) != has(self.endpoint)",
            message="spec.model must set exactly one of deploymentRef or endpoint",
            holds=lambda m: (m.deployment_ref is None) != (m.endpoint is None),
        ),
        CelRule(
            rule="!has(self.endpoint) || has(self.servedName)",
            message="spec.model.servedName is required with spec.model.endpoint",
            holds=lambda m: m.endpoint is None or m.served_name is not None,
            field_path=".servedName",
            reason="FieldValueRequired",
        ),
        CelRule(
            rule="!has(self.apiKeySecretRef) || has(self.endpoint)",
            message="spec.model.apiKeySecretRef applies only with spec.model.endpoint",
            holds=lambda m: m.api_key_secret_ref is None or m.endpoint is not None,
            field_path=".apiKeySecretRef",
            reason="FieldValueForbidden",
        ),
    )

    deployment_ref: LocalRef | None = None
    """A ModelDeployment in this namespace; the run waits until it is Ready and uses its endpoint."""
    endpoint: HttpUrl | None = None
    """The base URL of an OpenAI-compatible API (for example `http://host:8000/v1`; `/v1` is added
    when the path is empty)."""
    served_name: str | None = Field(default=None, min_length=1, max_length=253)
    """The model name to request. Required with `endpoint`; with `deploymentRef` it defaults to the
    deployment's served name."""
    revision: str | None = Field(default=None, min_length=1, max_length=255)
    """The weights' revision, logged with the results and part of the checkpoint fingerprint."""
    api_key_secret_ref: SecretKeyRef | None = None
    """The Secret key holding the endpoint's API key; omit for endpoints without authentication."""
    max_tokens_param: MaxTokensParam = "max_tokens"
    """The request field that carries `maxTokens`: `max_completion_tokens` for APIs that want it."""
    extra_body: dict[str, JsonValue] = Field(default_factory=dict, json_schema_extra=_EMPTY_MAP)
    """Extra fields merged into every request body (for example vLLM's `chat_template_kwargs`).
    Free-form, so never logged: the results list its keys only."""
    rope_scaling: RopeScaling | None = None
    """How the endpoint extends the model's context (YaRN), as a ModelDeployment's
    `spec.serving.ropeScaling` says it: recorded with the results, and long-context results carry
    the caveat that YaRN is not recommended when typical context fits the native one (≤ 32k for
    Qwen3). Set it for an `endpoint` served that way."""


class DatasetSource(K8sModel):
    """Where a benchmark's questions (and references) are read from. Datasets are licensed separately
    and never shipped with Shinsa."""

    uri: str = Field(pattern=DATASET_URI_PATTERN, max_length=2048)
    """An absolute path (inside the evaluation Job, or on the machine running `shinsa eval run`),
    `s3://bucket/prefix` or `pvc://claim/path`."""
    question_file: str = Field(default="question.jsonl", min_length=1, max_length=1024)
    """The question file under the dataset root; a `*.json` file is read in the llm-jp-judge layout."""
    reference_file: str | None = Field(default=None, min_length=1, max_length=1024)
    """The reference-answer file under the dataset root; unset: the first `reference_answer/*.jsonl`."""
    corpus_file: str = Field(default="corpus.txt", min_length=1, max_length=1024)
    """long-context: the text file the prompts are built from."""


class JudgePrompts(K8sModel):
    """Overrides of the judge prompt templates (`str.format` fields, checked when the run starts)."""

    system: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """The judge's system prompt."""
    single: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """The prompt rating one answer."""
    single_reference: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """mt-bench: the prompt rating one answer against a reference answer."""
    multi: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """mt-bench: the prompt rating the second turn of a conversation."""
    multi_reference: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """mt-bench: the prompt rating the second turn against reference answers."""


_RATE_BOUNDS = ("below", "at_most", "above", "at_least")
# A benchmark's own metric names (results, MLflow): a rate so named would overwrite one of them.
_RESERVED_METRICS = (
    "score", "mean", "std", "ci_low", "ci_high", "error_rate", "n_items", "n_questions", "wall_time_s",
)  # fmt: skip


class RubricRate(K8sModel):
    """A rate over a rubric benchmark's scored answers: the fraction whose score is past a threshold
    (llm-jp-judge's 違反回答率 is `{name: violation_rate, below: 3}`, its 許容回答率
    `{name: acceptable_rate, above: 3}`). Exactly one bound is set. Reported as a fraction (0-1),
    where llm-jp-judge reports a percentage, and per answer too, so gates can compare it."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="[has(self.below), has(self.atMost), has(self.above), has(self.atLeast)]"
            ".filter(x, x).size() == 1",
            message="spec.benchmarks[].rubric.rates[] must set exactly one of below, atMost, above, atLeast",
            holds=lambda m: sum(getattr(m, b) is not None for b in _RATE_BOUNDS) == 1,
        ),
        CelRule(
            rule="!(self.name in [" + ", ".join(f"'{n}'" for n in _RESERVED_METRICS) + "])",
            message="spec.benchmarks[].rubric.rates[].name must not be one of the benchmark's own metrics: "
            + ", ".join(_RESERVED_METRICS),
            holds=lambda m: m.name not in _RESERVED_METRICS,
            field_path=".name",
            reason="FieldValueInvalid",
        ),
    )

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$", max_length=64)
    """The metric's name (for example `violation_rate`)."""
    below: float | None = None
    """Count the scores less than this."""
    at_most: float | None = None
    """Count the scores less than or equal to this."""
    above: float | None = None
    """Count the scores greater than this."""
    at_least: float | None = None
    """Count the scores greater than or equal to this."""

    def counts(self, score: float) -> bool:
        """Whether `score` is one of the scores this rate counts."""
        if self.below is not None:
            return score < self.below
        if self.at_most is not None:
            return score <= self.at_most
        if self.above is not None:
            return score > self.above
        return self.at_least is not None and score >= self.at_least


RUBRIC_PREFIX = "rubric/"
"""A rubric benchmark's results are keyed `rubric/<rubric.id>`, so one run can hold several."""


class RubricSpec(K8sModel):
    """A single-turn benchmark graded on a rubric the user gives: the judge rates each answer on a
    scale, optionally against the question's reference answer, with threshold rates over the
    scores. It runs llm-jp-judge's culture_ja, safety_borderline_ja (one rubric benchmark for its
    refusal rating, one for its safety rating) and safety_boundary_ja from their data and prompt
    files (docs/evaluation.md, "Coming from llm-jp-judge")."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self.minScore < self.maxScore",
            message="spec.benchmarks[].rubric.minScore must be less than maxScore",
            holds=lambda m: m.min_score < m.max_score,
            field_path=".minScore",
            reason="FieldValueInvalid",
        ),
    )

    id: str = Field(pattern=_DNS_LABEL_PATTERN, max_length=40)
    """Names this rubric: its results, metrics and gates are under `rubric/<id>` (for example
    `rubric/culture-ja`); unique within the run."""
    criteria: str | None = Field(default=None, min_length=1, max_length=_PROMPT_CHARS)
    """What the judge rates, in words (and what each score means), for Shinsa's own rubric prompt.
    Required unless `prompts.single` gives the whole prompt."""
    min_score: float = 1
    """The lowest score of the scale (0 for a binary 0-1 rubric)."""
    max_score: float = 5
    """The highest score of the scale; a rating outside the scale is unreadable and asked again."""
    regex: str | None = Field(default=None, min_length=1, max_length=1024)
    """A Python regular expression whose first group is the score, taken from its first match in
    the judge's reply, as llm-jp-judge's `regex` (for example `\\[\\[(\\d+)\\]\\]`). Unset: Shinsa's
    reading of `[[n]]` ratings, which must agree when the judge writes several."""
    reference: Literal["auto", "required", "none"] = "auto"
    """`auto`: a question's reference answer is shown to the judge when it has one
    (`prompts.singleReference`, else `prompts.single`), and the questions without one are listed in
    the run's warnings; `required`: a question without one is a dataset error; `none`: never shown."""
    rates: list[RubricRate] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "default": [],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    """Threshold rates over the scores (violation, refusal, acceptable ...), each a metric of this
    benchmark."""
    empty_answer_score: float | None = None
    """The score of an empty answer, given without asking the judge (llm-jp-judge culture_ja's
    `empty_response_score: 1`). Unset: an empty answer is judged like any other."""
    category_field: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)
    """A field of the question rows whose value is each question's category, so that scores are
    also reported per value (`safety` in llm-jp-judge's safety_boundary_ja gives its safe and
    unsafe means as `category/safe` and `category/unsafe`)."""
    template_syntax: Literal["format", "jinja2"] = "format"
    """How the judge prompt templates are filled: `format` (Python `str.format` fields, `{answer}`)
    or `jinja2` (`{{ lm_output }}`, llm-jp-judge safety_boundary_ja's prompt file)."""

    @field_validator("regex")
    @classmethod
    def _one_group(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                groups = re.compile(value).groups
            except re.error as exc:
                raise ValueError(f"is not a valid regular expression: {exc}") from None
            if groups < 1:
                raise ValueError("must have a group (parentheses) around the score")
        return value

    @field_validator("rates")
    @classmethod
    def _unique_rates(cls, rates: list[RubricRate]) -> list[RubricRate]:
        require_unique(rates, "name", "rates")
        return rates


def _only_for(field: str, *benchmarks: BenchmarkName) -> CelRule:
    """A rule that a benchmark-specific field is set only on the benchmarks it applies to."""
    wire = "".join(p.capitalize() if i else p for i, p in enumerate(field.split("_")))
    names = " and ".join(benchmarks)
    return CelRule(
        rule=f"!has(self.{wire}) || " + " || ".join(f"self.name == '{b}'" for b in benchmarks),
        message=f"spec.benchmarks[].{wire} applies only to the {names} benchmark"
        + ("s" if len(benchmarks) > 1 else ""),
        holds=lambda m: getattr(m, field) is None or m.name in benchmarks,
        field_path=f".{wire}",
        reason="FieldValueForbidden",
    )


_SET: dict[str, JsonValue] = {"x-kubernetes-list-type": "set"}


def _unique(values: Sequence[Any] | None) -> None:
    # What `x-kubernetes-list-type: set` makes the API server check.
    if values is not None and len(set(values)) != len(values):
        raise ValueError("values must be unique")


class BenchmarkSpec(K8sModel):
    """One benchmark to run."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        _only_for("reference_categories", BenchmarkName.MT_BENCH, BenchmarkName.MT_BENCH_JA),
        _only_for("criteria", BenchmarkName.LLM_JP_INSTRUCTIONS),
        _only_for("context_lengths", BenchmarkName.LONG_CONTEXT),
        _only_for("depths", BenchmarkName.LONG_CONTEXT),
        _only_for("samples_per_length", BenchmarkName.LONG_CONTEXT),
        _only_for("chars_per_token", BenchmarkName.LONG_CONTEXT),
        _only_for("rubric", BenchmarkName.RUBRIC),
        _only_for(
            "prompt_file",
            BenchmarkName.MT_BENCH,
            BenchmarkName.MT_BENCH_JA,
            BenchmarkName.LLM_JP_INSTRUCTIONS,
            BenchmarkName.ANSWER_CAREFULLY,
        ),
        CelRule(
            rule="self.name != 'rubric' || has(self.rubric)",
            message="spec.benchmarks[].rubric is required for the rubric benchmark",
            holds=lambda m: m.name != BenchmarkName.RUBRIC or m.rubric is not None,
            field_path=".rubric",
            reason="FieldValueRequired",
        ),
    )

    name: BenchmarkName = Field(json_schema_extra=_SHORT_ENUM)
    """The benchmark: mt-bench, mt-bench-ja, llm-jp-instructions, answer-carefully, long-context or
    rubric."""
    dataset: DatasetSource
    """Where its data is."""
    sampling: Sampling = defaulted(Sampling)
    """Overrides of `spec.sampling` for this benchmark."""
    category_sampling: dict[str, Sampling] = Field(
        default_factory=dict, max_length=64, json_schema_extra=_EMPTY_MAP
    )
    """Overrides of this benchmark's sampling for the questions of one category (for example
    `math: {temperature: 0}`)."""
    system_prompt: str | None = Field(default=None, max_length=_PROMPT_CHARS)
    """A system prompt for the model under evaluation."""
    prompts: JudgePrompts = defaulted(JudgePrompts)
    """Overrides of the judge prompt templates."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N questions (for smoke tests)."""
    reference_categories: list[Annotated[str, Field(min_length=1, max_length=253)]] | None = Field(
        default=None, min_length=1, max_length=32, json_schema_extra=_SET
    )
    """mt-bench only: the categories judged against the reference answer (default math, reasoning,
    coding)."""
    criteria: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=64)]] | None = Field(
        default=None, min_length=1, max_length=16, json_schema_extra=_SET
    )
    """llm-jp-instructions only: the 1-5 criteria the judge rates (default accuracy, helpfulness,
    fluency, instruction_following)."""
    context_lengths: list[Annotated[int, Field(ge=512, le=1048576)]] | None = Field(
        default=None, min_length=1, max_length=16
    )
    """long-context only: the prompt lengths (tokens) to test (default [8192, 32768, 65536])."""
    depths: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        default=None, min_length=1, max_length=16
    )
    """long-context only: where in the text the planted fact is, as fractions (default 0.1, 0.5, 0.9)."""
    samples_per_length: int | None = Field(default=None, ge=1, le=1000)
    """long-context only: prompts per length and depth (default 1)."""
    chars_per_token: float | None = Field(default=None, gt=0, le=16)
    """long-context only: characters per token used to size prompts (default 3.0); calibrate it for the
    tokenizer and the corpus language."""
    rubric: RubricSpec | None = None
    """rubric only (and required there): the rubric the judge grades answers on."""
    prompt_file: str | None = Field(default=None, pattern=DATASET_URI_PATTERN, max_length=2048)
    """An llm-jp-judge judge prompt file (one of its `config/benchmark/prompt/evaluate/*.yaml`, from
    the user's own checkout, as it is), as dataset URIs are written: the judge prompts, their
    system prompts and rating regexes are read from it instead of Shinsa's. mt-bench reads the
    templates `single-v1`, `single-math-v1` (reference-guided), `single-v1-multi-turn` and
    `single-math-v1-multi-turn`, each a `prompt_template` with llm-jp-judge's fields (`{question}`,
    `{answer}`, `{ref_answer_1}`, `{question_1}` ...), a `system_prompt` (none sent when null) and
    a `regex`; llm-jp-instructions reads `prompt_template` (`{question}`, `{response}`), `regex`
    (criterion and rating groups) and `metrics` (the criteria); answer-carefully reads
    `prompt_template_with_ref` (or `prompt_template`; `{question}`, `{reference}`, `{response}`)
    and `regex`. Those two files have no system prompt: llm-jp-judge sends its benchmark's
    `system_prompt` from its evaluate.yaml, which `prompts.system` sets here (when set, it replaces
    a file's system prompts; the other `prompts` fields cannot be set beside a prompt file). Fields
    are filled as `judging.formatting` says (`python` under the llm-jp-judge profile)."""
    judging: JudgingPolicy = defaulted(JudgingPolicy)
    """How the answers are judged and the judge replies read; unset fields follow `spec.profile`."""

    @property
    def results_key(self) -> str:
        """The key of this benchmark's results, metrics and gates: its name, or `rubric/<id>`."""
        if self.name == BenchmarkName.RUBRIC and self.rubric is not None:
            return RUBRIC_PREFIX + self.rubric.id
        return str(self.name)

    @field_validator("reference_categories", "criteria")
    @classmethod
    def _unique_names(cls, values: list[str] | None) -> list[str] | None:
        _unique(values)
        return values


class Judge(_ExplicitNulls):
    """An LLM that scores answers through an OpenAI-compatible API."""

    name: str = Field(pattern=_DNS_LABEL_PATTERN, max_length=63)
    """A short name, used in metric names when several judges score the same answers."""
    endpoint: HttpUrl
    """The base URL of the judge's OpenAI-compatible API."""
    model: str = Field(min_length=1, max_length=253)
    """The judge model to request, for example `gpt-5.4-2026-03-05`."""
    api_key_secret_ref: SecretKeyRef | None = None
    """The Secret key holding the API key; omit for endpoints without authentication."""
    temperature: float | None = Field(default=0.0, ge=0, le=2)
    """The judge's sampling temperature: 0 keeps judging reproducible; `null` sends none, for reasoning
    judges that reject one."""
    max_tokens: int | None = Field(default=2048, ge=1)
    """The most tokens per judgment; `null` sends no limit."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """The judge's nucleus sampling probability mass; unset: not sent."""
    seed: int | None = None
    """A sampling seed sent with every judge request; unset: not sent."""
    reasoning_effort: ReasoningEffort | None = None
    """For reasoning judges: the effort to request (minimal, low, medium or high)."""
    max_tokens_param: MaxTokensParam = "max_tokens"
    """The request field that carries `maxTokens`: `max_completion_tokens` for APIs that want it."""
    parse_retries: int = Field(default=2, ge=0, le=10)
    """How many times an unreadable judgment is asked again before the item counts as an error."""
    rate_limit: RateLimit | None = None
    """Limits on the requests to this judge; unset: `spec.rateLimit`."""
    extra_body: dict[str, JsonValue] = Field(default_factory=dict, json_schema_extra=_EMPTY_MAP)
    """Extra fields merged into every request body. Free-form, so never logged."""


class MLflowSpec(K8sModel):
    """Where results are logged."""

    tracking_uri: TrackingUri | None = None
    """The MLflow tracking server. Defaults to the one the operator is configured with; a local run
    without it logs nothing to MLflow."""
    experiment: str = Field(default="shinsa", min_length=1, max_length=500)
    """The MLflow experiment to log the run under."""


class Promotion(K8sModel):
    """What to do with a candidate that passes its gates: register it as a new version of a model in
    MLflow's registry and point an alias at it, which the ModelDeployments serving
    `models:/<registeredModel>@<alias>` follow. Who may promote which model is a cluster-wide
    `PromotionPolicy`'s decision (docs/promotion.md)."""

    registered_model: str = Field(min_length=1, max_length=256, pattern=r"^[^/@\s][^/@]*$")
    """The MLflow registered model the candidate becomes a version of (created if missing)."""
    alias: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", max_length=255)
    """The registry alias to point at the new version (for example `champion`)."""
    enabled: bool = True
    """False: gate, record the decision, and move nothing (a dry run of the promotion)."""


def _judged(spec: EvalRunSpec) -> list[str]:
    return [b.name for b in spec.benchmarks if b.name not in RULE_SCORED_BENCHMARKS]


_BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
_QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti|P|Pi|E|Ei)?$"
_Quantity = Annotated[str, Field(pattern=_QUANTITY_PATTERN, max_length=64)]


class JobResources(K8sModel):
    """The evaluation container's resources: it only sends requests, so CPU and memory suffice."""

    requests: dict[str, _Quantity] = Field(default_factory=dict, max_length=8)
    """What the scheduler reserves, for example `{cpu: "1", memory: 2Gi}`."""
    limits: dict[str, _Quantity] = Field(default_factory=dict, max_length=8)
    """The most the container may use."""


class EvalJobSpec(K8sModel):
    """How the evaluation Job runs; unset fields take the operator's defaults."""

    image: str | None = Field(default=None, min_length=1, max_length=512)
    """The evaluator image (`shinsa eval run`); default: the operator's `SHINSA_EVALUATOR_IMAGE`."""
    resources: JobResources = defaulted(JobResources)
    """The evaluation container's requests and limits."""
    service_account_name: str | None = Field(default=None, pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """The Job's ServiceAccount (for example one allowed to read the datasets' bucket); default: the
    operator's `SHINSA_EVALUATOR_SERVICE_ACCOUNT`."""
    node_selector: dict[str, str] | None = Field(default=None, max_length=32)
    """Where the Job's pod may run; replaces the operator's `SHINSA_EVALUATOR_NODE_SELECTOR`."""
    tolerations: list[Toleration] | None = Field(default=None, max_length=32)
    """The taints the Job's pod tolerates; replace the operator's `SHINSA_EVALUATOR_TOLERATIONS`."""
    queue_name: str | None = Field(default=None, pattern=_DNS_LABEL_PATTERN, max_length=63)
    """A Kueue LocalQueue: the Job is labelled `kueue.x-k8s.io/queue-name` and waits for its quota."""
    active_deadline_seconds: int | None = Field(default=None, ge=1)
    """The longest the Job may run before it is stopped (phase Failed)."""
    backoff_limit: int = Field(default=2, ge=0, le=20)
    """Retries of a failed pod; a retry resumes from the checkpoint."""


class StorageSpec(K8sModel):
    """Where the run keeps its checkpoint and results on S3: `s3://<bucket>/<prefix>/<namespace>/<name>/<uid>/`."""

    bucket: str | None = Field(default=None, pattern=_BUCKET_PATTERN, max_length=63)
    """The bucket; default: the operator's `SHINSA_RESULTS_BUCKET`."""
    prefix: str = Field(default="evalruns", pattern=r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", max_length=512)
    """The key prefix under the bucket."""


class EvalRunSpec(K8sModel):
    """The desired evaluation."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="self == oldSelf",
            message="spec is immutable: to evaluate again or differently, create a new EvalRun",
            # A transition rule: only the API server sees the old object.
            holds=lambda m: True,
        ),
        CelRule(
            rule="!has(self.promote) || has(self.gates)",
            message="spec.promote requires spec.gates: a candidate is promoted only after passing gates",
            holds=lambda m: m.promote is None or m.gates is not None,
            field_path=".promote",
            reason="FieldValueForbidden",
        ),
        CelRule(
            rule=(
                "!has(self.gates) || self.gates.rules.all(r, !has(r.benchmark) || "
                "self.benchmarks.exists(b, b.name == r.benchmark || "
                f"(has(b.rubric) && '{RUBRIC_PREFIX}' + b.rubric.id == r.benchmark)))"
            ),
            message=(
                "every spec.gates.rules[].benchmark must be listed in spec.benchmarks "
                f"(a rubric benchmark as {RUBRIC_PREFIX}<rubric.id>)"
            ),
            holds=lambda m: (
                m.gates is None
                or all(
                    r.benchmark is None or any(b.results_key == r.benchmark for b in m.benchmarks)
                    for r in m.gates.rules
                )
            ),
            field_path=".gates",
            reason="FieldValueInvalid",
        ),
        CelRule(
            # A list-map keyed by name would refuse a second rubric benchmark; its results key is
            # `rubric/<id>`, so the rule compares those.
            rule=(
                "self.benchmarks.all(b, self.benchmarks.exists_one(c, c.name == b.name && "
                "(!has(b.rubric) || (has(c.rubric) && c.rubric.id == b.rubric.id))))"
            ),
            message=(
                "spec.benchmarks: each benchmark may be listed once, a rubric benchmark once per rubric.id"
            ),
            holds=lambda m: len({b.results_key for b in m.benchmarks}) == len(m.benchmarks),
            field_path=".benchmarks",
            reason="FieldValueDuplicate",
        ),
        CelRule(
            rule=(
                "(has(self.judges) && self.judges.size() > 0) || "
                + "self.benchmarks.all(b, "
                + " || ".join(f"b.name == '{n}'" for n in sorted(RULE_SCORED_BENCHMARKS))
                + ")"
            ),
            message="spec.judges is required: every benchmark but long-context is scored by a judge",
            holds=lambda m: bool(m.judges) or not _judged(m),
            field_path=".judges",
            reason="FieldValueRequired",
        ),
    )

    model: EvalTarget
    """The model to evaluate."""
    benchmarks: list[BenchmarkSpec] = Field(min_length=1, max_length=16)
    """The benchmarks to run, each at most once (a rubric benchmark once per `rubric.id`)."""
    judges: list[Judge] = Field(
        default_factory=list,
        max_length=8,
        json_schema_extra={
            "default": [],
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )
    """The judges that score the answers; the first is the primary judge, whose scores are the
    headline. With several, every answer is scored by each (a judge-swap sensitivity check). Only
    long-context runs without one."""
    profile: EvalProfile = Field(default=EvalProfile.SHINSA, json_schema_extra=_SHORT_ENUM)
    """Whose defaults fill the settings this spec leaves unset: `shinsa`, or `llm-jp-judge` for
    llm-jp-judge v2.0.0's generation sampling per benchmark (and per MT-Bench category), judge
    sampling, rating reading, attempts, error scoring and prompt formatting
    (docs/evaluation.md, "Coming from llm-jp-judge", has the table). It sets no prompt text:
    llm-jp-judge's system prompt and judge prompts come from `systemPrompt`, `prompts.system` and
    `promptFile`. An explicit field always wins."""
    answers: str | None = Field(default=None, pattern=DATASET_URI_PATTERN, max_length=2048)
    """Pre-generated answers to judge instead of asking the model, as dataset URIs are written (an
    absolute path, `s3://bucket/prefix` or `pvc://claim/path`): llm-jp-judge's generation output (a
    directory of `<benchmark>.jsonl` and `metadata.json`, or one such file) or a Shinsa results
    directory (its `generations.jsonl`, or that file). Every benchmark's every question must have
    an answer; the model is then never called."""
    sampling: Sampling = defaulted(Sampling)
    """Generation settings for every benchmark; a benchmark's `sampling`, then its `categorySampling`,
    override them."""
    repeats: int = Field(default=3, ge=1, le=20)
    """Independent generate-and-judge rounds; scores report their mean and standard deviation."""
    concurrency: int = Field(default=16, ge=1, le=1024)
    """Requests in flight at once, to the model and to each judge."""
    rate_limit: RateLimit | None = None
    """Limits on the requests to the model, and to each judge without its own `rateLimit`."""
    timeout_seconds: float = Field(default=600.0, gt=0, le=86400)
    """The time limit of one request."""
    retries: int = Field(default=4, ge=0, le=20)
    """Retries of a failed request (timeouts, connection errors, 408, 409, 425, 429 and 5xx answers)
    after the first attempt."""
    backoff_seconds: float = Field(default=1.0, ge=0, le=60)
    """The first backoff between retries; it doubles, with jitter, up to 60 seconds. A `Retry-After`
    answer replaces it."""
    max_response_bytes: int = Field(default=DEFAULT_MAX_RESPONSE_BYTES, ge=1024, le=64 * 1024 * 1024)
    """The largest model answer or judge reply accepted, in bytes of its text (answer and reasoning);
    a longer one is an item error, and is not stored. It bounds what a server that ignores
    `maxTokens` can write into the results."""
    max_error_rate: float = Field(default=0.05, ge=0, le=1)
    """The largest fraction of failed requests (after retries) a complete run may have; above it the
    run ends Incomplete and gates are not applied."""
    mlflow: MLflowSpec = defaulted(MLflowSpec)
    """Where results are logged."""
    gates: GatePolicy | None = None
    """Regression gates: the checks the candidate's results must pass, alone or against a baseline."""
    promote: Promotion | None = None
    """Promote the candidate when the gates pass. Requires gates."""
    job: EvalJobSpec = defaulted(EvalJobSpec)
    """How the evaluation Job runs (image, resources, placement, Kueue queue, deadline, retries)."""
    storage: StorageSpec = defaulted(StorageSpec)
    """Where checkpoint and results are kept on S3."""

    @field_validator("benchmarks")
    @classmethod
    def _unique_benchmarks(cls, benchmarks: list[BenchmarkSpec]) -> list[BenchmarkSpec]:
        seen: set[str] = set()
        for bench in benchmarks:
            key = bench.results_key
            if key in seen:
                field = "rubric.id" if bench.name == BenchmarkName.RUBRIC else "name"
                raise ValueError(
                    f"spec.benchmarks: duplicate benchmark {key!r}: each benchmark may be listed once"
                    + (f"; give each rubric benchmark its own {field}" if field == "rubric.id" else "")
                )
            seen.add(key)
        return benchmarks

    @field_validator("judges")
    @classmethod
    def _unique_judges(cls, judges: list[Judge]) -> list[Judge]:
        require_unique(judges, "name", "spec.judges")
        return judges


class EvalRunPhase(enum.StrEnum):
    """Where an EvalRun is in its life."""

    PENDING = "Pending"
    """Accepted; nothing started yet."""
    WAITING_FOR_TARGET = "WaitingForTarget"
    """The `deploymentRef` ModelDeployment is not Ready yet."""
    RUNNING = "Running"
    """The evaluation Job exists (running, or waiting for its pod or for quota)."""
    GATING = "Gating"
    """The Job succeeded; the gates are being decided."""
    PROMOTING = "Promoting"
    """Decided, with `spec.promote`: the registry version and alias are being written."""
    SUCCEEDED = "Succeeded"
    """Scores (and a decision, with gates) are in the status."""
    FAILED = "Failed"
    """The Job failed (configuration, crash, deadline, stopped)."""
    INCOMPLETE = "Incomplete"
    """Too many requests failed for the scores to be trusted; never Passed."""


class GateVerdict(enum.StrEnum):
    """The outcome of the regression gates."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"


class BenchmarkScore(K8sModel):
    """One benchmark's headline score (the primary judge, over the repeats)."""

    mean: float | None = None
    """The mean score."""
    std: float | None = None
    """The standard deviation over the repeats."""
    ci_low: float | None = None
    """The lower end of the confidence interval of the mean."""
    ci_high: float | None = None
    """The upper end of the confidence interval of the mean."""
    n: int | None = Field(default=None, ge=0)
    """Questions scored."""


class GateRow(K8sModel):
    """One rule of the gate table."""

    rule: str = Field(max_length=300)
    """The rule: its type, benchmark and metric (`superiority mt-bench-ja/score`)."""
    verdict: GateVerdict
    """Passed, Failed or Inconclusive."""
    observed: float | None = None
    """The candidate's mean, the paired difference candidate - baseline, or the rate checked."""
    bound: float | None = None
    """What `observed` is held against (threshold, -margin, 0, limit)."""
    ci_low: float | None = None
    """The lower end of the interval of `observed`."""
    ci_high: float | None = None
    """The upper end of the interval of `observed`."""
    n: int | None = Field(default=None, ge=0)
    """Paired questions (comparative rules) or the candidate's questions."""
    explanation: str = Field(default="", max_length=1000)
    """One line: why this verdict."""


class PromotionStatus(K8sModel):
    """What the promotion wrote to MLflow's registry."""

    model: str = Field(max_length=256)
    """The registered model."""
    version: str | None = Field(default=None, max_length=32)
    """The version created for this EvalRun (one per EvalRun, found again by its uid)."""
    alias: str = Field(max_length=255)
    """The alias moved to `version`."""
    previous_version: str | None = Field(default=None, max_length=32)
    """The version the alias pointed at before (what `shinsa promote rollback` goes back to)."""
    followers: list[str] = Field(default_factory=list, max_length=256)
    """The ModelDeployments (`namespace/name`) that served `models:/<model>@<alias>` when the alias
    moved, and so roll to the new version."""
    rolled: list[str] = Field(default_factory=list, max_length=256)
    """The followers seen serving `version` since (their `status.registeredModel`)."""


class EvalRunStatus(K8sStatusModel):
    """The observed state of an EvalRun, written by the operator."""

    observed_generation: int | None = Field(default=None, ge=0)
    """The `metadata.generation` this status describes."""
    phase: EvalRunPhase | None = None
    """Pending, WaitingForTarget, Running, Gating, Succeeded, Failed or Incomplete."""
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    """The latest observations, one per type: TargetReady, JobComplete, GatesEvaluated."""
    model: str | None = None
    """The model evaluated (deployment or served name), for display."""
    endpoint: str | None = None
    """The endpoint the evaluation ran against."""
    job_name: str | None = None
    """The evaluation Job."""
    results_uri: str | None = None
    """Where the Job writes its results (`s3://.../results`)."""
    mlflow_run_id: str | None = None
    """The MLflow run holding every metric and artifact of this evaluation."""
    mlflow_run_url: str | None = None
    """The MLflow UI page of that run."""
    scores: dict[str, BenchmarkScore] = Field(default_factory=dict, max_length=16)
    """Per benchmark: mean, std, interval and n of the primary judge's scores."""
    gates: list[GateRow] = Field(default_factory=list, max_length=64)
    """The gate table: one row per rule of `spec.gates.rules`."""
    baseline: str | None = None
    """The baseline the gates compared against (`EvalRun x`, `MLflow run y`)."""
    decision: GateVerdict | None = None
    """The gates' decision: Passed, Failed or Inconclusive. Written once; never re-decided."""
    promotion: PromotionStatus | None = None
    """With `spec.promote`, once the candidate was promoted: the version and alias written."""
    start_time: datetime | None = None
    """When the evaluation Job started."""
    completion_time: datetime | None = None
    """When the evaluation finished."""


class EvalRun(K8sResource):
    """An evaluation of a model: benchmarks answered by the model and scored by LLM judges over repeated
    rounds, logged to MLflow, optionally gated against a baseline and promoted when the gates pass."""

    plural: ClassVar[str] = "evalruns"
    singular: ClassVar[str] = "evalrun"
    short_names: ClassVar[tuple[str, ...]] = ("er",)
    printer_columns: ClassVar[tuple[PrinterColumn, ...]] = (
        PrinterColumn("Model", "string", ".status.model", "The model evaluated."),
        PrinterColumn("Phase", "string", ".status.phase", "Where the run is in its life."),
        PrinterColumn("JA", "number", ".status.scores.mt-bench-ja.mean", "Japanese MT-Bench mean."),
        PrinterColumn("EN", "number", ".status.scores.mt-bench.mean", "MT-Bench mean."),
        PrinterColumn("Decision", "string", ".status.decision", "The regression gates' decision."),
        AGE_COLUMN,
    )

    api_version: Literal["shinsa.dev/v1alpha1"] = "shinsa.dev/v1alpha1"
    kind: Literal["EvalRun"] = "EvalRun"
    spec: EvalRunSpec
    status: EvalRunStatus = Field(default_factory=EvalRunStatus)
