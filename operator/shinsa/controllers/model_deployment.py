"""kopf handlers for ModelDeployment: read, call the pure core (`desired`, `observed`), apply,
write status. Nothing here decides anything the core could decide."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
from pydantic import ValidationError

from shinsa.api import ModelDeployment, ModelDeploymentPhase, ModelDeploymentStatus
from shinsa.api.conditions import get_condition, set_condition
from shinsa.api.lifecycle import ModelDeploymentCondition as Cond
from shinsa.api.lifecycle import ModelDeploymentReason as Reason
from shinsa.controllers import kube, metrics
from shinsa.controllers.desired import SpecProblem, desired_state
from shinsa.controllers.observed import RETRIED_PLAN_REASONS, Observed, observe
from shinsa.controllers.settings import OperatorSettings, from_memo
from shinsa.controllers.sources import (
    SourceUnavailable,
    resolve_architecture,
    resolve_model_uri,
    served_spec,
)
from shinsa.controllers.status import EventPolicy, ObjectLocks, StatusWriter, invalid_spec_message
from shinsa.planner import node_product_label
from shinsa.render import endpoint_url, pod_selector
from shinsa.render.labels import APP_NAME, NAME_LABEL

PLURAL = "modeldeployments"
KIND = "ModelDeployment"
MD_LABEL = "shinsa.dev/model-deployment"
# Used when no node in the cluster carries the requested product yet (it may be added later).
DEFAULT_GPUS_PER_NODE = 8
# How soon a child the API server refused or does not serve (missing CRDs) is tried again.
APPLY_RETRY_S = 20

STATUS = StatusWriter(
    PLURAL,
    EventPolicy(
        inverted=frozenset({Cond.DEGRADED}),
        # Not-yet-true conditions on the way to Ready: worth an event, not a warning.
        expected_false=frozenset({Reason.LOADING, Reason.PENDING, Reason.SCALED_TO_ZERO}),
    ),
)

# The serving pods of each ModelDeployment by (namespace, name): see `serving_pods`.
PodIndex = kopf.Index[tuple[str, str], dict[str, Any]]

# Reconcile, pod-driven refresh and registry follower of one resource never interleave.
_locks = ObjectLocks()


def _write(body: dict[str, Any], md: ModelDeployment, status: ModelDeploymentStatus) -> None:
    STATUS.write(body, md.status, status)
    # Also when nothing changed: after a restart the gauge learns the phases from these calls.
    metrics.record_phase(f"{md.metadata.namespace}/{md.metadata.name}", status.phase)


def _pods_per_replica(md: ModelDeployment) -> int:
    plan = md.status.plan or {}
    return int(plan.get("nodesPerReplica") or 1)


def reconcile_sync(
    body: dict[str, Any], settings: OperatorSettings, pods: list[dict[str, Any]] | None = None
) -> None:
    """`pods`: the deployment's pods from the operator's watch (the `serving_pods` index); listed
    from the API server when not given (the registry follower, which has no index at hand)."""
    md = ModelDeployment.from_body(body)
    generation = md.metadata.generation
    status = md.status.model_copy(
        update={"observed_generation": generation, "model": md.spec.model.uri, "registered_model": None}
    )

    def not_planned(reason: Reason, message: str, running: list[dict[str, Any]] | None = None) -> None:
        conditions = set_condition(
            status.conditions, Cond.PLANNED, False, reason, message, observed_generation=generation
        )
        seen = observe(conditions, generation, md.spec.replicas, _pods_per_replica(md), running or [])
        _write(body, md, status.model_copy(update={"phase": seen.phase, "conditions": seen.conditions}))

    try:
        resolved = resolve_model_uri(md, settings)
        uri = resolved.uri
        status = status.model_copy(
            update={"model": resolved.described, "registered_model": resolved.registered}
        )
        md = served_spec(md, resolved, settings)
        arch = resolve_architecture(md, uri, settings)
        product = md.spec.resources.gpu.product
        label = node_product_label(product) if product else None
        per_node = kube.gpus_per_node(label) or DEFAULT_GPUS_PER_NODE
        desired = desired_state(md, arch, per_node, uri)
    except SpecProblem as problem:
        if (
            isinstance(problem, SourceUnavailable)
            and problem.reason == Reason.REGISTRY_UNAVAILABLE
            and md.status.plan
        ):
            # An outage of the registry is not news about the deployment: what runs keeps serving
            # and its status stays true; kopf retries, and posts the failure as an event.
            raise kopf.TemporaryError(
                f"{problem.message}; still serving {md.status.model}", delay=APPLY_RETRY_S
            ) from None
        moved = status.registered_model != md.status.registered_model
        if md.status.plan and generation == md.status.observed_generation and moved:
            # The registry alias moved to a version that cannot be served as planned (its source
            # has no architecture the planner knows, say): nothing is re-rendered, so what runs
            # keeps serving, and the status keeps naming it rather than the version it points at.
            status = status.model_copy(
                update={"model": md.status.model, "registered_model": md.status.registered_model}
            )
            running = (
                pods if pods is not None else kube.list_pods(md.metadata.namespace or "", pod_selector(md))
            )
            not_planned(problem.reason, f"{problem.message}; still serving {md.status.model}", running)
        else:
            not_planned(problem.reason, problem.message)
        if isinstance(problem, SourceUnavailable):
            raise kopf.TemporaryError(problem.message, delay=problem.retry_after_s or APPLY_RETRY_S) from None
        return

    plan = desired.plan
    status = status.model_copy(
        update={
            "plan": plan.model_dump(by_alias=True, mode="json"),
            "layout": plan.layout,
            "gpus_per_replica": plan.gpus_per_replica,
            "gpus": plan.gpus_per_replica * md.spec.replicas,
            "endpoint": endpoint_url(md),
        }
    )
    applied = 0
    try:
        kube.require_served(desired.children)
        for child in desired.children:
            kube.apply(child)
            applied += 1
    except (kube.MissingAPI, kube.Rejected) as exc:
        reason = Reason.BACKEND_UNAVAILABLE if isinstance(exc, kube.MissingAPI) else Reason.REJECTED
        message = f"spec.backend={md.spec.backend.value}: {exc}"
        if isinstance(exc, kube.Rejected):
            if pods is None:
                pods = kube.list_pods(md.metadata.namespace or "", pod_selector(md))
            message += _left_behind(desired.children, applied, pods)
        not_planned(reason, message)
        raise kopf.TemporaryError(str(exc), delay=APPLY_RETRY_S) from None

    summary = f"{plan.layout} on {plan.gpus_per_replica} GPU(s) per replica"
    if plan.reasons:
        summary += f": {plan.reasons[0]}"
    conditions = set_condition(
        status.conditions, Cond.PLANNED, True, Reason.PLANNED, summary, observed_generation=generation
    )
    if pods is None:
        pods = kube.list_pods(md.metadata.namespace or "", pod_selector(md))
    seen = observe(conditions, generation, md.spec.replicas, plan.nodes_per_replica, pods)
    _write(body, md, _with_observed(status, seen))


def _describe(children: list[dict[str, Any]]) -> str:
    return ", ".join(f"{c['kind']} {c['metadata']['name']}" for c in children) or "none"


def _left_behind(children: list[dict[str, Any]], applied: int, pods: list[dict[str, Any]]) -> str:
    """What a refusal leaves in the cluster, for the Planned message: children are applied in
    order (Services first) and left as they are, so what exists is what was applied before the
    refusal plus what earlier reconciles made of the rest."""
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    running = (
        f"{len(live)} serving pod(s) of an earlier apply left running" if live else "no serving pods exist"
    )
    return (
        f"; applied and left in place: {_describe(children[:applied])}; "
        f"not applied: {_describe(children[applied:])}; {running}"
    )


def _with_observed(status: ModelDeploymentStatus, seen: Observed) -> ModelDeploymentStatus:
    return status.model_copy(
        update={
            "phase": seen.phase,
            "conditions": seen.conditions,
            "replicas": seen.replicas,
            "ready_replicas": seen.ready_replicas,
        }
    )


def _report_invalid(body: dict[str, Any], error: ValidationError) -> None:
    generation = body["metadata"].get("generation")
    message = invalid_spec_message(error)
    conditions = set_condition(
        [], Cond.PLANNED, False, Reason.INVALID_SPEC, message, observed_generation=generation
    )
    conditions = set_condition(
        conditions, Cond.READY, False, Reason.INVALID_SPEC, "", observed_generation=generation
    )
    status = ModelDeploymentStatus(
        observed_generation=generation, phase=ModelDeploymentPhase.FAILED, conditions=conditions
    )
    STATUS.report_invalid(body, status, Reason.INVALID_SPEC, message)


def _timed_reconcile(
    body: dict[str, Any], settings: OperatorSettings, pods: list[dict[str, Any]] | None = None
) -> None:
    # Timed inside the worker thread: the wait for a free thread is not reconcile work.
    with metrics.reconciling(KIND):
        reconcile_sync(body, settings, pods)


def refresh_sync(namespace: str, name: str, pods: list[dict[str, Any]] | None = None) -> None:
    """Re-derive the pod-driven conditions after a pod of the deployment changed."""
    body = kube.get_custom(PLURAL, namespace, name)
    if body is None:  # deleted: its pods are being garbage-collected
        metrics.record_phase(f"{namespace}/{name}", None)
        _locks.forget((namespace, name))
        return
    md = ModelDeployment.from_body(body)
    if get_condition(md.status.conditions, Cond.PLANNED) is None:
        return  # the reconcile has not run yet; it will observe pods itself
    if pods is None:
        pods = kube.list_pods(namespace, pod_selector(md))
    seen = observe(
        md.status.conditions, md.status.observed_generation, md.spec.replicas, _pods_per_replica(md), pods
    )
    _write(body, md, _with_observed(md.status, seen))


@kopf.index("", "v1", "pods", labels={NAME_LABEL: APP_NAME, MD_LABEL: kopf.PRESENT})
def serving_pods(
    namespace: str | None, labels: kopf.Labels, body: kopf.Body, **_: Any
) -> dict[tuple[str, str], dict[str, Any]]:
    """The serving pods of every ModelDeployment (the labels of `pod_selector`), kept current by
    the operator's pod watch: reconciles and refreshes read them here instead of listing pods on
    every pod event (4 LISTs per ModelDeployment in a burst of 200)."""
    return {(namespace or "", labels[MD_LABEL]): dict(body)}


def _pods_of(index: PodIndex | None, key: tuple[str, str]) -> list[dict[str, Any]] | None:
    # Copied in the event loop: the thread that reads it must not see the index change under it.
    # None (no index passed: not called by kopf) makes the thread list the pods itself.
    return None if index is None else list(index.get(key, []))


@kopf.on.resume(kube.GROUP, kube.VERSION, PLURAL)
@kopf.on.create(kube.GROUP, kube.VERSION, PLURAL)
@kopf.on.update(kube.GROUP, kube.VERSION, PLURAL, field="spec")
async def reconcile(
    body: kopf.Body,
    name: str,
    namespace: str | None,
    logger: kopf.Logger,
    memo: kopf.Memo,
    serving_pods: PodIndex | None = None,
    **_: Any,
) -> None:
    key = (namespace or "", name)
    settings = from_memo(memo)
    async with _locks[key]:
        try:
            await asyncio.to_thread(_timed_reconcile, dict(body), settings, _pods_of(serving_pods, key))
        except ValidationError as exc:
            # The CRD's schema should make this unreachable (a CRD older than the operator, say);
            # the user sees it as a condition, and kopf stops retrying what cannot change.
            logger.error("spec does not validate: %s", exc)
            await asyncio.to_thread(_report_invalid, dict(body), exc)
            raise kopf.PermanentError(f"spec does not validate: {exc}") from None


def resync_registry_sync(body: dict[str, Any], settings: OperatorSettings) -> None:
    """Reconcile when the registry now resolves the URI to another version than the one served, or
    when an earlier attempt left a retried problem behind, so that the served model follows the
    alias. A registry that does not answer changes nothing: what runs keeps serving."""
    md = ModelDeployment.from_body(body)
    planned = get_condition(md.status.conditions, Cond.PLANNED)
    try:
        described = resolve_model_uri(md, settings).described
    except SourceUnavailable:
        return
    except SpecProblem as problem:
        if planned is not None and planned.reason == problem.reason:
            return  # already reported
    else:
        stuck = planned is not None and planned.reason in RETRIED_PLAN_REASONS
        if described == md.status.model and not stuck:
            return
    _timed_reconcile(body, settings)


def _uses_registry(body: dict[str, Any]) -> bool:
    return str(body.get("spec", {}).get("model", {}).get("uri", "")).startswith("models:/")


async def _follow_registry(
    settings: OperatorSettings, namespaces: tuple[str, ...], logger: kopf.Logger
) -> None:
    # One operator-wide loop rather than a kopf timer per object: timers hold their objects with a
    # finalizer, which would block deleting them (and their namespace) while the operator is down.
    while True:
        await asyncio.sleep(settings.registry_resync_s)
        try:
            bodies = await asyncio.to_thread(kube.list_custom, PLURAL, namespaces)
        except Exception as exc:  # the API server may be briefly away; the next round tries again
            logger.warning("listing ModelDeployments to follow registry aliases failed: %s", exc)
            continue
        for listed in bodies:
            if not _uses_registry(listed):
                continue
            key = (listed["metadata"]["namespace"], listed["metadata"]["name"])
            async with _locks[key]:
                try:
                    # Read again under the lock: the listing may be minutes old by now, and a
                    # reconcile from it would undo a spec edit made since.
                    body = await asyncio.to_thread(kube.get_custom, PLURAL, *key)
                    if body is None:
                        _locks.forget(key)
                    elif _uses_registry(body):
                        await asyncio.to_thread(resync_registry_sync, body, settings)
                except Exception as exc:  # one object's trouble must not stop the others' rounds
                    logger.warning("following the registry for %s/%s: %s", *key, exc)


@kopf.on.startup()
async def start_following_registry(memo: kopf.Memo, logger: kopf.Logger, **_: Any) -> None:
    namespaces = tuple(memo.get("namespaces") or ())
    memo["registry_follower"] = asyncio.create_task(_follow_registry(from_memo(memo), namespaces, logger))


@kopf.on.cleanup()
async def stop_following_registry(memo: kopf.Memo, **_: Any) -> None:
    follower = memo.get("registry_follower")
    if follower is not None:
        follower.cancel()


@kopf.on.event("", "v1", "pods", labels={"app.kubernetes.io/managed-by": "shinsa", MD_LABEL: kopf.PRESENT})
async def pod_changed(
    namespace: str | None,
    labels: kopf.Labels,
    serving_pods: PodIndex | None = None,
    **_: Any,
) -> None:
    key = (namespace or "", labels[MD_LABEL])
    async with _locks[key]:
        await asyncio.to_thread(refresh_sync, *key, _pods_of(serving_pods, key))


@kopf.on.event(kube.GROUP, kube.VERSION, PLURAL)
async def forget(event: kopf.RawEvent, name: str, namespace: str | None, **_: Any) -> None:
    # Children go with their owner references (the garbage collector); only local state is left.
    # A watch event, not a delete handler: those run only for objects held by a finalizer, and a
    # finalizer would block deletion whenever the operator is down.
    if event.get("type") != "DELETED":
        return
    metrics.record_phase(f"{namespace}/{name}", None)
    _locks.forget((namespace or "", name))
