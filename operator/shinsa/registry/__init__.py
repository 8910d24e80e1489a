"""The MLflow adapter: registered models, evaluations' runs, promotions and their history."""

from __future__ import annotations


def load_mlflow() -> None:
    """Import MLflow's client now, in the calling thread.

    The adapter imports MLflow where it is used, so commands that never touch the registry do not
    pay for it. A long-running process with worker threads (the operator: kopf runs handlers and
    the resync on executor threads) must call this before they start: two threads importing the
    package at once can leave one with a half-initialised `mlflow` ("partially initialized
    module 'mlflow' has no attribute 'version'"), and every later call in that process fails.
    """
    import mlflow.exceptions
    import mlflow.tracking  # noqa: F401
