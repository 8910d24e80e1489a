"""The real servers around the cluster that development and tests need: an MLflow tracking
server (sqlite backend, local artifact store) and an S3-compatible object store (versitygw)."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shinsa.devcluster import processes
from shinsa.devcluster.cluster import ClusterError, free_port, tool_bin_dir


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


# Development credentials of the local S3 server; it listens on loopback only.
S3_ACCESS_KEY = "shinsa-dev"
S3_SECRET_KEY = "shinsa-dev-secret"


def start_s3(run_dir: Path, port: int | None = None, timeout_s: float = 60.0) -> Service:
    """A real S3-compatible server over HTTP: versitygw (built from its Go module by
    tools/build.sh) serving buckets as directories under run_dir/s3. Clients authenticate with
    S3_ACCESS_KEY / S3_SECRET_KEY."""
    data = run_dir / "s3"
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    proc = processes.start(
        "s3",
        [
            str(tool_bin_dir() / "versitygw"),
            f"--access={S3_ACCESS_KEY}",
            f"--secret={S3_SECRET_KEY}",
            f"--port=127.0.0.1:{port}",
            "posix",
            str(data),
        ],
        run_dir,
    )
    # An anonymous GET / is answered 403 (AccessDenied): the server is up and checks signatures.
    return _wait_healthy(Service("s3", f"http://127.0.0.1:{port}", proc), "/", timeout_s)
