"""`shinsa dev`: a real local Kubernetes control plane with simulated GPU nodes."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from shinsa.devcluster.cluster import ClusterError, LocalCluster, NodePool, default_state_dir
from shinsa.devcluster.processes import ProcessFailed

app = typer.Typer(
    help="Run a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, "
    "kube-scheduler) with KWOK-simulated GPU nodes. No Docker engine or GPU is needed.",
    no_args_is_help=True,
)
console = Console(stderr=True, soft_wrap=True)
DEFAULT_STATE_DIR = default_state_dir()

StateDir = Annotated[
    Path,
    typer.Option(
        help="Where the cluster keeps its certificates, etcd data, logs and kubeconfig.",
        envvar="SHINSA_DEV_STATE_DIR",
    ),
]


def evaluator_placement_env() -> dict[str, str]:
    """The operator settings (docs/install.md) that send evaluation Jobs to the local runner's
    node: its label as their nodeSelector, its taint among their tolerations."""
    from shinsa.devcluster.local_runner import RUNNER_NODE_SELECTOR, RUNNER_TOLERATION

    return {
        "SHINSA_EVALUATOR_NODE_SELECTOR": json.dumps(RUNNER_NODE_SELECTOR),
        "SHINSA_EVALUATOR_TOLERATIONS": json.dumps([RUNNER_TOLERATION]),
    }


@app.command()
def up(
    nodes: Annotated[int, typer.Option(min=0, help="Simulated GPU nodes to create.")] = 2,
    gpus_per_node: Annotated[int, typer.Option(min=1, help="nvidia.com/gpu capacity of each GPU node.")] = 8,
    gpu_product: Annotated[
        str,
        typer.Option(
            help="nvidia.com/gpu.product label of the GPU nodes (as GPU feature discovery reports it)."
        ),
    ] = "NVIDIA-H100-80GB-HBM3",
    gpu_memory_mib: Annotated[
        int | None, typer.Option(help="nvidia.com/gpu.memory label; derived from --gpu-product when known.")
    ] = None,
    cpu_nodes: Annotated[
        int, typer.Option(min=0, help="Untainted CPU-only nodes (for Jobs, MLflow, ...).")
    ] = 1,
    kueue: Annotated[
        bool,
        typer.Option(
            help="Also run the Kueue controller (Jobs and pods labelled kueue.x-k8s.io/queue-name "
            "wait for ClusterQueue quota)."
        ),
    ] = False,
    lws: Annotated[
        bool,
        typer.Option(
            help="Also run the LeaderWorkerSet controller (with its CRD): backend leaderworkerset "
            "ModelDeployments get leader and worker pods."
        ),
    ] = False,
    local_runner: Annotated[
        bool,
        typer.Option(
            help="Also run the local runner: node local-runner, whose pods (evaluation Jobs that select "
            "and tolerate it) really run as processes here, and a stand-in endpoint per ModelDeployment."
        ),
    ] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Start the control plane (building its binaries on first use) and create the nodes.

    Idempotent: a second `up` keeps the running cluster and adds missing nodes.
    """
    cluster = LocalCluster(state_dir, progress=lambda msg: console.print(f"[dim]·[/dim] {msg}"))
    pools = [
        NodePool(
            "gpu-node", nodes, gpus=gpus_per_node, gpu_product=gpu_product, gpu_memory_mib=gpu_memory_mib
        ),
        NodePool("cpu-node", cpu_nodes, gpus=0),
    ]
    try:
        state = cluster.up([p for p in pools if p.count], kueue=kueue, lws=lws, local_runner=local_runner)
    except (ClusterError, ProcessFailed) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(f"[green]control plane ready[/green] at {state.apiserver_url}")
    console.print(f"  export KUBECONFIG={state.kubeconfig}")
    console.print("  kubectl get nodes -L nvidia.com/gpu.product,nvidia.com/gpu.count")
    if kueue:
        console.print("  kueue runs: kubectl get clusterqueues,localqueues,workloads -A")
    if lws:
        console.print("  lws runs: kubectl get leaderworkersets,statefulsets,pods -A")
    if local_runner:
        runner_dir = cluster.state_dir / "local-runner"
        console.print(f"  local runner: pods on node local-runner run here, logs in {runner_dir}")
        placement = " ".join(f"{k}={shlex.quote(v)}" for k, v in evaluator_placement_env().items())
        console.print(f"  evaluation Jobs go there with the operator settings: export {placement}")
    console.print("  stop it with: shinsa dev down")


@app.command()
def down(
    purge: Annotated[bool, typer.Option(help="Also delete etcd data, certificates and logs.")] = False,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Stop every process `shinsa dev up` started (and nothing else)."""
    stopped = LocalCluster(state_dir).down(purge=purge)
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")


@app.command()
def status(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """Show whether the control plane runs, its address and the processes it consists of."""
    from shinsa.devcluster import processes

    cluster = LocalCluster(state_dir)
    state = cluster.state()
    running = processes.running(cluster.state_dir)
    if not running or state is None:
        console.print("the local control plane is not running (start it with: shinsa dev up)")
        raise typer.Exit(1)
    table = Table("process", "pid", "log", title=f"shinsa dev cluster: {state.apiserver_url}")
    for proc in running:
        table.add_row(proc.name, str(proc.pid), str(proc.log))
    Console().print(table)
    Console().print(f"KUBECONFIG={state.kubeconfig}")
