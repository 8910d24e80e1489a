"""A real local Kubernetes control plane for development and tests.

etcd, kube-apiserver, kube-controller-manager and kube-scheduler run as plain processes built
from their official Go modules (tools/build.sh); KWOK plays the kubelets of simulated GPU nodes,
so the real scheduler places pods by `nvidia.com/gpu` and the real controllers run Deployments
and Jobs. No container runtime is involved: pods become Running/Ready (and Job pods Succeeded)
through KWOK's stages, except on the optional `local-runner` node, whose pods really run as local
processes (shinsa.devcluster.local_runner).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from shinsa.devcluster import processes
from shinsa.devcluster.pki import PkiPaths, ensure_pki

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GPU_RESOURCE = "nvidia.com/gpu"
GPU_TAINT_KEY = "nvidia.com/gpu"
SERVICE_CIDR = "10.96.0.0/12"
# The project's own KWOK stages (failure simulations), beside KWOK's stock ones.
SIMULATION_STAGES = Path(__file__).with_name("kwok-simulations.yaml")
SIMULATE_ANNOTATION = "shinsa.dev/simulate"
# Stop dependents first: nothing should keep writing to etcd while it shuts down.
STOP_ORDER = [
    "shinsa-operator",
    "local-runner",
    "kueue",
    "lws",
    "mlflow",
    "kwok",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
]

# nvidia.com/gpu.memory as GPU feature discovery reports it (MiB), by product label.
GPU_MEMORY_MIB = {
    "NVIDIA-H100-80GB-HBM3": 81559,
    "NVIDIA-H200": 143771,
    "NVIDIA-A100-SXM4-80GB": 81920,
    "NVIDIA-A100-SXM4-40GB": 40960,
    "NVIDIA-L40S": 46068,
    "NVIDIA-L4": 23034,
    "NVIDIA-A10G": 23028,
}


class ClusterError(RuntimeError):
    """The local control plane could not be started or reached; the message says why."""


def default_state_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "shinsa" / "dev-cluster"


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def tool_bin_dir(progress: Callable[[str], None] = lambda _: None) -> Path:
    """The directory holding the control-plane binaries: $SHINSA_TOOLS_BIN, or the user cache
    that tools/build.sh fills (it builds only what its pins have not built before)."""
    if override := os.environ.get("SHINSA_TOOLS_BIN"):
        return Path(override)
    script = repo_root() / "tools" / "build.sh"
    if not script.exists():
        raise ClusterError(
            f"{script} not found: run from a Shinsa checkout or set SHINSA_TOOLS_BIN to a directory "
            "holding etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok"
        )
    progress("building or locating control-plane binaries (first build takes a while)")
    done = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f"tools/build.sh failed:\n{done.stderr[-4000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class NodePool:
    """Simulated nodes of one shape. `gpus` = 0 makes a plain CPU node without the GPU taint."""

    prefix: str
    count: int
    gpus: int = 8
    gpu_product: str = "NVIDIA-H100-80GB-HBM3"
    gpu_memory_mib: int | None = None
    cpu: str = "192"
    memory: str = "2Ti"

    def memory_mib(self) -> int:
        if self.gpu_memory_mib is not None:
            return self.gpu_memory_mib
        if self.gpu_product not in GPU_MEMORY_MIB:
            known = ", ".join(sorted(GPU_MEMORY_MIB))
            raise ClusterError(
                f"unknown GPU product {self.gpu_product!r}: pass --gpu-memory-mib, or one of {known}"
            )
        return GPU_MEMORY_MIB[self.gpu_product]


@dataclass
class ClusterState:
    """What `up` started, written to state.json so other processes can find and stop it."""

    state_dir: str
    apiserver_url: str
    etcd_url: str
    kubeconfig: str
    bin_dir: str
    pools: list[dict[str, Any]] = field(default_factory=list)


def node_manifest(pool: NodePool, index: int) -> dict[str, Any]:
    name = f"{pool.prefix}-{index}"
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        "shinsa.dev/pool": pool.prefix,
    }
    capacity = {"cpu": pool.cpu, "memory": pool.memory, "pods": "110", "ephemeral-storage": "2Ti"}
    taints = []
    if pool.gpus:
        # The labels GPU feature discovery puts on real GPU nodes, and the taint GPU pools carry.
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": pool.gpu_product,
            "nvidia.com/gpu.memory": str(pool.memory_mib()),
            "nvidia.com/gpu.count": str(pool.gpus),
        }
        capacity[GPU_RESOURCE] = str(pool.gpus)
        taints.append({"key": GPU_TAINT_KEY, "value": "present", "effect": "NoSchedule"})
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "nodeInfo": {"kubeletVersion": "fake", "architecture": "amd64", "operatingSystem": "linux"},
        },
    }


def _kubeconfig(pki: PkiPaths, server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "shinsa-dev", "cluster": {"server": server, "certificate-authority": str(pki.ca_cert)}}
        ],
        "users": [
            {
                "name": "shinsa-admin",
                "user": {"client-certificate": str(pki.admin_cert), "client-key": str(pki.admin_key)},
            }
        ],
        "contexts": [{"name": "shinsa-dev", "context": {"cluster": "shinsa-dev", "user": "shinsa-admin"}}],
        "current-context": "shinsa-dev",
    }


class LocalCluster:
    def __init__(self, state_dir: Path | None = None, progress: Callable[[str], None] = lambda _: None):
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.progress = progress

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def state(self) -> ClusterState | None:
        if not self.state_file.exists():
            return None
        return ClusterState(**json.loads(self.state_file.read_text()))

    def is_running(self) -> bool:
        return processes.alive(self.state_dir, "kube-apiserver")

    # -- lifecycle ---------------------------------------------------------------------------

    def up(
        self,
        pools: list[NodePool],
        timeout_s: float = 180.0,
        *,
        kueue: bool = False,
        lws: bool = False,
        local_runner: bool = False,
    ) -> ClusterState:
        """Start the control plane (kept if it runs) and the nodes; with `kueue`, the Kueue
        controller too (optional: it adds seconds to start and webhooks to every Job and pod); with
        `lws`, the LeaderWorkerSet controller and its CRD (shinsa.devcluster.lws); with
        `local_runner`, the node that really runs the pods scheduled to it (`ensure_local_runner`)."""
        for pool in pools:
            if pool.gpus:
                pool.memory_mib()  # an unknown product fails here, before anything is started
        if self.is_running():
            state = self.state()
            assert state is not None
            self.progress(f"control plane already running at {state.apiserver_url}")
        else:
            state = self._start(timeout_s)
        self.ensure_nodes(pools, timeout_s)
        from shinsa.devcluster import kueue as kueue_component  # it builds on this module

        if kueue:
            kueue_component.start(self, timeout_s)
        elif not processes.alive(self.state_dir, kueue_component.PROCESS_NAME):
            # A Kueue that stopped with the cluster left fail-closed webhooks in etcd.
            kueue_component.remove_webhooks(self.api())
        from shinsa.devcluster import lws as lws_component  # it builds on this module

        if lws:
            lws_component.start(self, timeout_s)
        elif not processes.alive(self.state_dir, lws_component.PROCESS_NAME):
            # Same as Kueue's: fail-closed webhooks of a stopped LWS would refuse every LWS write.
            lws_component.remove_webhooks(self.api())
        if local_runner:
            self.ensure_local_runner(timeout_s)
        state.pools = [asdict(p) for p in pools]
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        return state

    def down(self, purge: bool = False) -> list[str]:
        stopped = processes.stop_all(self.state_dir, STOP_ORDER)
        if purge:
            shutil.rmtree(self.state_dir, ignore_errors=True)
        return stopped

    def _start(self, timeout_s: float) -> ClusterState:
        bins = tool_bin_dir(self.progress)
        # Leftovers of a crashed run would hold ports or the etcd lock.
        processes.stop_all(self.state_dir, STOP_ORDER)
        pki = ensure_pki(self.state_dir / "pki")
        etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        api_url = f"https://127.0.0.1:{api_port}"
        self.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(pki, api_url)))
        self.kubeconfig.chmod(0o600)
        run = self.state_dir
        deadline = time.monotonic() + timeout_s

        self.progress("starting etcd")
        etcd = processes.start(
            "etcd",
            [
                str(bins / "etcd"),
                "--name=shinsa-dev",
                f"--data-dir={run / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=shinsa-dev=http://127.0.0.1:{peer_port}",
                # A throwaway dev store: fsync buys nothing and costs seconds on slow disks.
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            run,
        )
        self._wait_http(f"{etcd_url}/health", etcd, deadline)

        self.progress("starting kube-apiserver")
        apiserver = processes.start(
            "kube-apiserver",
            [
                str(bins / "kube-apiserver"),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={api_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                f"--cert-dir={run / 'apiserver-certs'}",
                "--v=1",
            ],
            run,
        )
        self._wait_http(f"{api_url}/readyz", apiserver, deadline, pki)

        common = [
            f"--kubeconfig={self.kubeconfig}",
            f"--authentication-kubeconfig={self.kubeconfig}",
            f"--authorization-kubeconfig={self.kubeconfig}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            "--v=1",
        ]
        self.progress("starting kube-controller-manager and kube-scheduler")
        processes.start(
            "kube-controller-manager",
            [
                str(bins / "kube-controller-manager"),
                *common,
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                # Fake nodes have no cloud and no pod CIDRs to allocate.
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
            ],
            run,
        )
        processes.start(
            "kube-scheduler", [str(bins / "kube-scheduler"), *common, f"--secure-port={free_port()}"], run
        )

        self.progress("starting kwok (simulated kubelets)")
        processes.start(
            "kwok",
            [
                str(bins / "kwok"),
                f"--kubeconfig={self.kubeconfig}",
                f"--config={bins / 'kwok-stages.yaml'}",
                f"--config={SIMULATION_STAGES}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                "--cidr=10.244.0.0/16",
                "--node-ip=10.0.0.1",
                f"--server-address=127.0.0.1:{free_port()}",
            ],
            run,
        )
        state = ClusterState(
            state_dir=str(run),
            apiserver_url=api_url,
            etcd_url=etcd_url,
            kubeconfig=str(self.kubeconfig),
            bin_dir=str(bins),
        )
        self.state_file.write_text(json.dumps(asdict(state), indent=2))
        self._wait_default_service_account(deadline)
        return state

    def _wait_http(
        self, url: str, proc: processes.Managed, deadline: float, pki: PkiPaths | None = None
    ) -> None:
        verify: ssl.SSLContext | bool = True
        if pki:
            verify = ssl.create_default_context(cafile=str(pki.ca_cert))
            verify.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
        last = ""
        with httpx.Client(timeout=2.0, verify=verify) as http:
            while time.monotonic() < deadline:
                processes.check_alive(proc)
                try:
                    response = http.get(url)
                    if response.status_code == 200:
                        return
                    last = f"HTTP {response.status_code}: {response.text[:300]}"
                except httpx.HTTPError as exc:
                    last = str(exc)
                time.sleep(0.3)
        raise ClusterError(f"{proc.name} did not become healthy at {url} ({last}); see {proc.log}")

    def api(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def _wait_default_service_account(self, deadline: float) -> None:
        # Pods are refused until the service-account controller has made `default`.
        core = client.CoreV1Api(self.api())
        while time.monotonic() < deadline:
            try:
                core.read_namespaced_service_account("default", "default")
                return
            except ApiException as exc:
                if exc.status != 404:
                    raise
            time.sleep(0.3)
        raise ClusterError("kube-controller-manager did not create the default service account in time")

    def ensure_nodes(self, pools: list[NodePool], timeout_s: float = 60.0) -> list[str]:
        core = client.CoreV1Api(self.api())
        names = []
        for pool in pools:
            for i in range(pool.count):
                manifest = node_manifest(pool, i)
                names.append(manifest["metadata"]["name"])
                try:
                    core.create_node(manifest)
                except ApiException as exc:
                    if exc.status != 409:
                        raise
        self.progress(f"waiting for {len(names)} simulated node(s) to be Ready")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            ready = {
                n.metadata.name
                for n in core.list_node().items
                if any(c.type == "Ready" and c.status == "True" for c in (n.status.conditions or []))
            }
            if set(names) <= ready:
                return names
            time.sleep(0.3)
        raise ClusterError(
            f"nodes not Ready after {timeout_s:.0f}s; see {self.state_dir / 'logs' / 'kwok.log'}"
        )

    def ensure_local_runner(self, timeout_s: float = 60.0) -> Path:
        """Start `shinsa.devcluster.local_runner` unless it runs: the `local-runner` Node whose pods
        run as processes here, and the ModelDeployments' stand-in endpoints. Returns its directory
        (pods and logs under pods/, runner.json with the proxy settings its pods get)."""
        from shinsa.devcluster import local_runner

        run = self.state_dir / "local-runner"
        if processes.alive(self.state_dir, local_runner.COMPONENT):
            return run
        run.mkdir(parents=True, exist_ok=True)
        (run / "runner.json").unlink(missing_ok=True)
        self.progress("starting the local runner (runs the pods scheduled to node local-runner)")
        argv = [sys.executable, "-m", "shinsa.devcluster.local_runner", f"--kubeconfig={self.kubeconfig}"]
        proc = processes.start(local_runner.COMPONENT, [*argv, f"--dir={run}"], self.state_dir)
        deadline = time.monotonic() + timeout_s
        while not (run / "runner.json").exists():
            processes.check_alive(proc)
            if time.monotonic() > deadline:
                raise ClusterError(f"the local runner did not start in {timeout_s:.0f}s; see {proc.log}")
            time.sleep(0.2)
        return run
