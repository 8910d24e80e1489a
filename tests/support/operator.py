"""The Shinsa operator running in the test process, with its settings passed in as the command
passes them (kopf's memo), not read from the environment."""

from __future__ import annotations

import asyncio
import threading
import types
from typing import Any

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
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: types.TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise RuntimeError("the operator did not stop within 60 s")
        if self._error is not None and exc is None:
            raise self._error

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
