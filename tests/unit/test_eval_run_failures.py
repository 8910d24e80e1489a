"""How the EvalRun controller reports a failed evaluator and a baseline it could not read (pure)."""

from __future__ import annotations

import pytest

from shinsa.api import EvalRunPhase, EvalRunStatus
from shinsa.api.gates import BaselineRef
from shinsa.api.lifecycle import EvalRunReason
from shinsa.controllers.eval_run import baseline_problem, failure_of
from shinsa.evaluation.results import ExitCode
from shinsa.registry import evaluations

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("code", "phase", "reason"),
    [
        (ExitCode.CONFIG, EvalRunPhase.FAILED, EvalRunReason.CONFIG_REFUSED),
        (ExitCode.INCOMPLETE, EvalRunPhase.INCOMPLETE, EvalRunReason.INCOMPLETE),
        (ExitCode.TERMINATED, EvalRunPhase.FAILED, EvalRunReason.STOPPED),
        (ExitCode.CRASH, EvalRunPhase.FAILED, EvalRunReason.JOB_FAILED),
        (None, EvalRunPhase.FAILED, EvalRunReason.JOB_FAILED),
    ],
)
def test_a_failed_job_is_reported_by_the_evaluators_exit_code(
    code: int | None, phase: EvalRunPhase, reason: EvalRunReason
) -> None:
    assert failure_of(code, "") == (phase, reason)


def registry_error(ref: BaselineRef, status: EvalRunStatus | None = None) -> evaluations.ResultsFetchError:
    """The registry's own error for `ref` (no server is asked: the lookup and the store decide)."""
    with pytest.raises(evaluations.ResultsFetchError) as raised:
        evaluations.resolve_baseline(ref, "models", lambda _ns, _name: status, evaluations.ResultsStore())
    return raised.value


def test_a_baseline_that_is_not_there_is_final_and_named_once() -> None:
    missing = BaselineRef.model_validate({"evalRunRef": {"name": "nowhere"}})
    problem = baseline_problem(missing, "models", registry_error(missing))
    assert not problem.retry
    assert problem.message == "baseline unavailable: EvalRun models/nowhere does not exist"

    running = registry_error(missing, EvalRunStatus(phase=EvalRunPhase.RUNNING))
    assert baseline_problem(missing, "models", running).message == (
        "baseline unavailable: EvalRun models/nowhere is Running, not Succeeded"
    )

    alias = BaselineRef.model_validate({"mlflowModel": "llm-jp-4-8b@champion"})
    message = baseline_problem(alias, "models", registry_error(alias)).message
    assert message.count("mlflowModel llm-jp-4-8b@champion") == 1


def test_an_unavailable_store_is_retried_and_what_led_there_is_named() -> None:
    ref = BaselineRef.model_validate({"evalRunRef": {"name": "champion"}})
    where = "s3://runs/evalruns/models/champion/5c8a/results/scores.json"
    down = evaluations.ResultsUnavailable(f"{where}: S3 did not answer: timeout", source=where)
    problem = baseline_problem(ref, "models", down)
    assert problem.retry
    assert (
        problem.message
        == f"baseline unavailable, retrying: EvalRun champion: {where}: S3 did not answer: timeout"
    )

    run = BaselineRef.model_validate({"mlflowRunId": "abc123"})
    mlflow_down = evaluations.ResultsUnavailable(
        "MLflow run abc123: MLflow at http://mlflow:5000 did not answer: refused", source="MLflow run abc123"
    )
    assert (
        baseline_problem(run, "models", mlflow_down).message
        == f"baseline unavailable, retrying: {mlflow_down}"
    )
