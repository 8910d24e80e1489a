"""The promotion step of an EvalRun: after a Passed decision, with `spec.promote`, check the
PromotionPolicies (`shinsa.promotion.authorize`), register the candidate and move the alias
(`shinsa.registry.promotion`), and name the ModelDeployments that follow the alias.

It reads its inputs from the EvalRun's status as written (the decision, the scores, the MLflow run),
so a restart while Promoting repeats it with the same inputs; the registry side makes that
repetition harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.rest import ApiException

from shinsa.api import EvalRun, GateVerdict, ModelDeployment, PromotionPolicy, PromotionStatus
from shinsa.api.lifecycle import EvalRunReason as Reason
from shinsa.controllers import kube
from shinsa.controllers.eval_desired import served_revision
from shinsa.controllers.settings import OperatorSettings
from shinsa.controllers.sources import SERVABLE_SCHEMES
from shinsa.evaluation.mlflow_log import TAG_MODEL_VERSION, TAG_REGISTERED_MODEL
from shinsa.promotion import authorize
from shinsa.registry import promotion as registry
from shinsa.registry.evaluations import TAG_GATE_BASELINE
from shinsa.registry.models import TAG_MODEL_REVISION

MD_PLURAL = "modeldeployments"
POLICY_PLURAL = "promotionpolicies"


@dataclass(frozen=True)
class Outcome:
    """What the step ends with: the Promoted condition, and what was written."""

    promoted: bool
    reason: Reason
    message: str
    promotion: PromotionStatus | None = None


class RegistryUnavailable(Exception):
    """MLflow did not answer; the run stays Promoting and the step is tried again."""


def _candidate(run: EvalRun) -> tuple[str, dict[str, str]] | str:
    """(the source URI to register, version tags naming what it was), or why there is none."""
    ref = run.spec.model.deployment_ref
    if ref is None:
        return "spec.model is an endpoint: there is no model source to register (use deploymentRef)"
    body = kube.get_custom(MD_PLURAL, run.metadata.namespace or "", ref.name)
    if body is None:
        return f"ModelDeployment {ref.name} no longer exists: its model source is unknown"
    md = ModelDeployment.from_body(body)
    tags: dict[str, str] = {}
    if md.status.registered_model is not None:
        # A candidate served from the registry already: the same source, noted where it came from.
        source = md.status.registered_model.source
        tags[TAG_REGISTERED_MODEL] = md.status.registered_model.name
        tags[TAG_MODEL_VERSION] = md.status.registered_model.version
    else:
        source = md.spec.model.uri
    if not source.startswith(SERVABLE_SCHEMES):
        return (
            f"ModelDeployment {ref.name} serves {source}, which no ModelDeployment can load from the registry"
        )
    if revision := served_revision(md):
        tags[TAG_MODEL_REVISION] = revision
    return source, tags


def _policies() -> list[dict[str, Any]]:
    try:
        return kube.list_custom(POLICY_PLURAL)
    except ApiException as exc:
        if exc.status == 404:  # a cluster whose CRDs predate PromotionPolicy: no policy exists
            return []
        raise


def _followers(model: str, alias: str) -> list[str]:
    followed = f"models:/{model}@{alias}"
    return sorted(
        f"{body['metadata']['namespace']}/{body['metadata']['name']}"
        for body in kube.list_custom(MD_PLURAL)
        if (body.get("spec") or {}).get("model", {}).get("uri") == followed
    )


def promote_run(run: EvalRun, settings: OperatorSettings) -> Outcome:
    """Promote the candidate of a decided run, or say why not. Raises RegistryUnavailable."""
    promote = run.spec.promote
    assert promote is not None
    status = run.status
    if status.decision is not GateVerdict.PASSED:
        decided = status.decision.value if status.decision else "nothing"
        return Outcome(False, Reason.NOT_PASSED, f"the gates decided {decided}: nothing was promoted")
    if not promote.enabled:
        return Outcome(False, Reason.DISABLED, "spec.promote.enabled is false: the registry is left as it is")
    policies = [(body["metadata"]["name"], PromotionPolicy.from_body(body).spec) for body in _policies()]
    namespace = run.metadata.namespace or ""
    refusal = authorize(run.spec, namespace, policies, settings.operator_namespace)
    if refusal is not None:
        return Outcome(False, Reason.FORBIDDEN, refusal)
    candidate = _candidate(run)
    if isinstance(candidate, str):
        return Outcome(False, Reason.NOT_PROMOTABLE, candidate)
    source, tags = candidate
    tracking = run.spec.mlflow.tracking_uri or settings.mlflow_tracking_uri
    if not tracking:
        return Outcome(
            False, Reason.NOT_PROMOTABLE, "no MLflow registry: the operator has no MLFLOW_TRACKING_URI"
        )
    for bench, score in status.scores.items():
        if score.mean is not None:
            tags[f"{registry.TAG_SCORE_PREFIX}{bench}"] = f"{score.mean:.4g}"
    if status.baseline:
        tags[TAG_GATE_BASELINE] = status.baseline
    try:
        done = registry.promote(
            tracking,
            model=promote.registered_model,
            alias=promote.alias,
            source=source,
            eval_run=f"{namespace}/{run.metadata.name}",
            eval_run_uid=run.metadata.uid or "",
            decision=status.decision.value,
            run_id=status.mlflow_run_id,
            version_tags=tags,
        )
    except registry.PromotionRefused as exc:
        return Outcome(False, Reason.SUPERSEDED, str(exc))
    except registry.RegistryError as exc:
        if exc.retryable:
            raise RegistryUnavailable(str(exc)) from None
        return Outcome(False, Reason.NOT_PROMOTABLE, str(exc))
    record = PromotionStatus(
        model=promote.registered_model,
        version=done.version,
        alias=promote.alias,
        previous_version=done.previous,
        followers=_followers(promote.registered_model, promote.alias),
    )
    was = f" (was version {done.previous})" if done.previous else ""
    message = f"{promote.registered_model}@{promote.alias} is version {done.version}{was}"
    if record.followers:
        message += f"; rolling {', '.join(record.followers)}"
    return Outcome(True, Reason.PROMOTION_DONE, message, record)


def rolled_followers(promotion: PromotionStatus) -> list[str]:
    """The followers of `promotion` whose status says they serve its version now."""
    rolled = []
    for follower in promotion.followers:
        namespace, _, name = follower.partition("/")
        body = kube.get_custom(MD_PLURAL, namespace, name)
        registered = ModelDeployment.from_body(body).status.registered_model if body else None
        if registered is not None and (registered.name, registered.version) == (
            promotion.model,
            promotion.version,
        ):
            rolled.append(follower)
    return rolled


# How long after the run ended its followers' rollout is still looked at: a follower that has not
# rolled by then (deleted, refused the version) stays off `rolled`, and its own status says why.
ROLLOUT_WATCH_S = 3600.0


def rollout_pending(promotion: PromotionStatus | None, ended: datetime | None) -> bool:
    if promotion is None or set(promotion.rolled) == set(promotion.followers):
        return False
    return ended is None or (datetime.now(UTC) - ended).total_seconds() < ROLLOUT_WATCH_S
