"""How the operator runs: kopf settings as data, applied at startup."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
from typing import Any

import kopf

ANNOTATION_PREFIX = "shinsa.dev"


# Reconciles and pod-driven refreshes run the blocking kubernetes client in threads; the default
# pool (CPUs + 4) queues refreshes behind reconciles on small machines, delaying Ready.
WORKER_THREADS = 16

# MLflow's client retries an unreachable registry for minutes by default, holding a worker thread;
# the reconcile reports RegistryUnavailable and retries on its own schedule instead. An operator
# environment that sets these keeps its values.
MLFLOW_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="shinsa")
    )
    for key, value in MLFLOW_CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    # Our status schema is structural and has no place for kopf's bookkeeping, so handler
    # progress and the last-handled spec live in annotations instead.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    # Events are for transitions the controllers post themselves, not for every handler's log line.
    settings.posting.level = logging.WARNING
    # Reconnect watches before common load-balancer idle timeouts would cut them silently.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # In a pod: the service account. Elsewhere: $KUBECONFIG read now, not when a library was
    # imported (the kubernetes client fixes its default path at import time).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)
