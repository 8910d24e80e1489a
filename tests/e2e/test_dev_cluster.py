"""`shinsa dev up` / `shinsa dev down` as a developer runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e


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
