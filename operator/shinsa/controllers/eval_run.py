"""kopf handlers for EvalRun: read -> wait for the target -> apply ConfigMap and Job -> follow the Job
-> read the results -> gate -> status. Each step is decided from what the cluster and the status
already hold, so a restarted operator continues where the last one stopped: the Job's name is fixed
(one Job), and a decision once in the status is final (phase Succeeded is never looked at again).
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import kopf
from pydantic import ValidationError

from shinsa.api import (
    BenchmarkScore,
    ConditionStatus,
    EvalRun,
    EvalRunPhase,
    EvalRunStatus,
    GateRow,
    GateVerdict,
    ModelDeployment,
)
from shinsa.api.conditions import get_condition, set_condition
from shinsa.api.gates import BaselineRef
from shinsa.api.lifecycle import EvalRunCondition as Cond
from shinsa.api.lifecycle import EvalRunReason as Reason
from shinsa.api.lifecycle import ModelDeploymentCondition
from shinsa.api.model_deployment import RopeScaling
from shinsa.controllers import kube, metrics
from shinsa.controllers.eval_desired import (
    EvalSettings,
    ModelVersion,
    engine_config,
    results_uri,
    run_storage,
    secret_env,
    served_revision,
    served_version,
)
from shinsa.controllers.promotion import (
    RegistryUnavailable,
    promote_run,
    rolled_followers,
    rollout_pending,
)
from shinsa.controllers.settings import OperatorSettings, from_memo
from shinsa.controllers.status import EventPolicy, ObjectLocks, StatusWriter, invalid_spec_message
from shinsa.evaluation.results import ExitCode, RunResults
from shinsa.gates import GateDecision, evaluate_gates
from shinsa.registry import evaluations
from shinsa.render.job import (
    EVAL_RUN_LABEL,
    ExitPolicy,
    JobDefaults,
    job_name,
    render_config_map,
    render_job,
)

PLURAL = "evalruns"
MD_PLURAL = "modeldeployments"
APPLY_RETRY_S = 20
TERMINAL = frozenset({EvalRunPhase.SUCCEEDED, EvalRunPhase.FAILED, EvalRunPhase.INCOMPLETE})
MESSAGE_LIMIT = 1000
# A refused config and too many failed requests end the Job at once (a retry changes neither); a
# stopped evaluator resumes in the replacement pod.
EXITS = ExitPolicy(final=(ExitCode.CONFIG, ExitCode.INCOMPLETE), stopped=ExitCode.TERMINATED)

STATUS = StatusWriter(
    PLURAL,
    EventPolicy(expected_false=frozenset({Reason.WAITING_FOR_DEPLOYMENT, Reason.DISABLED})),
)
_locks = ObjectLocks()
_log = logging.getLogger(__name__)


def _store(settings: OperatorSettings) -> evaluations.ResultsStore:
    return evaluations.ResultsStore(
        tracking_uri=settings.mlflow_tracking_uri, s3_endpoint_url=settings.s3_endpoint_url
    )


def fetch_results(uri: str, settings: OperatorSettings) -> RunResults:
    """The typed results a run uploaded under `uri` (`s3://bucket/prefix`)."""
    return evaluations.fetch_results(_store(settings), results_uri=uri)


def resolve_baseline(run: EvalRun, ref: BaselineRef, settings: OperatorSettings) -> RunResults:
    """The results of the baseline `ref` of `run`; raises `evaluations.ResultsFetchError`."""

    def lookup(namespace: str, name: str) -> EvalRunStatus | None:
        body = kube.get_custom(PLURAL, namespace, name)
        return None if body is None else EvalRun.from_body(body).status

    return evaluations.resolve_baseline(ref, run.metadata.namespace or "", lookup, _store(settings))


def _record_decision(
    results: RunResults,
    decision: GateDecision,
    baseline: RunResults | None,
    described: str | None,
    settings: OperatorSettings,
    tracking: str | None,
) -> None:
    # MLflow's copy of the decision; the status holds the decision of record, so an MLflow outage
    # only costs the tags (logged), never a second, different decision.
    if not results.mlflow_run_id or not tracking:
        return
    try:
        evaluations.record_decision(
            results.mlflow_run_id,
            decision.model_dump(mode="json"),
            baseline.mlflow_run_id if baseline else None,
            tracking_uri=tracking,
            baseline=described,
        )
    except evaluations.ResultsFetchError as exc:
        _log.warning("tagging MLflow run %s with the decision failed: %s", results.mlflow_run_id, exc)


# -- pure pieces --------------------------------------------------------------------------------------


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def scores_of(results: RunResults) -> dict[str, BenchmarkScore]:
    return {
        name: BenchmarkScore(
            mean=_finite(b.mean),
            std=_finite(b.std),
            ci_low=_finite(b.ci_low),
            ci_high=_finite(b.ci_high),
            n=b.n_questions,
        )
        for name, b in results.benchmarks.items()
    }


def gate_rows(decision: GateDecision) -> list[GateRow]:
    rows = []
    for r in decision.rules:
        target = "/".join(part for part in (r.benchmark, r.metric) if part)
        rows.append(
            GateRow(
                rule=f"{r.type.value} {target}".strip(),
                verdict=r.verdict,
                observed=_finite(r.observed),
                bound=_finite(r.bound),
                ci_low=_finite(r.ci_low),
                ci_high=_finite(r.ci_high),
                n=r.n_pairs if r.n_pairs is not None else r.n_questions,
                explanation=r.explanation[:MESSAGE_LIMIT],
            )
        )
    return rows


def run_page(tracking_uri: str | None, results: RunResults) -> str | None:
    """The MLflow UI page of the evaluation's run, where the engine logged one to a server."""
    if not tracking_uri or not results.mlflow_run_id or not results.mlflow_experiment_id:
        return None
    return evaluations.mlflow_run_url(tracking_uri, results.mlflow_experiment_id, results.mlflow_run_id)


@dataclass(frozen=True)
class BaselineProblem:
    """A baseline that could not be had, as the run reports it."""

    retry: bool
    """MLflow or S3 did not answer: the run stays Gating and asks again. Otherwise the baseline
    does not exist or is not usable, which asking again does not change: the decision is
    Inconclusive."""
    message: str


def baseline_problem(
    ref: BaselineRef, namespace: str, error: evaluations.ResultsFetchError
) -> BaselineProblem:
    """How the failure to read the baseline `ref` is reported. The registry's messages start with
    what they looked for; the baseline as the policy names it goes in front only when that was
    something else (the S3 object or MLflow run an EvalRun or alias led to)."""
    own = {
        f"EvalRun {namespace}/{ref.eval_run_ref.name}" if ref.eval_run_ref else None,
        f"MLflow run {ref.mlflow_run_id}" if ref.mlflow_run_id else None,
        f"mlflowModel {ref.mlflow_model}" if ref.mlflow_model else None,
    }
    text = str(error)
    if error.source not in own:
        text = f"{evaluations.describe_baseline(ref)}: {text}"
    if error.retryable:
        return BaselineProblem(True, f"baseline unavailable, retrying: {text}")
    return BaselineProblem(False, f"baseline unavailable: {text}")


def failure_of(exit_code: int | None, message: str) -> tuple[EvalRunPhase, Reason]:
    """The phase and JobComplete reason of a failed evaluator, by its exit code (`ExitCode`)."""
    if exit_code == ExitCode.INCOMPLETE:
        return EvalRunPhase.INCOMPLETE, Reason.INCOMPLETE
    if exit_code == ExitCode.CONFIG:
        return EvalRunPhase.FAILED, Reason.CONFIG_REFUSED
    if exit_code == ExitCode.TERMINATED:
        return EvalRunPhase.FAILED, Reason.STOPPED
    return EvalRunPhase.FAILED, Reason.JOB_FAILED


# -- the reconcile -------------------------------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    # The Job's timestamps are RFC 3339 with a Z, which fromisoformat reads from Python 3.11 on.
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _job_condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == type_ and condition.get("status") == "True":
            return dict(condition)
    return None


def _last_termination(namespace: str, name: str) -> tuple[int | None, str]:
    """The exit code and termination message of the Job's most recently finished evaluator."""
    pods = kube.list_pods(namespace, {"batch.kubernetes.io/job-name": name})
    finished = []
    for pod in pods:
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                finished.append(terminated)
    if not finished:
        return None, ""
    last = max(finished, key=lambda t: str(t.get("finishedAt") or ""))
    return last.get("exitCode"), str(last.get("message") or last.get("reason") or "").strip()


class _Step:
    """One reconcile's view: the run, its status as last written, and the writer."""

    def __init__(self, body: dict[str, Any], run: EvalRun) -> None:
        self.body = body
        self.run = run
        self.status = run.status

    def write(self, **update: Any) -> None:
        conditions = update.pop("conditions", None)
        after = self.status.model_copy(update=update)
        if conditions is not None:
            after = after.model_copy(update={"conditions": conditions})
        STATUS.write(self.body, self.status, after)
        metrics.record_eval_run(f"{self.run.metadata.namespace}/{self.run.metadata.name}", self.status, after)
        self.status = after

    def condition(self, type_: Cond, status: bool | None, reason: Reason, message: str) -> list[Any]:
        return set_condition(
            self.status.conditions,
            type_,
            ConditionStatus.UNKNOWN if status is None else status,
            reason,
            message[:MESSAGE_LIMIT],
            observed_generation=self.run.metadata.generation,
        )


def _target(
    step: _Step,
) -> tuple[str, str | None, ModelVersion | None, str | None, RopeScaling | None] | None:
    """(endpoint, served name of a deployment, the registered version and the revision it serves,
    its RoPE scaling), or None after reporting what the run waits for."""
    model = step.run.spec.model
    if model.endpoint is not None:
        step.write(
            conditions=step.condition(Cond.TARGET_READY, True, Reason.ENDPOINT_GIVEN, model.endpoint),
            model=model.served_name,
        )
        return model.endpoint, None, None, None, None
    assert model.deployment_ref is not None  # a CEL rule: exactly one of the two
    name = model.deployment_ref.name
    body = kube.get_custom(MD_PLURAL, step.run.metadata.namespace or "", name)
    waiting = f"ModelDeployment {name}"
    if body is None:
        waiting += " does not exist"
    else:
        md = ModelDeployment.from_body(body)
        ready = get_condition(md.status.conditions, ModelDeploymentCondition.READY)
        if ready is not None and ready.status == ConditionStatus.TRUE and md.status.endpoint:
            served = md.spec.model.served_name or name
            step.write(
                conditions=step.condition(
                    Cond.TARGET_READY, True, Reason.DEPLOYMENT_READY, md.status.endpoint
                ),
                model=model.served_name or served,
            )
            rope = md.spec.serving.rope_scaling
            return md.status.endpoint, served, served_version(md), served_revision(md), rope
        waiting += " is not Ready" + (f" ({ready.reason}: {ready.message})" if ready else "")
    step.write(
        phase=EvalRunPhase.WAITING_FOR_TARGET,
        conditions=step.condition(Cond.TARGET_READY, False, Reason.WAITING_FOR_DEPLOYMENT, waiting),
        model=name,
    )
    return None


def _fail(step: _Step, phase: EvalRunPhase, reason: Reason, message: str) -> None:
    conditions = step.condition(Cond.JOB_COMPLETE, False, reason, message)
    # What a run that ended without results never gets to: each step it asked for says so.
    skipped = [
        (Cond.GATES_EVALUATED, Reason.NOT_EVALUATED, "nothing to gate", step.run.spec.gates),
        (Cond.PROMOTED, Reason.NOT_PASSED, "nothing was promoted", step.run.spec.promote),
    ]
    for type_, why, what, asked in skipped:
        if asked is not None:
            conditions = set_condition(
                conditions,
                type_,
                False,
                why,
                f"the run ended {phase.value}: {what}",
                observed_generation=step.run.metadata.generation,
            )
    step.write(phase=phase, conditions=conditions)


def _promote(step: _Step, settings: OperatorSettings) -> None:
    try:
        outcome = promote_run(step.run.model_copy(update={"status": step.status}), settings)
    except RegistryUnavailable as exc:
        # Still Promoting: the resync (and kopf, for the create handler) asks again.
        step.write(conditions=step.condition(Cond.PROMOTED, None, Reason.REGISTRY_UNAVAILABLE, str(exc)))
        raise kopf.TemporaryError(str(exc), delay=APPLY_RETRY_S) from None
    step.write(
        phase=EvalRunPhase.SUCCEEDED,
        promotion=outcome.promotion,
        conditions=step.condition(Cond.PROMOTED, outcome.promoted, outcome.reason, outcome.message),
    )
    metrics.record_promotion(outcome.reason)


def _decided(step: _Step) -> EvalRunPhase:
    # With spec.promote the decision is followed by the promotion step before the run ends.
    return EvalRunPhase.PROMOTING if step.run.spec.promote is not None else EvalRunPhase.SUCCEEDED


def _gate(step: _Step, results: RunResults, settings: OperatorSettings) -> None:
    policy = step.run.spec.gates
    if policy is None:
        step.write(phase=EvalRunPhase.SUCCEEDED)
        return
    step.write(phase=EvalRunPhase.GATING)
    baseline: RunResults | None = None
    described: str | None = None
    if policy.baseline is not None:
        described = evaluations.describe_baseline(policy.baseline)
        try:
            baseline = resolve_baseline(step.run, policy.baseline, settings)
        except evaluations.ResultsFetchError as exc:
            problem = baseline_problem(policy.baseline, step.run.metadata.namespace or "", exc)
            if problem.retry:
                # Still Gating: the resync (and kopf, for the create handler) asks again.
                step.write(
                    conditions=step.condition(
                        Cond.GATES_EVALUATED, None, Reason.RESULTS_UNAVAILABLE, problem.message
                    )
                )
                raise kopf.TemporaryError(problem.message, delay=APPLY_RETRY_S) from None
            step.write(
                phase=_decided(step),
                decision=GateVerdict.INCONCLUSIVE,
                baseline=None,
                conditions=step.condition(Cond.GATES_EVALUATED, True, Reason.INCONCLUSIVE, problem.message),
            )
            if step.run.spec.promote is not None:
                _promote(step, settings)
            return
    decision = evaluate_gates(policy, results, baseline)
    tracking = step.run.spec.mlflow.tracking_uri or settings.mlflow_tracking_uri
    _record_decision(results, decision, baseline, described, settings, tracking)
    step.write(
        phase=_decided(step),
        decision=decision.decision,
        gates=gate_rows(decision),
        baseline=described,
        conditions=step.condition(
            Cond.GATES_EVALUATED, True, Reason(decision.decision.value), decision.summary()
        ),
    )
    if step.run.spec.promote is not None:
        _promote(step, settings)


def reconcile_sync(body: dict[str, Any], settings: OperatorSettings) -> None:
    run = EvalRun.from_body(body)
    if run.status.phase in TERMINAL:
        # A finished run is never evaluated or decided again; a promoted one only notes which of
        # the alias' followers serve its version by now.
        promotion = run.status.promotion
        if promotion is not None and rollout_pending(promotion, run.status.completion_time):
            rolled = rolled_followers(promotion)
            if rolled != promotion.rolled:
                _Step(body, run).write(promotion=promotion.model_copy(update={"rolled": rolled}))
        return
    step = _Step(body, run)
    if step.status.phase is None:
        step.write(phase=EvalRunPhase.PENDING, observed_generation=run.metadata.generation)
    namespace = run.metadata.namespace or ""
    name = job_name(run)

    if step.status.phase == EvalRunPhase.PROMOTING:
        # Decided before a restart or a registry outage: promote (again; it is idempotent).
        _promote(step, settings)
        return
    if step.status.phase == EvalRunPhase.GATING:
        # A restart while gating: the results were read already; read them again and decide.
        if step.status.results_uri:
            _gate(step, fetch_results(step.status.results_uri, settings), settings)
        return

    job = kube.get_job(namespace, name)
    if job is None:
        if step.status.job_name:
            _fail(step, EvalRunPhase.FAILED, Reason.STOPPED, f"Job {name} was deleted before it finished")
            return
        target = _target(step)
        if target is None:
            return
        endpoint, served, version, revision, rope_scaling = target
        eval_settings = EvalSettings(
            tracking_uri=settings.mlflow_tracking_uri, results_bucket=settings.results_bucket
        )
        try:
            config = engine_config(
                run,
                endpoint,
                eval_settings,
                served_name=served,
                version=version,
                revision=revision,
                rope_scaling=rope_scaling,
            )
        except (ValueError, ValidationError) as exc:
            _fail(step, EvalRunPhase.FAILED, Reason.CONFIG_INVALID, str(exc))
            return
        storage = run_storage(run, settings.results_bucket)
        defaults = JobDefaults(
            image=settings.evaluator_image,
            service_account=settings.evaluator_service_account,
            node_selector=dict(settings.evaluator_node_selector),
            tolerations=settings.evaluator_tolerations,
            s3_endpoint_url=settings.s3_endpoint_url,
            env_secret=settings.evaluator_env_secret,
        )
        try:
            kube.apply(render_config_map(run, config.to_k8s()))
            job = kube.apply(
                render_job(run, config.engine.output_dir, secret_env(run), defaults, exits=EXITS)
            )
        except (kube.Rejected, kube.MissingAPI) as exc:
            step.write(conditions=step.condition(Cond.JOB_COMPLETE, None, Reason.JOB_REJECTED, str(exc)))
            raise kopf.TemporaryError(str(exc), delay=APPLY_RETRY_S) from None
        step.write(
            phase=EvalRunPhase.RUNNING,
            job_name=name,
            endpoint=endpoint,
            results_uri=results_uri(storage) if storage else None,
            conditions=step.condition(Cond.JOB_COMPLETE, None, Reason.JOB_PENDING, f"Job {name} created"),
        )
        job = kube.get_job(namespace, name) or {}
    _follow(step, job, settings)


def _follow(step: _Step, job: dict[str, Any], settings: OperatorSettings) -> None:
    namespace = step.run.metadata.namespace or ""
    name = job["metadata"]["name"] if job.get("metadata") else job_name(step.run)
    status = job.get("status") or {}
    if _job_condition(job, "Complete") or _job_condition(job, "SuccessCriteriaMet"):
        if not step.status.results_uri:
            _fail(step, EvalRunPhase.FAILED, Reason.JOB_FAILED, "no results bucket configured")
            return
        try:
            results = fetch_results(step.status.results_uri, settings)
        except evaluations.ResultsFetchError as exc:
            step.write(
                conditions=step.condition(Cond.JOB_COMPLETE, None, Reason.RESULTS_UNAVAILABLE, str(exc))
            )
            raise kopf.TemporaryError(str(exc), delay=APPLY_RETRY_S) from None
        tracking = step.run.spec.mlflow.tracking_uri or settings.mlflow_tracking_uri
        step.write(
            scores=scores_of(results),
            mlflow_run_id=results.mlflow_run_id,
            mlflow_run_url=run_page(tracking, results),
            completion_time=_time(status.get("completionTime")),
            conditions=step.condition(
                Cond.JOB_COMPLETE, True, Reason.SUCCEEDED, f"{results.items} items, {results.errors} errors"
            ),
        )
        _gate(step, results, settings)
        return
    failed = _job_condition(job, "Failed") or _job_condition(job, "FailureTarget")
    if failed:
        exit_code, message = _last_termination(namespace, name)
        phase, reason = failure_of(exit_code, message)
        why = failed.get("reason") or "Failed"
        text = f"Job {name} {why}" + (f", exit code {exit_code}" if exit_code is not None else "")
        # A log tail (FallbackToLogsOnError) ends with why: keep its end within the message limit.
        _fail(step, phase, reason, f"{text}: {message[len(text) + 2 - MESSAGE_LIMIT :]}" if message else text)
        return
    if job.get("spec", {}).get("suspend"):
        queue = job["metadata"].get("labels", {}).get("kueue.x-k8s.io/queue-name", "")
        reason, message = Reason.QUOTA_PENDING, f"Job {name} waits for quota in Kueue queue {queue}"
    elif status.get("ready") or status.get("active"):
        reason, message = Reason.JOB_RUNNING, f"Job {name} runs the evaluator"
    else:
        reason, message = Reason.JOB_PENDING, f"Job {name} waits for its pod"
    step.write(
        phase=EvalRunPhase.RUNNING,
        start_time=step.status.start_time or _time(status.get("startTime")),
        conditions=step.condition(Cond.JOB_COMPLETE, None, reason, message),
    )


def _report_invalid(body: dict[str, Any], error: ValidationError) -> None:
    generation = body["metadata"].get("generation")
    message = invalid_spec_message(error)
    conditions = set_condition(
        [], Cond.JOB_COMPLETE, False, Reason.CONFIG_INVALID, message, observed_generation=generation
    )
    status = EvalRunStatus(observed_generation=generation, phase=EvalRunPhase.FAILED, conditions=conditions)
    STATUS.report_invalid(body, status, Reason.CONFIG_INVALID, message)


async def _reconcile(key: tuple[str, str], body: dict[str, Any] | None, settings: OperatorSettings) -> None:
    async with _locks[key]:
        # Read again under the lock: another handler may have written the status since.
        fresh = await asyncio.to_thread(kube.get_custom, PLURAL, *key)
        if fresh is None:
            _locks.forget(key)
            metrics.forget_eval_run("/".join(key))
            return
        try:
            with metrics.reconciling("EvalRun"):
                await asyncio.to_thread(reconcile_sync, fresh, settings)
        except ValidationError as exc:
            await asyncio.to_thread(_report_invalid, fresh, exc)
            raise kopf.PermanentError(f"spec does not validate: {exc}") from None


@kopf.on.resume(kube.GROUP, kube.VERSION, PLURAL)
@kopf.on.create(kube.GROUP, kube.VERSION, PLURAL)
async def reconcile(body: kopf.Body, name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile((namespace or "", name), dict(body), from_memo(memo))


@kopf.on.event("batch", "v1", "jobs", labels={EVAL_RUN_LABEL: kopf.PRESENT})
async def job_changed(namespace: str | None, labels: kopf.Labels, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile((namespace or "", labels[EVAL_RUN_LABEL]), None, from_memo(memo))


def _watching_rollout(body: dict[str, Any]) -> bool:
    # Every finished run is listed on every round: only a promoted one is worth parsing.
    if not (body.get("status") or {}).get("promotion"):
        return False
    try:
        status = EvalRun.from_body(body).status
    except ValidationError:
        return False  # reported as invalid when it was created; nothing was promoted
    return rollout_pending(status.promotion, status.completion_time)


async def _resync(settings: OperatorSettings, namespaces: tuple[str, ...], logger: kopf.Logger) -> None:
    # One loop rather than kopf timers, which hold every EvalRun with a finalizer: waiting runs see
    # their ModelDeployment become Ready, and running ones a Job event that was missed.
    while True:
        await asyncio.sleep(settings.evalrun_resync_s)
        try:
            bodies = await asyncio.to_thread(kube.list_custom, PLURAL, namespaces)
        except Exception as exc:  # the API server may be briefly away; the next round tries again
            logger.warning("listing EvalRuns to resync failed: %s", exc)
            continue
        for listed in bodies:
            listed_status = listed.get("status") or {}
            if listed_status.get("phase") in TERMINAL and not _watching_rollout(listed):
                continue
            key = (listed["metadata"]["namespace"], listed["metadata"]["name"])
            try:
                await _reconcile(key, None, settings)
            except kopf.PermanentError:
                pass
            except Exception as exc:  # one run's trouble must not stop the others' rounds
                logger.warning("resyncing EvalRun %s/%s: %s", *key, exc)


@kopf.on.startup()
async def start_resync(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    namespaces = tuple(memo.get("namespaces") or ())
    memo["evalrun_resync"] = asyncio.create_task(_resync(from_memo(memo), namespaces, logger))


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = memo.get("evalrun_resync")
    if task is not None:
        task.cancel()
