"""The regression-gate policy: what `spec.gates` of an EvalRun holds, and what `shinsa gate --policy`
reads from a YAML file. The decision itself is made by the pure `shinsa.gates` module.

A rule is one flat object with a `type` rather than a union of objects, because a CRD's structural
schema cannot express a discriminated union; CEL rules say which fields each type takes.
"""

from __future__ import annotations

import enum
from typing import ClassVar

from pydantic import Field, JsonValue

from shinsa.api.base import CelRule, K8sModel

_OBJECT_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
# `name@alias` of an MLflow registered model; MLflow allows most characters in names but not `@`.
MLFLOW_MODEL_ALIAS_PATTERN = r"^[^@\s/][^@]*@[A-Za-z][A-Za-z0-9_-]*$"
# Category names come from the user's dataset (often Japanese, sometimes with spaces), so a metric
# name is any text without leading or trailing space.
METRIC_PATTERN = r"^\S(.*\S)?$"
# CEL cost estimates treat a string without maxLength as megabytes long.
_SHORT: dict[str, JsonValue] = {"maxLength": 64}

HEADLINE_METRIC = "score"
"""The metric a rule compares when it names none: the benchmark's headline (primary-judge) score."""


class GateRuleType(enum.StrEnum):
    """What a gate rule checks."""

    MINIMUM = "minimum"
    """The candidate's mean of the metric is at least `threshold`."""
    NON_INFERIORITY = "nonInferiority"
    """The candidate is not worse than the baseline by more than `margin` (paired interval)."""
    SUPERIORITY = "superiority"
    """The candidate is better than the baseline (the paired interval lies above zero)."""
    MAX_ERROR_RATE = "maxErrorRate"
    """At most `limit` of the requests failed; above it the data is not evidence either way."""
    MAX_VIOLATION_RATE = "maxViolationRate"
    """At most `limit` of the safety answers were rated as violations (answer-carefully, or a rubric
    benchmark with a rate named `violation_rate`)."""


_COMPARATIVE = (GateRuleType.NON_INFERIORITY, GateRuleType.SUPERIORITY)


class LocalRef(K8sModel):
    """An object in the same namespace."""

    name: str = Field(pattern=_OBJECT_NAME_PATTERN, max_length=253)
    """The object's name."""


class BaselineRef(K8sModel):
    """The evaluation a candidate is compared against."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="[has(self.evalRunRef), has(self.mlflowRunId), has(self.mlflowModel)]"
            ".filter(x, x).size() == 1",
            message="spec.gates.baseline must set exactly one of evalRunRef, mlflowRunId or mlflowModel",
            holds=lambda m: [m.eval_run_ref, m.mlflow_run_id, m.mlflow_model].count(None) == 2,
        ),
    )

    eval_run_ref: LocalRef | None = None
    """A Succeeded EvalRun in this namespace that ran the compared benchmarks."""
    mlflow_run_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]+$", max_length=64)
    """An MLflow run logged by an earlier evaluation."""
    mlflow_model: str | None = Field(default=None, pattern=MLFLOW_MODEL_ALIAS_PATTERN, max_length=500)
    """`name@alias` of a registered model: the latest Succeeded evaluation of the version behind that
    alias (for example `llm-jp-4-8b@champion`)."""


class GateRule(K8sModel):
    """One check of the candidate's results, alone or against the baseline's."""

    cel_rules: ClassVar[tuple[CelRule, ...]] = (
        CelRule(
            rule="(self.type == 'minimum') == has(self.threshold)",
            message="spec.gates.rules[].threshold is required for a minimum rule and applies to no other",
            holds=lambda m: (m.type is GateRuleType.MINIMUM) == (m.threshold is not None),
            field_path=".threshold",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="(self.type == 'nonInferiority') == has(self.margin)",
            message="spec.gates.rules[].margin is required for a nonInferiority rule and applies to no other",
            holds=lambda m: (m.type is GateRuleType.NON_INFERIORITY) == (m.margin is not None),
            field_path=".margin",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="(self.type == 'maxErrorRate' || self.type == 'maxViolationRate') == has(self.limit)",
            message=(
                "spec.gates.rules[].limit is required for maxErrorRate and maxViolationRate rules "
                "and applies to no other"
            ),
            holds=lambda m: (
                (m.type in (GateRuleType.MAX_ERROR_RATE, GateRuleType.MAX_VIOLATION_RATE))
                == (m.limit is not None)
            ),
            field_path=".limit",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="self.type == 'maxErrorRate' || has(self.benchmark)",
            message="spec.gates.rules[].benchmark is required for every rule but maxErrorRate",
            holds=lambda m: m.type is GateRuleType.MAX_ERROR_RATE or m.benchmark is not None,
            field_path=".benchmark",
            reason="FieldValueRequired",
        ),
        CelRule(
            # Without a benchmark the rule above reports it; reading an absent field would make the
            # API server answer "no such key" instead.
            rule=(
                "self.type != 'maxViolationRate' || !has(self.benchmark) "
                "|| self.benchmark == 'answer-carefully' || self.benchmark.startsWith('rubric/')"
            ),
            # A rubric benchmark reports `violation_rate` when one of its rubric.rates is named so.
            message=(
                "spec.gates.rules[].benchmark of a maxViolationRate rule must be answer-carefully "
                "or a rubric benchmark (rubric/<id>)"
            ),
            holds=lambda m: (
                m.type is not GateRuleType.MAX_VIOLATION_RATE
                or m.benchmark is None
                or m.benchmark == "answer-carefully"
                or m.benchmark.startswith("rubric/")
            ),
            field_path=".benchmark",
            reason="FieldValueInvalid",
        ),
        CelRule(
            rule="!has(self.metric) || !(self.type == 'maxErrorRate' || self.type == 'maxViolationRate')",
            message="spec.gates.rules[].metric does not apply to maxErrorRate and maxViolationRate rules",
            holds=lambda m: (
                m.metric is None
                or m.type not in (GateRuleType.MAX_ERROR_RATE, GateRuleType.MAX_VIOLATION_RATE)
            ),
            field_path=".metric",
            reason="FieldValueForbidden",
        ),
    )

    type: GateRuleType = Field(json_schema_extra=_SHORT)
    """minimum, nonInferiority, superiority, maxErrorRate or maxViolationRate."""
    benchmark: str | None = Field(default=None, min_length=1, max_length=64)
    """The benchmark checked; it must be listed in spec.benchmarks. maxErrorRate without it checks the
    whole run."""
    metric: str | None = Field(default=None, pattern=METRIC_PATTERN, max_length=250)
    """The metric: `score` (the default, the headline score), `category/<name>`, `criterion/<name>`,
    `violation_rate`, `<length>/accuracy` (long-context), `judge/<name>` (another judge's score)."""
    threshold: float | None = None
    """minimum: the least mean the candidate must reach."""
    margin: float | None = Field(default=None, ge=0)
    """nonInferiority: how much worse than the baseline (in the metric's units) still passes."""
    limit: float | None = Field(default=None, ge=0, le=1)
    """maxErrorRate, maxViolationRate: the largest fraction allowed."""

    @property
    def metric_name(self) -> str:
        return self.metric or HEADLINE_METRIC

    @property
    def compares(self) -> bool:
        """Whether the rule needs the baseline's results."""
        return self.type in _COMPARATIVE


class GatePolicy(K8sModel):
    """Regression gates: the rules a candidate's results must pass before it may be promoted.

    Comparative rules judge the paired difference candidate - baseline over the questions both
    answered, with a bootstrap that resamples whole questions. The decision is Failed when any rule
    fails, else Inconclusive when any rule cannot decide, else Passed.
    """

    baseline: BaselineRef | None = None
    """What comparative rules compare against; without it they are Inconclusive."""
    confidence: float = Field(default=0.95, ge=0.5, lt=1)
    """The confidence level of the paired bootstrap intervals."""
    min_pairs: int = Field(default=20, ge=1, le=100000)
    """The fewest questions both runs scored for a comparative rule to decide anything."""
    rules: list[GateRule] = Field(min_length=1, max_length=64)
    """The checks; every one must pass."""
