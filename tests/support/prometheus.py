"""A real Prometheus (Debian's 2.42, unpacked by tools/prometheus.sh) scraping loopback targets, and
promtool; started and stopped by the test that needs it."""

from __future__ import annotations

import subprocess
import time
import types
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.operator import terminate

REPO = Path(__file__).resolve().parents[2]


def binaries() -> tuple[Path, float]:
    """The directory holding `prometheus` and `promtool` (fetched into the user cache when missing),
    and the seconds that took."""
    started = time.monotonic()
    done = subprocess.run(
        [str(REPO / "tools" / "prometheus.sh")], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"tools/prometheus.sh failed ({done.returncode}):\n{done.stderr}")
    return Path(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


class Prometheus:
    """`prometheus` on a free loopback port scraping `targets` (host:port) every second as job
    `job`; leaving the block stops it."""

    def __init__(self, bin_dir: Path, workdir: Path, job: str, targets: list[str]) -> None:
        from shinsa.devcluster.cluster import free_port

        self.bin_dir = bin_dir
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
        }
        self.config = workdir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    def __enter__(self) -> Prometheus:
        self.started_at = time.monotonic()
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    str(self.bin_dir / "prometheus"),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited ({self.proc.returncode}):\n{self.log_text()[-4000:]}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"prometheus did not become ready:\n{self.log_text()[-4000:]}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        terminate(self.proc)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector /api/v1/query returns for `promql` now."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        assert body["data"]["resultType"] == "vector", body
        return list(body["data"]["result"])

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def check_rules(bin_dir: Path, rules: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(bin_dir / "promtool"), "check", "rules", str(rules)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
