"""The real Kueue controller in the local control plane (optional: `shinsa dev up --kueue`).

Kueue (sigs.k8s.io/kueue at the version tools/kueue/go.mod pins, built by tools/build.sh) runs as
one more plain process against the local API server. What a cluster install gets from Kueue's
kustomize manifests is done here from the same files, which tools/build.sh copies out of the
pinned module into `<bin>/kueue-config/`:

- the CRDs `config/components/crd/kustomization.yaml` lists, with the conversion webhook its
  patches add, pointed at the loopback webhook server;
- the Mutating/ValidatingWebhookConfigurations of `config/components/webhook/manifests.yaml`
  (plus the namespace selectors its kustomization patches in), with `clientConfig.url` on
  127.0.0.1 and the dev cluster's CA as `caBundle`, for Kueue's own kinds and the enabled
  integrations only.

Checked against v0.17.0's cmd/kueue/main.go, pkg/config/config.go and apis/config/v1beta2.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import ClusterError, LocalCluster, free_port
from shinsa.devcluster.crds import install_crds
from shinsa.devcluster.pki import PkiPaths
from shinsa.devcluster.upstream import for_apply
from shinsa.devcluster.webhook_controllers import (
    FIELD_MANAGER,
    RunningController,
    apply_objects,
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

PROCESS_NAME = "kueue"
NAMESPACE = "kueue-system"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The names a kustomize install gives them (config/default's namePrefix `kueue-`).
MUTATING_WEBHOOKS = "kueue-mutating-webhook-configuration"
VALIDATING_WEBHOOKS = "kueue-validating-webhook-configuration"
# cmd/kueue/main.go reads the metrics server's certificate from this fixed directory whenever
# internal certificate management is off, and exits if it cannot; no setting moves it.
METRICS_CERT_DIR = Path("/etc/kueue/metrics/certs")
# The integrations enabled, with the (API group, resource) their webhooks intercept. batch/job
# admits EvalRun Jobs; pod admits plain pods carrying the queue label and costs one webhook call
# per pod. Kueue serves no-op webhooks for the others, so registering none for them loses nothing.
FRAMEWORKS: dict[str, tuple[str, str]] = {"batch/job": ("batch", "jobs"), "pod": ("", "pods")}
KUEUE_GROUP = "kueue.x-k8s.io"


def manifests_dir(bin_dir: Path) -> Path:
    path = bin_dir / "kueue-config"
    if not (path / "VERSION").exists():
        raise ClusterError(f"{path} is missing: the binaries predate Kueue; rerun tools/build.sh")
    return path


def configuration(
    *, webhook_port: int, cert_dir: Path, metrics_port: int, health_port: int, frameworks: Iterable[str]
) -> dict[str, Any]:
    """Kueue's Configuration (v1beta2, the version v0.17.0 decodes every file into)."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health_port}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics_port}"},
        "webhook": {"host": "127.0.0.1", "port": webhook_port, "certDir": str(cert_dir)},
        # One replica: no lease to win before it starts admitting.
        "leaderElection": {"leaderElect": False},
        # The certificates come from the dev cluster's CA; Kueue's own rotation would write them
        # into a Secret for a Service that does not exist here.
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": list(frameworks)},
        # The visibility server is an aggregated API server (an APIService and its own port);
        # nothing here reads pending workloads through it.
        "featureGates": {"VisibilityOnDemand": False},
    }


def crds(manifests: Path, webhook_url: str, ca_bundle: str) -> list[dict[str, Any]]:
    """The CRDs Kueue's kustomization installs, each with the conversion webhook its patches add
    (v1beta1 and v1beta2 are both served; only Kueue converts between them)."""
    base = manifests / "crd"
    kustomization = yaml.safe_load((base / "kustomization.yaml").read_text())
    by_name: dict[str, dict[str, Any]] = {}
    for resource in kustomization["resources"]:
        for doc in yaml_documents(base / resource):
            by_name[doc["metadata"]["name"]] = for_apply(doc)
    for patch_ref in kustomization.get("patches") or []:
        for patch in yaml_documents(base / patch_ref["path"]):
            crd = by_name[patch["metadata"]["name"]]
            conversion = dict(patch["spec"]["conversion"])
            webhook = dict(conversion["webhook"])
            path = webhook["clientConfig"]["service"]["path"]
            webhook["clientConfig"] = {"url": webhook_url + path, "caBundle": ca_bundle}
            conversion["webhook"] = webhook
            crd["spec"] = {**crd["spec"], "conversion": conversion}
    return list(by_name.values())


def _served_here(webhook: dict[str, Any], wanted: set[tuple[str, str]]) -> bool:
    return all(
        group == KUEUE_GROUP or (group, resource) in wanted
        for rule in webhook.get("rules") or []
        for group in rule.get("apiGroups") or [""]
        for resource in rule.get("resources") or []
    )


def webhook_configurations(
    manifests: Path, webhook_url: str, ca_bundle: str, frameworks: Iterable[str]
) -> list[dict[str, Any]]:
    """Kueue's admission webhooks for its own kinds and the enabled integrations, called on
    loopback. The namespace selectors config/components/webhook/kustomization.yaml patches in
    (pods of kube-system and kueue-system are left alone) are applied as they are written."""
    base = manifests / "webhook"
    wanted = {FRAMEWORKS[name] for name in frameworks}
    selectors: dict[tuple[str, str], dict[str, Any]] = {}
    for patch_ref in yaml.safe_load((base / "kustomization.yaml").read_text()).get("patches") or []:
        patch = yaml.safe_load(patch_ref["patch"])
        for entry in patch.get("webhooks") or []:
            extra = {key: value for key, value in entry.items() if key != "name"}
            selectors[(patch["kind"], entry["name"])] = extra
    names = {
        "MutatingWebhookConfiguration": MUTATING_WEBHOOKS,
        "ValidatingWebhookConfiguration": VALIDATING_WEBHOOKS,
    }
    configurations = []
    for doc in yaml_documents(base / "manifests.yaml"):
        webhooks = []
        for webhook in doc["webhooks"]:
            if not _served_here(webhook, wanted):
                continue
            selected = {**webhook, **selectors.get((doc["kind"], webhook["name"]), {})}
            webhooks.append(on_loopback(selected, webhook_url, ca_bundle))
        configurations.append(webhook_configuration(doc, names[doc["kind"]], webhooks))
    return configurations


def ensure_metrics_certs(pki: PkiPaths, cert: Path, key: Path, directory: Path = METRICS_CERT_DIR) -> None:
    """Kueue exits at start without a certificate in `directory`. Any valid pair serves: the
    metrics endpoint is on loopback and nothing scrapes it, so one left by another dev cluster is
    kept (Kueue watches the files; rewriting them under a running one would make it reload)."""
    crt, pem_key = directory / "tls.crt", directory / "tls.key"
    try:
        ssl.create_default_context().load_cert_chain(str(crt), str(pem_key))
        return
    except (OSError, ssl.SSLError):
        pass
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for source, target in ((cert, crt), (key, pem_key)):
            partial = target.with_name(f".{target.name}.{time.monotonic_ns()}")
            partial.write_bytes(source.read_bytes())
            partial.chmod(0o600)
            partial.replace(target)
    except PermissionError:
        raise ClusterError(
            f"Kueue reads its metrics certificate from {directory} (fixed in its cmd/kueue/main.go) "
            f"and it cannot be written here; create it once, e.g. `sudo install -d {directory} && "
            f"sudo cp {cert} {crt} && sudo cp {key} {pem_key}`"
        ) from None


def remove_webhooks(api: client.ApiClient) -> None:
    """Unregister Kueue's webhooks (they fail closed: without Kueue no Job or pod could be made)."""
    delete_webhook_configurations(api, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS)


def _wait_job_webhook(api: client.ApiClient, proc: processes.Managed, deadline: float) -> None:
    # The API server picks up new webhook configurations asynchronously: until a labelled Job comes
    # back suspended from a dry run, a Job created now could start before Kueue admits it.
    batch = client.BatchV1Api(api)
    probe = {
        "metadata": {"generateName": "kueue-webhook-probe-", "labels": {QUEUE_LABEL: "probe"}},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "probe"}]}}
        },
    }
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive(proc)
        try:
            if batch.create_namespaced_job("default", probe, dry_run="All").spec.suspend:
                return
            last = "a labelled Job was not suspended"
        except ApiException as exc:
            last = f"HTTP {exc.status}: {exc.reason}"
        time.sleep(0.2)
    raise ClusterError(f"Kueue's Job webhook did not take effect ({last}); see {proc.log}")


def start(
    cluster: LocalCluster, timeout_s: float = 120.0, frameworks: Sequence[str] = tuple(FRAMEWORKS)
) -> RunningController:
    """Start Kueue against the running `cluster` (a no-op but for the result when it runs)."""
    deadline = time.monotonic() + timeout_s
    bin_dir = running_bin_dir(cluster)
    manifests = manifests_dir(bin_dir)
    version = (manifests / "VERSION").read_text().strip()
    prepared = prepare(cluster, PROCESS_NAME, version)
    paths, pki, api = prepared.paths, prepared.pki, prepared.api
    ensure_metrics_certs(pki, paths.cert, paths.key)
    if prepared.running is not None:
        return prepared.running

    webhook_port, health_port, metrics_port = free_port(), free_port(), free_port()
    webhook_url = f"https://127.0.0.1:{webhook_port}"
    ca_bundle = prepared.ca_bundle
    cluster.progress(f"starting kueue {version}")
    core = client.CoreV1Api(api)
    try:
        core.create_namespace({"metadata": {"name": NAMESPACE}})
    except ApiException as exc:
        if exc.status != 409:
            raise
    # Kueue's caches need its kinds served before it starts.
    install_crds(
        api,
        crds(manifests, webhook_url, ca_bundle),
        FIELD_MANAGER,
        timeout_s=max(1.0, deadline - time.monotonic()),
    )
    config = configuration(
        webhook_port=webhook_port,
        cert_dir=paths.cert_dir,
        metrics_port=metrics_port,
        health_port=health_port,
        frameworks=frameworks,
    )
    proc = launch(cluster, PROCESS_NAME, bin_dir / "kueue", paths, config)
    health_url = f"http://127.0.0.1:{health_port}"
    # readyz answers once the webhook server listens; registering the webhooks before that would
    # make the API server refuse Jobs and pods in the meantime.
    wait_ready("kueue", f"{health_url}/readyz", proc, deadline)
    apply_objects(api, webhook_configurations(manifests, webhook_url, ca_bundle, frameworks))
    _wait_job_webhook(api, proc, deadline)
    return RunningController(version, webhook_url, health_url, proc)


def stop(cluster: LocalCluster) -> bool:
    """Unregister the webhooks, then stop the process. True if Kueue was running."""
    return stop_controller(cluster, PROCESS_NAME, MUTATING_WEBHOOKS, VALIDATING_WEBHOOKS)


RunningKueue = RunningController
"""A started Kueue controller."""
