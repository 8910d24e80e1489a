"""The real servers around the cluster that development and tests need: an MLflow tracking
server (sqlite backend, local artifact store) and an S3-compatible object store."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import ClusterError, free_port


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    process: processes.Managed


def _executable(name: str) -> str:
    # Prefer the one installed beside this interpreter (the project's virtualenv).
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ClusterError(f"{name} not found; install the project with `make env`")
    return found


def _wait_healthy(service: Service, path: str, timeout_s: float) -> Service:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        processes.check_alive(service.process)
        try:
            response = httpx.get(service.url + path, timeout=2.0)
            if response.status_code < 500:
                return service
            last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ClusterError(
        f"{service.name} did not answer at {service.url}{path} ({last}); see {service.process.log}"
    )


def start_mlflow(run_dir: Path, port: int | None = None, timeout_s: float = 120.0) -> Service:
    """A real `mlflow server`: runs and registry in sqlite, artifacts proxied through the server
    so clients need no direct access to the store."""
    data = run_dir / "mlflow"
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = processes.start(
        "mlflow",
        [
            _executable("mlflow"),
            "server",
            "--host=127.0.0.1",
            f"--port={port}",
            f"--backend-store-uri=sqlite:///{data / 'mlflow.db'}",
            f"--artifacts-destination={data / 'artifacts'}",
            "--workers=1",
        ],
        run_dir,
    )
    return _wait_healthy(Service("mlflow", f"http://127.0.0.1:{port}", proc), "/health", timeout_s)


def start_s3(run_dir: Path, port: int | None = None, timeout_s: float = 60.0) -> Service:
    """An S3-compatible server over HTTP (moto's standalone server), used through boto3."""
    port = port or free_port()
    proc = processes.start("s3", [_executable("moto_server"), "-H", "127.0.0.1", "-p", str(port)], run_dir)
    return _wait_healthy(Service("s3", f"http://127.0.0.1:{port}", proc), "/", timeout_s)
