"""What the dev cluster's upstream controllers with admission webhooks (Kueue, LeaderWorkerSet) share:
each runs as a local process serving its webhooks on loopback with a certificate from the dev
cluster's CA, its webhook configurations registered by URL, and is ready when its health endpoint
answers. The controller-specific parts (configuration, CRDs, which webhooks) stay in their modules."""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import ClusterError, LocalCluster
from shinsa.devcluster.pki import PkiPaths, ensure_pki, issue_loopback_serving_cert

FIELD_MANAGER = "shinsa-dev-cluster"

# libyaml reads megabytes of CRDs in a fraction of the pure-Python loader's seconds.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class ControllerPaths:
    """Where one controller of one dev cluster keeps its configuration and serving certificate."""

    directory: Path

    @property
    def config(self) -> Path:
        return self.directory / "config.yaml"

    @property
    def cert_dir(self) -> Path:
        return self.directory / "serving-certs"

    @property
    def cert(self) -> Path:
        # controller-runtime's webhook server reads tls.crt / tls.key from its CertDir.
        return self.cert_dir / "tls.crt"

    @property
    def key(self) -> Path:
        return self.cert_dir / "tls.key"


@dataclass(frozen=True)
class RunningController:
    version: str
    webhook_url: str
    health_url: str
    process: processes.Managed


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_Loader) if isinstance(doc, dict)]


def apply_objects(api: client.ApiClient, objects: Sequence[dict[str, Any]]) -> None:
    dynamic = DynamicClient(api)
    for body in objects:
        resource = dynamic.resources.get(api_version=body["apiVersion"], kind=body["kind"])
        dynamic.server_side_apply(resource, body=body, field_manager=FIELD_MANAGER, force_conflicts=True)


def on_loopback(webhook: dict[str, Any], webhook_url: str, ca_bundle: str) -> dict[str, Any]:
    """A webhook of the controller's manifests called at `webhook_url` + its Service path instead
    of through the in-cluster Service (the controller runs as a local process)."""
    path = webhook["clientConfig"]["service"]["path"]
    return {**webhook, "clientConfig": {"url": webhook_url + path, "caBundle": ca_bundle}}


def webhook_configuration(doc: dict[str, Any], name: str, webhooks: list[dict[str, Any]]) -> dict[str, Any]:
    """The (Mutating|Validating)WebhookConfiguration `doc` is the manifest of, named `name`."""
    return {
        "apiVersion": doc["apiVersion"],
        "kind": doc["kind"],
        "metadata": {"name": name},
        "webhooks": webhooks,
    }


def crd_served(api: client.ApiClient, name: str) -> bool:
    try:
        client.ApiextensionsV1Api(api).read_custom_resource_definition(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise
    return True


def delete_webhook_configurations(api: client.ApiClient, mutating: str, validating: str) -> None:
    """Unregister a controller's webhooks (they fail closed: without the controller, nothing they
    intercept could be written)."""
    admission = client.AdmissionregistrationV1Api(api)
    for delete, name in (
        (admission.delete_mutating_webhook_configuration, mutating),
        (admission.delete_validating_webhook_configuration, validating),
    ):
        try:
            delete(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def wait_ready(name: str, url: str, proc: processes.Managed, deadline: float) -> None:
    """Until `url` (the controller's health endpoint) answers 200; the process dying ends it."""
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive(proc)
        try:
            response = httpx.get(url, timeout=2.0)
            if response.status_code == 200:
                return
            last = f"HTTP {response.status_code}: {response.text[:300]}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ClusterError(f"{name} did not become ready at {url} ({last}); see {proc.log}")


@dataclass(frozen=True)
class Prepared:
    """A controller about to start on a running dev cluster: its paths and certificate, the
    dev cluster's CA, and the API; or the one that runs already."""

    paths: ControllerPaths
    pki: PkiPaths
    api: client.ApiClient
    running: RunningController | None

    @property
    def ca_bundle(self) -> str:
        return base64.b64encode(self.pki.ca_cert.read_bytes()).decode()


def running_bin_dir(cluster: LocalCluster) -> Path:
    """The binaries directory of the running `cluster`."""
    state = cluster.state()
    if state is None or not cluster.is_running():
        raise ClusterError("the local control plane is not running; start it first")
    return Path(state.bin_dir)


def prepare(cluster: LocalCluster, name: str, version: str) -> Prepared:
    """Paths, a loopback serving certificate from the cluster's CA, and the running controller
    `name` if there is one (found by its process and its configuration file)."""
    paths = ControllerPaths(cluster.state_dir / name)
    pki = ensure_pki(cluster.state_dir / "pki")
    if not paths.cert.exists():
        issue_loopback_serving_cert(pki, paths.cert, paths.key, f"{name}-webhook")
    found = next((p for p in processes.running(cluster.state_dir) if p.name == name), None)
    running = None
    if found is not None:
        current = yaml.safe_load(paths.config.read_text())
        port, health = current["webhook"]["port"], current["health"]["healthProbeBindAddress"]
        running = RunningController(version, f"https://127.0.0.1:{port}", f"http://{health}", found)
    return Prepared(paths, pki, cluster.api(), running)


def launch(
    cluster: LocalCluster, name: str, binary: Path, paths: ControllerPaths, configuration: dict[str, Any]
) -> processes.Managed:
    """Write `configuration` and start `binary` with it against the cluster."""
    paths.config.write_text(yaml.safe_dump(configuration))
    return processes.start(
        name,
        [str(binary), f"--config={paths.config}", f"--kubeconfig={cluster.kubeconfig}"],
        cluster.state_dir,
    )


def stop_controller(cluster: LocalCluster, name: str, mutating: str, validating: str) -> bool:
    """Unregister the controller's webhooks, then stop its process. True if it was running."""
    if cluster.is_running():
        delete_webhook_configurations(cluster.api(), mutating, validating)
    return processes.stop(cluster.state_dir, name)
