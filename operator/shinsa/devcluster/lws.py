"""The real LeaderWorkerSet controller in the local control plane (optional: `shinsa dev up --lws`).

LWS (sigs.k8s.io/lws at the version tools/lws/go.mod pins, built by tools/build.sh) runs as one
more plain process against the local API server, as Kueue does (shinsa.devcluster.kueue). What a
cluster install gets from LWS's kustomize manifests is done here from the same files, which
tools/build.sh copies out of the pinned module into `<bin>/lws/config/`:

- the CRD of `config/crd/bases` (one served version, so the conversion webhook its kustomize
  patch adds is never called and is left out: the CRD is the same object the `upstream_crds`
  test fixture installs from tools/upstream-crds.txt);
- the Mutating/ValidatingWebhookConfigurations of `config/webhook/manifests.yaml` with the patches
  its kustomization applies (the pod webhooks limited to pods labelled
  leaderworkerset.sigs.k8s.io/name), `clientConfig.url` on 127.0.0.1 and the dev cluster's CA as
  `caBundle`.

The webhooks are not optional: the LeaderWorkerSet defaulting webhook is what fills
`spec.networkConfig`, which the controller dereferences (it panics on an LWS that skipped it), and
the pod webhook is what gives the pods their LWS_* environment and group labels.

Checked against v0.8.0's cmd/main.go, api/config/v1alpha1, pkg/webhooks and config/.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import ClusterError, LocalCluster, free_port
from shinsa.devcluster.crds import install_crds
from shinsa.devcluster.upstream import for_apply
from shinsa.devcluster.webhook_controllers import (
    FIELD_MANAGER,
    RunningController,
    apply_objects,
    crd_served,
    delete_webhook_configurations,
    launch,
    on_loopback,
    prepare,
    running_bin_dir,
    stop_controller,
    wait_ready,
    webhook_configuration,
    yaml_documents,
)

PROCESS_NAME = "lws"
CRD_NAME = "leaderworkersets.leaderworkerset.x-k8s.io"
LWS_GROUP, LWS_VERSION, LWS_PLURAL = "leaderworkerset.x-k8s.io", "v1", "leaderworkersets"
NAME_LABEL = "leaderworkerset.sigs.k8s.io/name"
# The names a kustomize install gives them (config/default's namePrefix `lws-`).
MUTATING_WEBHOOKS = "lws-mutating-webhook-configuration"
VALIDATING_WEBHOOKS = "lws-validating-webhook-configuration"


def build_dir(bin_dir: Path) -> Path:
    path = bin_dir / "lws"
    if not (path / ".complete").exists():
        raise ClusterError(f"{path} is missing: the binaries predate LeaderWorkerSet; rerun tools/build.sh")
    return path


def configuration(*, webhook_port: int, cert_dir: Path, health_port: int) -> dict[str, Any]:
    """LWS's Configuration (config.lws.x-k8s.io/v1alpha1, the only version v0.8.0 reads)."""
    return {
        "apiVersion": "config.lws.x-k8s.io/v1alpha1",
        "kind": "Configuration",
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        # "0" is controller-runtime's "no metrics server"; the default would take :8443 on every
        # interface, and nothing here scrapes it.
        "metrics": {"bindAddress": "0"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        # One replica: no lease to win before it reconciles.
        "leaderElection": {"leaderElect": False},
        # The certificate comes from the dev cluster's CA; LWS's own rotation would write it into
        # a Secret for a Service (lws-webhook-service) that does not exist here.
        "internalCertManagement": {"enable": False},
    }


def crds(build: Path) -> list[dict[str, Any]]:
    return [
        for_apply(doc)
        for path in sorted((build / "config" / "crd" / "bases").glob("*.yaml"))
        for doc in yaml_documents(path)
        if doc.get("kind") == "CustomResourceDefinition"
    ]


def _patched(doc: dict[str, Any], patches: list[dict[str, Any]]) -> dict[str, Any]:
    webhooks = list(doc["webhooks"])
    for op in patches:
        head, _, index = op["path"].rpartition("/")
        # The only form v0.8.0's patches take; anything else is a layout to read before trusting.
        if op.get("op") != "replace" or head != "/webhooks" or not index.isdigit():
            raise ClusterError(f"unexpected webhook patch {op!r}: check the new LWS version's config/webhook")
        webhooks[int(index)] = op["value"]
    return {**doc, "webhooks": webhooks}


def webhook_configurations(build: Path, webhook_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """LWS's admission webhooks as config/webhook/kustomization.yaml makes them, called on loopback."""
    base = build / "config" / "webhook"
    patches: dict[str, list[dict[str, Any]]] = {}
    for ref in yaml.safe_load((base / "kustomization.yaml").read_text()).get("patches") or []:
        patches.setdefault(ref["target"]["kind"], []).extend(yaml.safe_load((base / ref["path"]).read_text()))
    names = {
        "MutatingWebhookConfiguration": MUTATING_WEBHOOKS,
        "ValidatingWebhookConfiguration": VALIDATING_WEBHOOKS,
    }
    configurations = []
    for doc in yaml_documents(base / "manifests.yaml"):
        patched = _patched(doc, patches.get(doc["kind"], []))
        webhooks = [on_loopback(webhook, webhook_url, ca_bundle) for webhook in patched["webhooks"]]
        configurations.append(webhook_configuration(doc, names[doc["kind"]], webhooks))
    return configurations


def _webhook_paths(configurations: Sequence[dict[str, Any]]) -> list[str]:
    return [
        httpx.URL(webhook["clientConfig"]["url"]).path
        for doc in configurations
        for webhook in doc["webhooks"]
    ]


def remove_webhooks(api: client.ApiClient) -> None:
    """Unregister LWS's webhooks (they fail closed: without LWS no LeaderWorkerSet could be written)."""
    delete_webhook_configurations(api, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS)


def _wait_handlers(
    webhook_url: str, paths: Sequence[str], ca: Path, proc: processes.Managed, deadline: float
) -> None:
    # LWS registers its webhook handlers in a goroutine after the manager starts, and its readyz
    # is a plain ping: until each path answers something other than 404, an admission call the
    # API server makes there would fail (and fail closed).
    context = ssl.create_default_context(cafile=str(ca))
    pending, last = list(paths), ""
    with httpx.Client(verify=context, timeout=2.0) as http:
        while time.monotonic() < deadline:
            processes.check_alive(proc)
            try:
                pending = [p for p in pending if http.post(webhook_url + p, content=b"{}").status_code == 404]
                if not pending:
                    return
                last = f"{pending[0]} answers 404"
            except (OSError, httpx.HTTPError) as exc:
                last = str(exc)
            time.sleep(0.3)
    raise ClusterError(
        f"LWS's webhook server did not serve {pending} at {webhook_url} ({last}); see {proc.log}"
    )


def probe_lws() -> dict[str, Any]:
    """The smallest LeaderWorkerSet: one group of one pod, no networkConfig for the webhook to fill."""
    pod = {"spec": {"containers": [{"name": "c", "image": "probe"}]}}
    return {
        "apiVersion": f"{LWS_GROUP}/{LWS_VERSION}",
        "kind": "LeaderWorkerSet",
        "metadata": {"generateName": "lws-webhook-probe-"},
        "spec": {"replicas": 1, "leaderWorkerTemplate": {"size": 1, "workerTemplate": pod}},
    }


def _wait_defaulting(api: client.ApiClient, proc: processes.Managed, deadline: float) -> None:
    # The API server picks up new webhook configurations asynchronously: an LWS written before it
    # calls the defaulting webhook would reach the controller without networkConfig.
    custom = client.CustomObjectsApi(api)
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive(proc)
        try:
            made = custom.create_namespaced_custom_object(
                LWS_GROUP, LWS_VERSION, "default", LWS_PLURAL, probe_lws(), dry_run="All"
            )
            if (made["spec"].get("networkConfig") or {}).get("subdomainPolicy"):
                return
            last = "a LeaderWorkerSet came back without spec.networkConfig"
        except ApiException as exc:
            last = f"HTTP {exc.status}: {exc.reason}"
        time.sleep(0.2)
    raise ClusterError(f"LWS's defaulting webhook did not take effect ({last}); see {proc.log}")


def start(cluster: LocalCluster, timeout_s: float = 120.0, *, install_crd: bool = True) -> RunningController:
    """Start LWS against the running `cluster` (a no-op but for the result when it runs).

    `install_crd=False` for a caller that installed the same CRD under its own field manager (the
    test session's `upstream_crds`); the CRD must be served either way before LWS starts, since
    its informers need the kind."""
    deadline = time.monotonic() + timeout_s
    build = build_dir(running_bin_dir(cluster))
    version = (build / "VERSION").read_text().strip()
    prepared = prepare(cluster, PROCESS_NAME, version)
    paths, pki, api = prepared.paths, prepared.pki, prepared.api
    if prepared.running is not None:
        return prepared.running

    if install_crd:
        install_crds(api, crds(build), FIELD_MANAGER, timeout_s=max(1.0, deadline - time.monotonic()))
    elif not crd_served(api, CRD_NAME):
        raise ClusterError(f"{CRD_NAME} is not installed; install it or start LWS with install_crd=True")

    webhook_port, health_port = free_port(), free_port()
    webhook_url = f"https://127.0.0.1:{webhook_port}"
    ca_bundle = prepared.ca_bundle
    cluster.progress(f"starting lws {version}")
    config = configuration(webhook_port=webhook_port, cert_dir=paths.cert_dir, health_port=health_port)
    proc = launch(cluster, PROCESS_NAME, build / "lws", paths, config)
    health_url = f"http://127.0.0.1:{health_port}"
    wait_ready("lws", f"{health_url}/readyz", proc, deadline)
    configurations = webhook_configurations(build, webhook_url, ca_bundle)
    _wait_handlers(webhook_url, _webhook_paths(configurations), pki.ca_cert, proc, deadline)
    apply_objects(api, configurations)
    _wait_defaulting(api, proc, deadline)
    return RunningController(version, webhook_url, health_url, proc)


def stop(cluster: LocalCluster) -> bool:
    """Unregister the webhooks, then stop the process. True if LWS was running."""
    return stop_controller(cluster, PROCESS_NAME, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS)


RunningLws = RunningController
"""A started LWS controller."""
