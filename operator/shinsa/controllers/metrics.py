"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

from shinsa.api import Condition, EvalRunPhase, EvalRunStatus, GateVerdict
from shinsa.api.lifecycle import EvalRunReason

RECONCILES = Counter("shinsa_reconcile_total", "Reconciles run, by resource kind.", ["kind"])
RECONCILE_ERRORS = Counter(
    "shinsa_reconcile_errors_total",
    "Reconciles that ended in an error, by resource kind and reason.",
    ["kind", "reason"],
)
RECONCILE_SECONDS = Histogram("shinsa_reconcile_duration_seconds", "Time spent in one reconcile.", ["kind"])
MODEL_DEPLOYMENTS = Gauge(
    "shinsa_model_deployments", "ModelDeployments by phase, as last written to their status.", ["phase"]
)

# The names, labels and meanings below are listed in docs/metrics.md; tests/unit/test_metrics.py
# holds the two equal, and the chart's alerts and dashboard to names served here.
EVAL_RUNS = Gauge(
    "shinsa_eval_runs",
    "EvalRuns in flight by phase, as last written to their status by this operator process.",
    ["phase"],
)
EVAL_RUNS_FINISHED = Counter(
    "shinsa_eval_runs_finished_total", "EvalRuns that reached a final phase, by that phase.", ["phase"]
)
GATE_DECISIONS = Counter(
    "shinsa_gate_decisions_total", "Gate decisions written to EvalRun statuses, by decision.", ["decision"]
)
PROMOTIONS = Counter(
    "shinsa_promotions_total", "Promotion steps that ended, by the Promoted condition's reason.", ["reason"]
)
STORE_ERRORS = Counter(
    "shinsa_store_errors_total",
    "Reads and writes the operator retries because MLflow or S3 did not answer, by store.",
    ["kind"],
)

FINAL_PHASES = (EvalRunPhase.SUCCEEDED, EvalRunPhase.FAILED, EvalRunPhase.INCOMPLETE)
# The Promoted reasons of a promotion step that ended (RegistryUnavailable is a retry, counted in
# STORE_ERRORS): every one a series from the start, so that increase() sees the first one.
PROMOTION_REASONS = (
    EvalRunReason.PROMOTION_DONE,
    EvalRunReason.NOT_PASSED,
    EvalRunReason.DISABLED,
    EvalRunReason.FORBIDDEN,
    EvalRunReason.NOT_PROMOTABLE,
    EvalRunReason.SUPERSEDED,
)
# registry: MLflow's model registry during promotion; results: a run's or a baseline's results in S3
# or MLflow while following the Job or gating.
STORE_ERROR_REASONS: dict[str, str] = {
    EvalRunReason.REGISTRY_UNAVAILABLE: "registry",
    EvalRunReason.RESULTS_UNAVAILABLE: "results",
}

for _phase in EvalRunPhase:
    if _phase in FINAL_PHASES:
        EVAL_RUNS_FINISHED.labels(_phase.value)
    else:
        EVAL_RUNS.labels(_phase.value)
for _verdict in GateVerdict:
    GATE_DECISIONS.labels(_verdict.value)
for _reason in PROMOTION_REASONS:
    PROMOTIONS.labels(_reason.value)
for _kind in STORE_ERROR_REASONS.values():
    STORE_ERRORS.labels(_kind)

_phases: dict[str, str] = {}
_eval_phases: dict[str, str] = {}


@contextmanager
def reconciling(kind: str) -> Iterator[None]:
    RECONCILES.labels(kind).inc()
    started = time.perf_counter()
    try:
        yield
    except Exception as exc:
        RECONCILE_ERRORS.labels(kind, type(exc).__name__).inc()
        raise
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.perf_counter() - started)


def record_phase(key: str, phase: str | None) -> None:
    """Keep the by-phase gauge equal to the current phases of all known ModelDeployments."""
    previous = _phases.pop(key, None)
    if previous is not None:
        MODEL_DEPLOYMENTS.labels(previous).dec()
    if phase is not None:
        _phases[key] = phase
        MODEL_DEPLOYMENTS.labels(phase).inc()


def record_eval_run(key: str, before: EvalRunStatus, after: EvalRunStatus) -> None:
    """Count what one EvalRun status write says: its phase, a first decision, and the conditions
    it just set to a retried store error. Called for every write, also one that changed nothing."""
    previous = _eval_phases.pop(key, None)
    if previous is not None:
        EVAL_RUNS.labels(previous).dec()
    phase = after.phase
    if phase is not None and phase not in FINAL_PHASES:
        _eval_phases[key] = phase.value
        EVAL_RUNS.labels(phase.value).inc()
    elif phase is not None and before.phase != phase:
        EVAL_RUNS_FINISHED.labels(phase.value).inc()
    if after.decision is not None and before.decision is None:
        GATE_DECISIONS.labels(after.decision.value).inc()
    for condition in _set_by_this_write(before.conditions, after.conditions):
        kind = STORE_ERROR_REASONS.get(condition.reason)
        if kind is not None:
            STORE_ERRORS.labels(kind).inc()


def _set_by_this_write(before: list[Condition], after: list[Condition]) -> list[Condition]:
    # set_condition returns the list with only the condition it set replaced by a new object, so
    # the new objects are what this write set, even when equal to what was there (a retry that
    # failed the same way again is one more error, not none).
    kept = {id(c) for c in before}
    return [c for c in after if id(c) not in kept]


def record_promotion(reason: str) -> None:
    PROMOTIONS.labels(reason).inc()


def forget_eval_run(key: str) -> None:
    """Drop a deleted EvalRun from the in-flight gauge."""
    previous = _eval_phases.pop(key, None)
    if previous is not None:
        EVAL_RUNS.labels(previous).dec()
