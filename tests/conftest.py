"""Session fixtures: the real servers e2e tests run against. Each starts once, on first use, and
is stopped at the end of the session; unit tests start nothing."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import LocalCluster, NodePool, free_port
from shinsa.devcluster.crds import install_crds
from shinsa.devcluster.kueue import RunningKueue
from shinsa.devcluster.kueue import start as start_kueue
from shinsa.devcluster.kueue import stop as stop_kueue
from shinsa.devcluster.lws import RunningLws
from shinsa.devcluster.lws import start as start_lws
from shinsa.devcluster.lws import stop as stop_lws
from shinsa.devcluster.services import S3_ACCESS_KEY, S3_SECRET_KEY, start_mlflow, start_s3
from tests.support.operator import InProcessOperator, operator_settings

REPO = Path(__file__).resolve().parents[1]

# The virtualenv is shared by every clone and its editable install points at whichever clone last
# ran `make env`: child processes (the CLI, the operator under a ServiceAccount) must import this
# checkout too, as pytest itself does (pyproject's pythonpath).
os.environ["PYTHONPATH"] = os.pathsep.join(
    [str(REPO / "operator"), str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
)

# The session operator's settings name the MLflow and S3 servers before they run: they start on
# these ports when a test first asks for them (most tests need neither), and until then the
# operator sees them as a real operator sees a server that is down.
MLFLOW_PORT, S3_PORT = free_port(), free_port()

# Two 8-GPU H100 nodes and one CPU node: enough to place multi-GPU layouts and to leave
# a 9-GPU request unschedulable.
TEST_FIELD_MANAGER = "shinsa-tests"

TEST_POOLS = [
    NodePool("gpu-node", 2, gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3"),
    NodePool("cpu-node", 1, gpus=0),
]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        # The local runner's node is tainted: only pods that ask for it leave the KWOK nodes.
        local.up(TEST_POOLS, local_runner=True)
        # The operator and kubectl-style helpers in tests read the standard variable.
        os.environ["KUBECONFIG"] = str(local.kubeconfig)
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
def kube(cluster: LocalCluster) -> client.ApiClient:
    return cluster.api()


@pytest.fixture
def namespace(kube: client.ApiClient) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The tracking URI of a real `mlflow server` on loopback (sqlite backend)."""
    run_dir = tmp_path_factory.mktemp("mlflow")
    service = start_mlflow(run_dir, port=MLFLOW_PORT)
    try:
        yield service.url
    finally:
        processes.stop_all(run_dir, [service.name])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The endpoint URL of a real S3-compatible server on loopback, with boto3 credentials set."""
    run_dir = tmp_path_factory.mktemp("s3")
    service = start_s3(run_dir, port=S3_PORT)
    os.environ.update(
        AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ENDPOINT_URL=service.url,
    )
    try:
        yield service.url
    finally:
        processes.stop_all(run_dir, [service.name])


@pytest.fixture(scope="session")
def crds(kube: client.ApiClient) -> list[str]:
    """Shinsa's CRDs as committed in crds/, installed and Established."""
    committed = [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]
    return install_crds(kube, committed, TEST_FIELD_MANAGER)


@pytest.fixture(scope="session")
def operator(crds: list[str]) -> Iterator[InProcessOperator]:
    """The Shinsa operator running in-process, cluster-wide, against the test cluster."""
    settings = operator_settings(
        mlflow_tracking_uri=f"http://127.0.0.1:{MLFLOW_PORT}", s3_endpoint_url=f"http://127.0.0.1:{S3_PORT}"
    )
    with InProcessOperator(settings) as running:
        yield running


@pytest.fixture(scope="session")
def kueue(cluster: LocalCluster) -> Iterator[RunningKueue]:
    """The real Kueue controller (tools/kueue's pin) against the test cluster, started on first
    use. From then on its webhooks see every Job and pod of the session; only those labelled
    kueue.x-k8s.io/queue-name are queued."""
    running = start_kueue(cluster)
    try:
        yield running
    finally:
        stop_kueue(cluster)


@pytest.fixture(scope="session")
def upstream_crds(kube: client.ApiClient) -> list[str]:
    """The real LeaderWorkerSet, KServe InferenceService and Argo WorkflowTemplate CRDs pinned in
    tools/upstream-crds.txt (read from their Go modules), installed and Established. No controller
    of theirs runs: the API server validates Shinsa's objects against their schemas, nothing more."""
    from shinsa.devcluster.upstream import load_crds

    return install_crds(kube, load_crds(), TEST_FIELD_MANAGER)


@pytest.fixture(scope="session")
def lws(cluster: LocalCluster, upstream_crds: list[str]) -> Iterator[RunningLws]:
    """The real LeaderWorkerSet controller (tools/lws's pin) against the test cluster, started on
    first use on the CRD `upstream_crds` installed, so the CRD has one field manager. From then on
    every LeaderWorkerSet of the session gets its StatefulSets and pods."""
    from shinsa.devcluster.upstream import pin_for

    running = start_lws(cluster, install_crd=False)
    try:
        # Two pins of one project: a controller newer than its CRD would drop what it does not know.
        pinned = pin_for("sigs.k8s.io/lws").version
        if running.version != pinned:
            pytest.fail(f"tools/lws/go.mod pins LWS {running.version}, tools/upstream-crds.txt {pinned}")
        yield running
    finally:
        stop_lws(cluster)
