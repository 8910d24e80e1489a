"""`shinsa demo`: the whole local stack on embedded defaults, then a readable account of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.table import Table

from shinsa.commands.demo_promotion import REGISTERED_MODEL, run_promotion
from shinsa.commands.dev import evaluator_placement_env
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
# One bucket of the local S3 server holds the example EvalRuns' datasets (under datasets/, copied
# from examples/datasets/) and, as the operator's results bucket, their checkpoints and results.
DEMO_BUCKET = "shinsa-demo"
EVALUATOR_ENV_SECRET = "shinsa-evaluator-env"
FINAL_PHASES = {"Succeeded", "Failed", "Incomplete"}
# The condition that says what an EvalRun in a phase is doing or waiting for.
PHASE_CONDITION = {
    "WaitingForTarget": "TargetReady",
    "Running": "JobComplete",
    "Gating": "JobComplete",
    "Failed": "JobComplete",
    "Incomplete": "JobComplete",
    "Succeeded": "GatesEvaluated",
}


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


def _start_operator(state_dir: Path, env: dict[str, str]) -> None:
    # A running operator is kept only if it was started with these settings (a demo of an older
    # checkout, say, ran it without the EvalRun ones).
    recorded = state_dir / "shinsa-operator.env.json"
    if processes.alive(state_dir, "shinsa-operator"):
        if recorded.exists() and json.loads(recorded.read_text()) == env:
            return
        processes.stop(state_dir, "shinsa-operator")
    recorded.write_text(json.dumps(env, indent=2))
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
        env=env,
    )


def _operator_env(kubeconfig: Path, mlflow_url: str, s3_url: str) -> dict[str, str]:
    """What the operator needs to run EvalRuns here (docs/install.md): MLflow, the S3 server and
    results bucket, credentials for it in the evaluator's Secret, and evaluation Jobs placed on
    the local runner's node, the only one whose pods really run."""
    from shinsa.devcluster.services import S3_ACCESS_KEY, S3_SECRET_KEY

    return {
        "KUBECONFIG": str(kubeconfig),
        "MLFLOW_TRACKING_URI": mlflow_url,
        "AWS_ENDPOINT_URL": s3_url,
        # The operator reads the results the evaluator wrote.
        "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
        "SHINSA_RESULTS_BUCKET": DEMO_BUCKET,
        "SHINSA_EVALUATOR_ENV_SECRET": EVALUATOR_ENV_SECRET,
        # A demo is watched: look at a waiting run every 5 s rather than every 30 s.
        "SHINSA_EVALRUN_RESYNC_SECONDS": "5",
        # ... and production follows a moved alias within seconds rather than a minute.
        "SHINSA_REGISTRY_RESYNC_SECONDS": "5",
        **evaluator_placement_env(),
    }


def _reuse_or_start(state_dir: Path, name: str) -> str:
    """The URL of the demo's `name` service (mlflow or s3), started unless a live one is recorded."""
    from shinsa.devcluster.services import start_mlflow, start_s3

    url_file = state_dir / f"{name}.url"
    if processes.alive(state_dir, name) and url_file.exists():
        return url_file.read_text().strip()
    service = {"mlflow": start_mlflow, "s3": start_s3}[name](state_dir)
    url_file.write_text(service.url)
    return service.url


def _upload_datasets(s3_url: str, datasets: Path) -> int:
    """Create the demo bucket and copy examples/datasets/ to s3://<bucket>/datasets/."""
    import boto3

    from shinsa.devcluster.services import S3_ACCESS_KEY, S3_SECRET_KEY

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_url,
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        region_name="us-east-1",
    )
    if DEMO_BUCKET not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(Bucket=DEMO_BUCKET)
    files = sorted(p for p in datasets.rglob("*") if p.is_file())
    for path in files:
        s3.upload_file(str(path), DEMO_BUCKET, f"datasets/{path.relative_to(datasets).as_posix()}")
    return len(files)


def _evaluator_secret() -> None:
    """The Secret the evaluation Jobs take their S3 credentials from (SHINSA_EVALUATOR_ENV_SECRET)."""
    from shinsa.controllers import kube
    from shinsa.devcluster.services import S3_ACCESS_KEY, S3_SECRET_KEY

    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": EVALUATOR_ENV_SECRET, "namespace": DEMO_NAMESPACE},
            "stringData": {
                "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
                "AWS_DEFAULT_REGION": "us-east-1",
            },
        }
    )


def _ensure_namespace() -> None:
    from kubernetes import client

    from shinsa.controllers import kube

    core = client.CoreV1Api(kube.api_client())
    if not core.list_namespace(field_selector=f"metadata.name={DEMO_NAMESPACE}").items:
        core.create_namespace({"metadata": {"name": DEMO_NAMESPACE}})


def _apply_examples(examples: Path) -> dict[str, list[str]]:
    """Apply every manifest in `examples` to the demo namespace; the names applied, by kind."""
    from shinsa.controllers import kube

    names: dict[str, list[str]] = {}
    for path in sorted(examples.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc:
                continue
            doc["metadata"]["namespace"] = DEMO_NAMESPACE
            kube.apply(doc)
            names.setdefault(doc["kind"], []).append(doc["metadata"]["name"])
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


def _get(plural: str, name: str) -> dict[str, Any]:
    from shinsa.controllers import kube

    return kube.get_custom(plural, DEMO_NAMESPACE, name) or {}


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


def _evaluator_progress(state_dir: Path, job: str | None) -> str:
    """The evaluator's last progress line, read from its log where the local runner keeps it
    (`<state>/local-runner/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`)."""
    if not job:
        return ""
    logs = (state_dir / "local-runner" / "pods").glob(f"{DEMO_NAMESPACE}_{job}-*/*/*.log")
    newest = max(logs, key=lambda p: p.stat().st_mtime, default=None)
    if newest is None:
        return ""
    for line in reversed(newest.read_text(errors="replace").splitlines()[-50:]):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == "progress":
            return f"{record['benchmark']} {record['done']}/{record['total']} answered and judged"
        if isinstance(record, dict) and record.get("event") in ("benchmark started", "benchmark finished"):
            return f"{record['benchmark']}: {record['event'].removeprefix('benchmark ')}"
    return ""


def _run_state(state_dir: Path, run: dict[str, Any]) -> tuple[str, str]:
    """An EvalRun's phase and a line saying what it is doing or waiting for."""
    status = run.get("status") or {}
    phase = str(status.get("phase") or "Pending")
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    condition = conditions.get(PHASE_CONDITION.get(phase, ""), {})
    detail = str(condition.get("message") or "")
    if phase == "Running" and (progress := _evaluator_progress(state_dir, status.get("jobName"))):
        detail = f"{detail}: {progress}" if detail else progress
    return phase, detail


def _follow_eval_runs(state_dir: Path, names: list[str], timeout_s: float) -> dict[str, dict[str, Any]]:
    """Wait until every EvalRun is final, printing each change of what it does."""

    started = time.monotonic()
    shown: dict[str, tuple[str, str]] = {}
    while True:
        runs = {name: _get("evalruns", name) for name in names}
        for name, run in runs.items():
            now = _run_state(state_dir, run)
            if shown.get(name) != now:
                shown[name] = now
                elapsed = time.monotonic() - started
                console.print(f"  [dim]{elapsed:4.0f}s[/dim] {name}: [bold]{now[0]}[/bold] {now[1]}")
        if all(phase in FINAL_PHASES for phase, _ in shown.values()):
            return runs
        if time.monotonic() - started > timeout_s:
            raise ClusterError(f"timed out waiting for the EvalRun(s) {', '.join(names)} to finish")
        time.sleep(1.0)


def _number(value: Any, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _eval_report(name: str, run: dict[str, Any]) -> list[Table | str]:
    status = run.get("status") or {}
    scores = Table(title=f"EvalRun {name}: {status.get('model', '?')}, {status.get('phase', '?')}")
    for column in ("benchmark", "mean", "std", "95% CI", "n"):
        scores.add_column(column, justify="left" if column == "benchmark" else "right")
    for benchmark, score in (status.get("scores") or {}).items():
        interval = f"{_number(score.get('ciLow'))} – {_number(score.get('ciHigh'))}"
        scores.add_row(
            benchmark, _number(score["mean"]), _number(score.get("std")), interval, str(score["n"])
        )
    gates = Table(title=f"Gates of {name}")
    for column in ("rule", "verdict", "observed", "bound", "why"):
        gates.add_column(column, no_wrap=column != "why")
    colour = {"Passed": "green", "Failed": "red"}
    for row in status.get("gates") or []:
        verdict = row.get("verdict", "?")
        gates.add_row(
            row.get("rule", ""),
            f"[{colour.get(verdict, 'yellow')}]{verdict}[/]",
            _number(row.get("observed")),
            _number(row.get("bound")),
            row.get("explanation", ""),
        )
    decision = status.get("decision")
    if decision:
        verdict = f"[bold {colour.get(decision, 'yellow')}]{decision}[/]"
    else:
        _, why = _run_state(Path(), run)
        verdict = f"[red]none[/red] ({why})"
    lines: list[Table | str] = [scores, gates] if status.get("gates") else [scores]
    lines.append(f"[bold]Decision[/bold] of {name}: {verdict}")
    if status.get("mlflowRunUrl"):
        lines.append(f"  MLflow run: {status['mlflowRunUrl']}")
    return lines


def _kubectl_get_er(bin_dir: str, kubeconfig: str) -> str:
    done = subprocess.run(
        [f"{bin_dir}/kubectl", "--kubeconfig", kubeconfig, "get", "er", "-n", DEMO_NAMESPACE],
        capture_output=True,
        text=True,
        check=False,
    )
    return (done.stdout or done.stderr).rstrip()


@app.callback()
def demo(
    ctx: typer.Context,
    examples: Annotated[
        Path,
        typer.Option(
            help="Directory of ModelDeployment and EvalRun manifests to apply; its datasets/ "
            "folder is uploaded to s3://shinsa-demo/datasets/."
        ),
    ] = DEFAULT_EXAMPLES,
    state_dir: Annotated[
        Path, typer.Option(help="Where the demo cluster keeps its state.", envvar="SHINSA_DEV_STATE_DIR")
    ] = DEFAULT_STATE_DIR,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the deployments to settle.")] = 180.0,
    eval_timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the EvalRuns to finish once the deployments settled.")
    ] = 420.0,
) -> None:
    """Start a local GPU cluster with the local runner, MLflow, S3 and the operator; apply
    examples/ (ModelDeployments and an EvalRun); show what happened, with the EvalRun's scores and
    gate decision."""
    if ctx.invoked_subcommand:
        return
    cluster = LocalCluster(state_dir, progress=lambda m: console.print(f"  [dim]{m}[/dim]"))
    try:
        _step(
            "starting the local control plane with two simulated 8×H100 nodes, a CPU node and the "
            "local runner (evaluation pods run for real; stand-in endpoints for the models)"
        )
        state = cluster.up(POOLS, local_runner=True)
        os.environ["KUBECONFIG"] = state.kubeconfig
        _step("installing the Shinsa CRDs (generated from the pydantic models)")
        _install_crds()
        _step("starting MLflow and the S3 server (versitygw)")
        mlflow_url = _reuse_or_start(cluster.state_dir, "mlflow")
        s3_url = _reuse_or_start(cluster.state_dir, "s3")
        uploaded = _upload_datasets(s3_url, examples / "datasets")
        console.print(f"  [dim]{uploaded} demo dataset file(s) in s3://{DEMO_BUCKET}/datasets/[/dim]")
        _step("starting the operator")
        _start_operator(cluster.state_dir, _operator_env(cluster.kubeconfig, mlflow_url, s3_url))
        _step(f"applying {examples}")
        _ensure_namespace()
        _evaluator_secret()
        applied = _apply_examples(examples)
        names = applied.get("ModelDeployment", [])
        eval_runs = applied.get("EvalRun", [])
        _step(f"waiting for {len(names)} ModelDeployment(s) to be planned, scheduled and Ready")
        _wait(lambda: all(_settled(n) for n in names), timeout, "the ModelDeployments to settle")
        mds = {name: _get("modeldeployments", name) for name in names}
        console.print(_report(mds))
        console.print("[bold]Endpoints[/bold] (OpenAI-compatible, in-cluster)")
        for line in _endpoints(mds):
            console.print(line)
        runs: dict[str, dict[str, Any]] = {}
        if eval_runs:
            _step(f"waiting for {len(eval_runs)} EvalRun(s) to run their evaluator and gates")
            runs = _follow_eval_runs(cluster.state_dir, eval_runs, eval_timeout)
        for name, run in runs.items():
            for item in _eval_report(name, run):
                console.print(item)
        candidates: dict[str, dict[str, Any]] = {}
        if (examples / "promotion").is_dir():
            candidates = run_promotion(
                examples=examples,
                namespace=DEMO_NAMESPACE,
                tracking_uri=mlflow_url,
                console=console,
                step=_step,
                wait=_wait,
                follow=lambda names, timeout_s: _follow_eval_runs(cluster.state_dir, names, timeout_s),
                report=_eval_report,
                timeout_s=eval_timeout,
            )
    except (ClusterError, processes.ProcessFailed) as exc:
        console.print(f"[red]error:[/red] {exc}")
        console.print(f"logs: {cluster.state_dir / 'logs'}")
        raise typer.Exit(1) from None

    if runs or candidates:
        console.print(f"[bold]kubectl get er -n {DEMO_NAMESPACE}[/bold]")
        console.print(_kubectl_get_er(state.bin_dir, state.kubeconfig), markup=False, highlight=False)
    console.print()
    console.print("[bold]Look further[/bold]")
    console.print(f"  export KUBECONFIG={state.kubeconfig}")
    console.print(f"  {state.bin_dir}/kubectl get modeldeployments,evalruns -n {DEMO_NAMESPACE}")
    console.print(f"  {state.bin_dir}/kubectl describe md llm-jp-4-32b-a3b-thinking -n {DEMO_NAMESPACE}")
    for name in [*runs, *candidates]:
        console.print(f"  {state.bin_dir}/kubectl describe er {name} -n {DEMO_NAMESPACE}")
    console.print(f"  {state.bin_dir}/kubectl get pods -n {DEMO_NAMESPACE} -o wide")
    console.print(f"  evaluator logs: {cluster.state_dir / 'local-runner' / 'pods'}")
    console.print(f"  MLflow UI: {mlflow_url}")
    if candidates:
        console.print(f"  registered model: {mlflow_url}/#/models/{REGISTERED_MODEL}")
    console.print(f"  operator log: {cluster.state_dir / 'logs' / 'shinsa-operator.log'}")
    console.print("[bold]Stop everything[/bold]: make demo-down   (or: shinsa demo down)")
    unfinished = [
        name
        for name, run in {**runs, **candidates}.items()
        if (run.get("status") or {}).get("phase") != "Succeeded"
    ]
    if unfinished:
        console.print(f"[red]not Succeeded:[/red] {', '.join(unfinished)}")
        raise typer.Exit(1)


@app.command()
def down(
    state_dir: Annotated[Path, typer.Option(envvar="SHINSA_DEV_STATE_DIR")] = DEFAULT_STATE_DIR,
) -> None:
    """Stop everything the demo started: the operator, the local runner (and the evaluator processes
    it runs), MLflow, the S3 server and the control plane."""
    stopped = LocalCluster(state_dir).down()
    console.print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
