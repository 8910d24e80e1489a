"""`shinsa demo`: the whole local stack on embedded defaults, then a readable account of it."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import (
    ClusterError,
    LocalCluster,
    NodePool,
    default_state_dir,
    free_port,
    repo_root,
)

app = typer.Typer(
    help="Run the end-to-end demo on a local simulated GPU cluster.", invoke_without_command=True
)
# A log or CI run has no terminal width to go by; the table needs about 120 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
DEMO_NAMESPACE = "shinsa-demo"
DEFAULT_STATE_DIR = default_state_dir()
DEFAULT_EXAMPLES = repo_root() / "examples"
POOLS = [
    NodePool("gpu-node", 2, gpus=8, gpu_product="NVIDIA-H100-80GB-HBM3"),
    NodePool("cpu-node", 1, gpus=0),
]


def _step(message: str) -> None:
    console.print(f"[bold cyan]▸[/bold cyan] {message}")


def _install_crds() -> None:
    from shinsa.api.crd import crd_manifests
    from shinsa.controllers import kube
    from shinsa.devcluster.crds import install_crds

    install_crds(kube.api_client(), crd_manifests(), field_manager=kube.FIELD_MANAGER)


def _wait(probe: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise ClusterError(f"timed out waiting for {what}")


def _start_operator(state_dir: Path, kubeconfig: Path) -> None:
    if processes.alive(state_dir, "shinsa-operator"):
        return
    processes.start(
        "shinsa-operator",
        [
            sys.executable,
            "-m",
            "shinsa.cli",
            "operator",
            "run",
            f"--metrics-port={free_port()}",
            "--liveness-port=0",
        ],
        state_dir,
        env={"KUBECONFIG": str(kubeconfig)},
    )


def _start_mlflow(state_dir: Path) -> str:
    from shinsa.devcluster.services import start_mlflow

    url_file = state_dir / "mlflow.url"
    if processes.alive(state_dir, "mlflow") and url_file.exists():
        return url_file.read_text().strip()
    service = start_mlflow(state_dir)
    url_file.write_text(service.url)
    return service.url


def _apply_examples(examples: Path) -> list[str]:
    from kubernetes import client

    from shinsa.controllers import kube

    core = client.CoreV1Api(kube.api_client())
    if not core.list_namespace(field_selector=f"metadata.name={DEMO_NAMESPACE}").items:
        core.create_namespace({"metadata": {"name": DEMO_NAMESPACE}})
    names = []
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            doc["metadata"]["namespace"] = DEMO_NAMESPACE
            kube.apply(doc)
            names.append(doc["metadata"]["name"])
    return names


def _settled(name: str) -> dict[str, Any] | None:
    from shinsa.controllers import kube

    md = kube.get_custom("modeldeployments", DEMO_NAMESPACE, name)
    conditions = {c["type"]: c for c in (md or {}).get("status", {}).get("conditions", [])}
    ready, planned = conditions.get("Ready", {}), conditions.get("Planned", {})
    if ready.get("status") == "True" or planned.get("status") == "False":
        return md
    scheduled = conditions.get("Scheduled", {})
    return md if scheduled.get("status") == "False" else None


def _report(mds: dict[str, dict[str, Any]]) -> Table:
    from shinsa.controllers import kube

    table = Table(title=f"ModelDeployments in namespace {DEMO_NAMESPACE}")
    for column in ("name", "layout", "GPUs", "weights", "KV/token", "fits", "Ready", "pods → nodes"):
        table.add_column(column, no_wrap=column in ("name", "layout", "pods → nodes"))
    for name, md in mds.items():
        status = md.get("status", {})
        plan = status.get("plan") or {}
        conditions = {c["type"]: c for c in status.get("conditions", [])}
        pods = kube.list_pods(DEMO_NAMESPACE, {"shinsa.dev/model-deployment": name})
        placement = "\n".join(p["spec"].get("nodeName") or "[yellow]Pending[/yellow]" for p in pods) or "-"
        ready = conditions.get("Ready", {})
        ready_text = (
            "[green]True[/green]"
            if ready.get("status") == "True"
            else f"[yellow]{ready.get('status', '?')}[/yellow] {ready.get('reason', '')}"
        )
        if not plan:
            planned = conditions.get("Planned", {})
            table.add_row(
                name,
                f"[red]{planned.get('reason', 'not planned')}[/red]",
                "",
                "",
                "",
                "",
                ready_text,
                placement,
            )
            continue
        table.add_row(
            name,
            plan["layout"],
            f"{plan['gpusPerReplica']}×{plan.get('gpu', '')}",
            f"{plan['weightsGiB']:.1f} GiB",
            f"{plan['kvCacheBytesPerToken'] // 1024} KiB",
            f"{plan['maxConcurrentSequences']}×{plan['maxModelLen'] // 1024}k",
            ready_text,
            placement,
        )
    return table


def _endpoints(mds: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    for name, md in mds.items():
        status = md.get("status", {})
        planned: dict[str, Any] = next(
            (c for c in status.get("conditions", []) if c["type"] == "Planned"), {}
        )
        detail = status.get("endpoint") or f"not planned: {planned.get('message', '')}"
        lines.append(f"  {name}: {detail}")
    return lines


@app.callback()
def demo(
    ctx: typer.Context,
    examples: Annotated[
        Path, typer.Option(help="Directory of ModelDeployment manifests to apply.")
    ] = DEFAULT_EXAMPLES,
    state_dir: Annotated[
        Path, typer.Option(help="Where the demo cluster keeps its state.", envvar="SHINSA_DEV_STATE_DIR")
    ] = DEFAULT_STATE_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the deployments to settle.")] = 180.0,
) -> None:
    """Start a local GPU cluster, MLflow and the operator; apply examples/; show what happened."""
    if ctx.invoked_subcommand:
        return
    cluster = LocalCluster(state_dir, progress=lambda m: console.print(f"  [dim]{m}[/dim]"))
    try:
        _step("starting the local control plane with two simulated 8×H100 nodes and a CPU node")
        state = cluster.up(POOLS)
        os.environ["KUBECONFIG"] = state.kubeconfig
        _step("installing the Shinsa CRDs (generated from the pydantic models)")
        _install_crds()
        _step("starting MLflow")
        mlflow_url = _start_mlflow(cluster.state_dir)
        _step("starting the operator")
        _start_operator(cluster.state_dir, cluster.kubeconfig)
        _step(f"applying {examples}")
        names = _apply_examples(examples)
        _step(f"waiting for {len(names)} ModelDeployment(s) to be planned, scheduled and Ready")
        _wait(lambda: all(_settled(n) for n in names), timeout, "the ModelDeployments to settle")
    except (ClusterError, processes.ProcessFailed) as exc:
        console.print(f"[red]error:[/red] {exc}")
        console.print(f"logs: {cluster.state_dir / 'logs'}")
        raise typer.Exit(1) from None

    from shinsa.controllers import kube

    mds = {name: kube.get_custom("modeldeployments", DEMO_NAMESPACE, name) or {} for name in names}
    console.print(_report(mds))
    console.print("[bold]Endpoints[/bold] (OpenAI-compatible, in-cluster)")
    for line in _endpoints(mds):
        console.print(line)
    console.print()
    console.print("[bold]Look further[/bold]")
    console.print(f"  export KUBECONFIG={state.kubeconfig}")
    console.print(f"  {state.bin_dir}/kubectl get modeldeployments -n {DEMO_NAMESPACE}")
    console.print(f"  {state.bin_dir}/kubectl describe md llm-jp-4-32b-a3b-thinking -n {DEMO_NAMESPACE}")
    console.print(f"  {state.bin_dir}/kubectl get pods -n {DEMO_NAMESPACE} -o wide")
    console.print(f"  MLflow UI: {mlflow_url}")
    console.print(f"  operator log: {cluster.state_dir / 'logs' / 'shinsa-operator.log'}")
    console.print("[bold]Stop everything[/bold]: make demo-down   (or: shinsa demo down)")


@app.command()
def down(
    state_dir: Annotated[Path, typer.Option(envvar="SHINSA_DEV_STATE_DIR")] = DEFAULT_STATE_DIR,
) -> None:
    """Stop the demo's operator, MLflow and control plane."""
    stopped = LocalCluster(state_dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
