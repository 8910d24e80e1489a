"""The operator's only conversation with the API server: server-side apply of children, status
writes, and the reads reconciles need. Synchronous (the kubernetes client is); handlers call it
through `asyncio.to_thread`."""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.discovery import LazyDiscoverer
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError

FIELD_MANAGER = "shinsa"
GROUP, VERSION = "shinsa.dev", "v1alpha1"


class MissingAPI(Exception):
    """A child's kind is not served by this cluster (for example LeaderWorkerSet without its CRDs)."""


_lock = threading.Lock()
_log = logging.getLogger(__name__)


@functools.cache
def api_client() -> client.ApiClient:
    """One client per process, from the in-cluster service account or else the kubeconfig."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)
    except config.ConfigException:
        # Read $KUBECONFIG now: the client's own default was fixed when it was imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration)
    # One pooled connection per worker thread (the default, 5 per CPU, is fewer on small nodes).
    configuration.connection_pool_maxsize = 32
    return client.ApiClient(configuration)


class _InMemoryDiscoverer(LazyDiscoverer):  # type: ignore[misc]  # the client is untyped
    """Discovery cached in this process only. The client's default cache is one file per API
    server URL shared by every process on the machine (stale from another cluster on the same
    port); a file per process was never read by another and outlived every one of them."""

    def _write_cache(self) -> None:
        pass


# The discoverer reads its cache from this path when it exists; it never can (a file's child).
_NO_CACHE_FILE = os.path.join(os.devnull, "shinsa-discovery.json")


@functools.cache
def _dynamic() -> DynamicClient:
    return DynamicClient(api_client(), cache_file=_NO_CACHE_FILE, discoverer=_InMemoryDiscoverer)


class Rejected(Exception):
    """The API server refused a child (schema, admission); the message is the server's."""


def _resource(obj: dict[str, Any]) -> Any:
    with _lock:  # discovery's cache is not thread-safe
        try:
            return _dynamic().resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            raise MissingAPI(f"{obj['kind']} ({obj['apiVersion']}) is not served by this cluster") from None


def require_served(objs: list[dict[str, Any]]) -> None:
    """MissingAPI for the first of `objs` whose kind this cluster does not serve, before any is
    applied: a workload whose CRDs are missing must not leave its Service alone behind."""
    for obj in objs:
        _resource(obj)


def apply(obj: dict[str, Any]) -> dict[str, Any]:
    """Server-side apply `obj` as field manager `shinsa`, taking ownership of conflicting fields
    (the operator is the source of truth for what it renders)."""
    resource = _resource(obj)
    try:
        applied = _dynamic().server_side_apply(
            resource,
            body=obj,
            namespace=obj["metadata"].get("namespace"),
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
    except NotFoundError:
        # Discovery said the kind exists, the server says not (its CRD was removed): forget it.
        with _lock:
            _dynamic().resources.invalidate_cache()
        raise MissingAPI(f"{obj['kind']} ({obj['apiVersion']}) is no longer served by this cluster") from None
    except ApiException as exc:
        if exc.status is not None and exc.status >= 500 and "typed patch" not in str(exc.body):
            raise  # the server is unwell: let kopf retry
        raise Rejected(f"{obj['kind']} {obj['metadata']['name']}: {_server_message(exc)}") from None
    return dict(applied.to_dict())


def _server_message(exc: ApiException) -> str:
    try:
        return str(json.loads(exc.body).get("message", exc.reason))
    except (TypeError, ValueError):
        return str(exc.reason)


def patch_status(plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
    """Merge-patch the status subresource. Lists (conditions) are replaced whole, which is what we
    want: the caller always sends the complete list."""
    client.CustomObjectsApi(api_client()).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, plural, name, {"status": status}
    )


def get_custom(plural: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(
            client.CustomObjectsApi(api_client()).get_namespaced_custom_object(
                GROUP, VERSION, namespace, plural, name
            )
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_custom(plural: str, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Shinsa's custom objects in `namespaces`, or in all namespaces when none are given."""
    api = client.CustomObjectsApi(api_client())
    if not namespaces:
        return _list(api.list_cluster_custom_object, GROUP, VERSION, plural)
    return [
        item
        for namespace in namespaces
        for item in _list(api.list_namespaced_custom_object, GROUP, VERSION, namespace, plural)
    ]


def delete_custom(plural: str, namespace: str, name: str) -> None:
    """Delete one of Shinsa's custom objects; one that is gone already is no error."""
    try:
        client.CustomObjectsApi(api_client()).delete_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name
        )
    except ApiException as exc:
        if exc.status != 404:
            raise


def get_job(namespace: str, name: str) -> dict[str, Any] | None:
    try:
        batch = client.BatchV1Api(api_client())
        response = batch.read_namespaced_job(name, namespace, _preload_content=False)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    job: dict[str, Any] = json.loads(response.data)
    return job


def delete_job(namespace: str, name: str) -> None:
    """Delete a Job and, in the background, its pods; gone already is fine."""
    try:
        batch = client.BatchV1Api(api_client())
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise


def _list(call: Any, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    # Plain JSON: the client's model objects cost ~20x more CPU to build (one Configuration copy
    # per nested object), and the callers only read a few fields of them anyway.
    response = call(*args, _preload_content=False, **kwargs)
    items: list[dict[str, Any]] = json.loads(response.data)["items"]
    return items


def list_pods(namespace: str, selector: dict[str, str]) -> list[dict[str, Any]]:
    label_selector = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
    return _list(client.CoreV1Api(api_client()).list_namespaced_pod, namespace, label_selector=label_selector)


def gpus_per_node(product_label: str | None) -> int | None:
    """The `nvidia.com/gpu` allocatable of the largest node carrying `product_label` (any GPU node
    when None), or None when the cluster has no such node."""
    selector = f"nvidia.com/gpu.product={product_label}" if product_label else "nvidia.com/gpu.present=true"
    nodes = _list(client.CoreV1Api(api_client()).list_node, label_selector=selector)
    counts = [int(n.get("status", {}).get("allocatable", {}).get("nvidia.com/gpu", 0)) for n in nodes]
    return max(counts, default=0) or None


def post_event(obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Record a core/v1 Event on `obj` (what `kubectl describe` lists), at once and from the
    calling thread. Best effort: kopf's own poster retries a refused event for minutes, one at a
    time, so a single event for an object in a terminating namespace held back every later one;
    here a refused event is logged and dropped."""
    meta = obj["metadata"]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": obj["apiVersion"],
            "kind": obj["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": type_,
        "reason": reason,
        "message": message,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "source": {"component": FIELD_MANAGER},
        "reportingComponent": FIELD_MANAGER,
    }
    try:
        client.CoreV1Api(api_client()).create_namespaced_event(meta["namespace"], event)
    except ApiException as exc:
        _log.warning(
            "Failed to post an event on %s/%s (%s): %s",
            meta["namespace"],
            meta["name"],
            reason,
            _server_message(exc),
        )
