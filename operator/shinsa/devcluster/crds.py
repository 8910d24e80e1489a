"""Installing CustomResourceDefinitions into a cluster and waiting until they are served."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kubernetes import client
from kubernetes.dynamic import DynamicClient

from shinsa.devcluster.cluster import ClusterError


def _established(api: client.ApiextensionsV1Api, name: str) -> bool:
    conditions = api.read_custom_resource_definition(name).status.conditions or []
    return any(c.type == "Established" and c.status == "True" for c in conditions)


def install_crds(
    api_client: client.ApiClient,
    crds: Sequence[dict[str, Any]],
    field_manager: str,
    timeout_s: float = 60.0,
) -> list[str]:
    """Server-side apply `crds` (large upstream ones exceed client-side apply's annotation limit)
    and wait until the API server reports each Established. Returns their names."""
    dynamic = DynamicClient(api_client)
    resource = dynamic.resources.get(api_version="apiextensions.k8s.io/v1", kind="CustomResourceDefinition")
    names = []
    for crd in crds:
        dynamic.server_side_apply(resource, body=crd, field_manager=field_manager, force_conflicts=True)
        names.append(crd["metadata"]["name"])
    api = client.ApiextensionsV1Api(api_client)
    deadline = time.monotonic() + timeout_s
    pending = list(names)
    while pending:
        pending = [name for name in pending if not _established(api, name)]
        if pending and time.monotonic() > deadline:
            raise ClusterError(f"CRDs not Established after {timeout_s:.0f}s: {', '.join(pending)}")
        if pending:
            time.sleep(0.3)
    return names
