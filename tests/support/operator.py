"""The Shinsa operator running in the test process, with its settings passed in as the command
passes them (kopf's memo), not read from the environment."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from shinsa.api import Toleration
from shinsa.controllers.settings import OperatorSettings
from shinsa.devcluster.local_runner import RUNNER_NODE_SELECTOR, RUNNER_TOLERATION

EVALUATOR_ENV_SECRET = "shinsa-evaluator-env"


def operator_settings(**fields: Any) -> OperatorSettings:
    """Settings for an operator under test: `models:/` URIs are looked up again every 2 s
    (production: every minute), so that a test can watch an alias move."""
    return OperatorSettings(
        **{
            "registry_resync_s": 2.0,
            "evalrun_resync_s": 2.0,
            # Evaluation Jobs run for real on the dev cluster's local runner.
            "evaluator_node_selector": RUNNER_NODE_SELECTOR,
            "evaluator_tolerations": (Toleration.model_validate(RUNNER_TOLERATION),),
            # Tests that run evaluations put the S3 credentials in a Secret of this name.
            "evaluator_env_secret": EVALUATOR_ENV_SECRET,
            **fields,
        }
    )


class InProcessOperator:
    """`kopf.operator` on a loop of its own in a thread, as kopf's KopfRunner runs its CLI, but
    given the memo `shinsa operator run` builds. Leaving the block stops it and re-raises what it
    raised."""

    def __init__(self, settings: OperatorSettings, namespaces: tuple[str, ...] = ()) -> None:
        self.settings = settings
        self.namespaces = namespaces
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shinsa-operator", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> InProcessOperator:
        self._thread.start()
        _RUNNING.add(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        _RUNNING.discard(self)
        self._halt()
        if self._error is not None and exc is None:
            raise self._error

    def _halt(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise RuntimeError("the operator did not stop within 60 s")

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Stopped inside the block and started again after it, for a test whose operator must be
        the only one (a process it kills and restarts)."""
        self._halt()
        try:
            yield
        finally:
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="shinsa-operator", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        import kopf

        import shinsa.controllers.handlers  # noqa: F401  (registers the handlers)
        from shinsa.controllers.settings import operator_memo

        # What `kopf run` does first: kopf's log format, at its default level.
        kopf.configure(debug=False, verbose=False, quiet=False)
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                kopf.operator(
                    standalone=True,
                    clusterwide=not self.namespaces,
                    namespaces=self.namespaces,
                    memo=operator_memo(self.settings, self.namespaces),
                    stop_flag=self._stop,
                )
            )
        except BaseException as exc:
            self._error = exc
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()


_RUNNING: set[InProcessOperator] = set()


@contextmanager
def no_in_process_operator() -> Iterator[None]:
    """Pause the session's in-process operator, if one runs, for the block."""
    running = list(_RUNNING)
    if not running:
        yield
        return
    with running[0].paused():
        yield


def settings_env(settings: OperatorSettings) -> dict[str, str]:
    """`settings` as the environment `shinsa operator run` reads them from (docs/install.md)."""
    env = {}
    for name, value in settings.model_dump(mode="json", by_alias=True, exclude_none=True).items():
        env[name] = value if isinstance(value, str) else json.dumps(value)
    return env


# `shinsa operator run` as the image's entrypoint runs it, with kopf's log format turned on first.
RUN_OPERATOR = "import sys, kopf; kopf.configure(); from shinsa.cli import app; app(sys.argv[1:])"


def terminate(proc: subprocess.Popen[Any] | None, timeout_s: float = 30) -> None:
    """SIGTERM a child that still runs, then SIGKILL it if it has not exited within `timeout_s`."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class OperatorProcess:
    """`shinsa operator run --namespace <namespace>` as a child process of its own session, with
    `settings` in its environment; `kill()` is kill -9, `start()` starts a new one."""

    def __init__(self, settings: OperatorSettings, namespace: str, log: Path) -> None:
        self.env = {**os.environ, **settings_env(settings)}
        self.namespace = namespace
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        from shinsa.devcluster.cluster import free_port

        port = free_port()
        args = [
            "operator",
            "run",
            f"--namespace={self.namespace}",
            "--metrics-port=0",
            f"--liveness-port={port}",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", RUN_OPERATOR, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"the operator exited ({self.proc.returncode}):\n{self.log_text()[-4000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the operator did not become live:\n{self.log_text()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: no cleanup handler, no status write, no event runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        terminate(self.proc)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
