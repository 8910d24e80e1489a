"""`shinsa dev up` / `shinsa dev down` as a developer runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def shinsa(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shinsa.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


def processes_using(path: Path) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(path) in text:
            found.append(text)
    return found


def test_dev_up_creates_labelled_tainted_gpu_nodes_and_down_leaves_no_process(tmp_path: Path) -> None:
    state = tmp_path / "dev"
    up_args = ["dev", "up", "--nodes", "1", "--gpus-per-node", "4", "--gpu-product", "NVIDIA-H200"]
    up_args += ["--cpu-nodes", "0", "--state-dir", str(state)]
    up = shinsa(*up_args)
    try:
        assert up.returncode == 0, up.stderr
        kubeconfig = state / "kubeconfig"
        assert f"KUBECONFIG={kubeconfig}" in up.stderr
        assert yaml.safe_load(kubeconfig.read_text())["current-context"] == "shinsa-dev"

        kubectl = Path(json.loads((state / "state.json").read_text())["bin_dir"]) / "kubectl"
        got = subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "get", "nodes", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        (node,) = json.loads(got.stdout)["items"]
        labels = node["metadata"]["labels"]
        assert labels["nvidia.com/gpu.product"] == "NVIDIA-H200"
        assert labels["nvidia.com/gpu.count"] == "4"
        assert labels["nvidia.com/gpu.memory"] == "143771"
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == "4"
        assert {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"} in node["spec"]["taints"]

        version = subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "version", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(version.stdout)["serverVersion"]["gitVersion"].startswith("v1.")

        again = shinsa(*up_args)
        assert again.returncode == 0 and "already running" in again.stderr
        assert processes_using(state), "the control plane should be running"
    finally:
        down = shinsa("dev", "down", "--state-dir", str(state))
    assert down.returncode == 0, down.stderr
    for name in ["kwok", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"]:
        assert name in down.stderr
    assert processes_using(state) == []


def test_dev_up_refuses_an_unknown_gpu_product_naming_the_option_before_starting_anything(
    tmp_path: Path,
) -> None:
    state = tmp_path / "dev"
    try:
        up = shinsa("dev", "up", "--gpu-product", "NVIDIA-Imaginary-1TB", "--state-dir", str(state))
        assert up.returncode == 1
        assert "NVIDIA-Imaginary-1TB" in up.stderr and "--gpu-memory-mib" in up.stderr
        assert processes_using(state) == []
    finally:
        shinsa("dev", "down", "--state-dir", str(state))


def test_the_demo_runs_to_the_end_and_demo_down_stops_all_it_started(tmp_path: Path) -> None:
    """`make demo` is `shinsa demo`: every example in the report, the example EvalRun's scores and
    decision, where to look next, how to stop; `demo down` leaves no process behind."""
    import os

    from tests.support.waiting import eventually

    state = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}  # rich wraps a narrow table; a terminal is wider
    try:
        run = subprocess.run(
            [sys.executable, "-m", "shinsa.cli", "demo", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env=env,
        )
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
        examples = [yaml.safe_load(p.read_text()) for p in EXAMPLES.glob("*.yaml")]
        report = run.stdout
        assert examples and all(doc["metadata"]["name"] in report for doc in examples), report
        assert "Ready" in report and "MLflow UI: http://127.0.0.1:" in report
        assert "shinsa demo down" in report
        # The example EvalRun really ran its evaluator on the local runner against the stand-ins:
        # scores for both benchmarks, its gates decided, and `kubectl get er` shows the columns.
        (eval_run,) = [doc for doc in examples if doc["kind"] == "EvalRun"]
        name, model = eval_run["metadata"]["name"], eval_run["spec"]["model"]["deploymentRef"]["name"]
        assert f"Decision of {name}: Passed" in report, report
        row = next(line.split() for line in report.splitlines() if line.startswith(f"{name} "))
        assert row[1:3] == [model, "Succeeded"] and row[5] == "Passed", row
        assert all(1 <= float(score) <= 10 for score in row[3:5]), row
        # The promotion: the better candidate promoted and production rolled to its revision, the
        # worse one rejected and torn down, the alias' history from MLflow, how to roll back.
        assert "Decision of chat-candidate-a: Passed" in report
        assert "Promoted: Promoted shinsa-demo-chat@champion is version 2 (was version 1)" in report
        assert "Decision of chat-candidate-b: Failed" in report
        assert "chat-candidate-b: not promoted, its ModelDeployment deleted" in report
        assert "chat-production serves hf://Qwen/Qwen3-8B at revision sft-v2 (version 2), Ready" in report
        assert "shinsa promote rollback shinsa-demo-chat --alias champion" in report
        history = report[report.index("every move") :]
        assert "seed" in history and "shinsa-demo/chat-candidate-a" in history
        started = {p.stem: int(p.read_text().split()[0]) for p in (state / "pids").glob("*.pid")}
        expected = {"shinsa-operator", "mlflow", "s3", "local-runner", "kube-apiserver", "etcd", "kwok"}
        assert expected <= started.keys()
    finally:
        down = subprocess.run(
            [sys.executable, "-m", "shinsa.cli", "demo", "down", "--state-dir", str(state)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert down.returncode == 0, down.stderr

    # Each was started as the leader of its own process group: its children (MLflow's workers,
    # say) must be gone too.
    groups = set(started.values())
    eventually(
        lambda: not alive_in_groups(groups), timeout_s=30, what="every process the demo started to exit"
    )


def alive_in_groups(groups: set[int]) -> list[int]:
    """Live (not zombie) processes whose process group is one of `groups`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, _ppid, pgrp = stat.read_text().rsplit(") ", 1)[1].split()[:3]
        except (OSError, IndexError, ValueError):
            continue
        if int(pgrp) in groups and state != "Z":
            found.append(int(stat.parent.name))
    return found
