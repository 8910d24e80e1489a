"""Prometheus metrics of the operator, served on --metrics-port."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram

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

_phases: dict[str, str] = {}


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
