"""Reading a model's config.json from a PersistentVolumeClaim, which the operator cannot mount.

A short Job mounts the claim read-only and writes the file, gzipped and base64-encoded, to its
container's termination message: the kubelet puts that message in the pod's status, so the operator
reads it through the API (no `pods/log` permission, no exec). Kubernetes keeps at most 4096 bytes of
a termination message; gzip brings the config.json of every supported family well under that.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import json
import shlex
from dataclasses import dataclass
from typing import Any, Literal

from shinsa.api import ModelDeployment
from shinsa.render.labels import (
    INSTANCE_LABEL,
    MANAGED_BY_LABEL,
    MANAGER,
    NAME_LABEL,
    RenderError,
    bounded_name,
    identity,
    owner_reference,
)
from shinsa.render.model_source import resolve_model_source

# Not the serving pods' labels: a reader pod must never count as a replica.
READER_APP = "shinsa-config-reader"
READER_LABEL = "shinsa.dev/config-reader"
SOURCE_ANNOTATION = "shinsa.dev/source"
# Set by the Job controller on the pods of one Job (the Job's uid): tells a replaced Job's pods apart.
JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
DEFAULT_READER_IMAGE = "busybox:1.37.0"
TERMINATION_MESSAGE_MAX_BYTES = 4096
# Same UID as the serving pods: what the reader can read, vLLM can too.
READER_UID = 1000
READER_DEADLINE_S = 300


def reader_job_name(md: ModelDeployment) -> str:
    name, _, _ = identity(md)
    return bounded_name(name, "config", 63)


def render_config_reader(md: ModelDeployment, uri: str, image: str = DEFAULT_READER_IMAGE) -> dict[str, Any]:
    """The Job that reads `<uri>/config.json` (a `pvc://claim/path` URI) into its termination message."""
    source = resolve_model_source(uri)
    if source.kind != "pvc":
        raise RenderError(f"spec.model.uri {uri!r}: only pvc:// models need a config reader")
    name, namespace, _ = identity(md)
    config = f"{source.model}/config.json"
    missing = shlex.quote(f"{uri}: config.json not found or not readable")
    failed = shlex.quote(f"{uri}: reading config.json failed")
    # pipefail: a read error mid-file must fail the Job, and its message must then say so rather
    # than hold the partial base64 written so far.
    script = (
        f"set -o pipefail; if [ ! -r {shlex.quote(config)} ]; then "
        f"echo {missing} >/dev/termination-log; exit 1; fi; "
        f"gzip -c {shlex.quote(config)} | base64 | tr -d '\\n' >/dev/termination-log "
        f"|| {{ echo {failed} >/dev/termination-log; exit 1; }}"
    )
    labels = {NAME_LABEL: READER_APP, INSTANCE_LABEL: name, MANAGED_BY_LABEL: MANAGER, READER_LABEL: name}
    container = {
        "name": "read-config",
        "image": image,
        "command": ["sh", "-c", script],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
        "volumeMounts": list(source.volume_mounts),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": reader_job_name(md),
            "namespace": namespace,
            "labels": labels,
            "annotations": {SOURCE_ANNOTATION: uri},
            "ownerReferences": [owner_reference(md)],
        },
        "spec": {
            "backoffLimit": 1,
            "activeDeadlineSeconds": READER_DEADLINE_S,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "enableServiceLinks": False,
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": READER_UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": list(source.volumes),
                },
            },
        },
    }


def decode_config_message(message: str, uri: str) -> dict[str, Any]:
    """The config.json a reader pod left in its termination message."""
    try:
        raw = gzip.decompress(base64.b64decode(message.strip(), validate=True))
        config = json.loads(raw)
    except (binascii.Error, OSError, EOFError, ValueError) as exc:
        too_long = len(message.encode()) >= TERMINATION_MESSAGE_MAX_BYTES
        hint = (
            f": config.json is over {TERMINATION_MESSAGE_MAX_BYTES} bytes gzipped; store the model in S3"
            if too_long
            else ""
        )
        raise ValueError(f"{uri}/config.json could not be read back ({exc}){hint}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{uri}/config.json is not a JSON object")
    return config


@dataclass(frozen=True)
class ReaderOutcome:
    state: Literal["running", "succeeded", "failed"]
    # The termination message: the encoded config.json, or what went wrong.
    message: str = ""


def _terminated(pod: dict[str, Any]) -> dict[str, Any]:
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = status.get("state", {}).get("terminated")
        if terminated:
            return dict(terminated)
    return {}


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    found = (c for c in job.get("status", {}).get("conditions") or [] if c.get("type") == type_)
    return next((c for c in found if c.get("status") == "True"), None)


def reader_outcome(job: dict[str, Any], pods: list[dict[str, Any]]) -> ReaderOutcome:
    """Where a config-reader Job stands, from the Job and its pods as the API returns them."""
    for pod in pods:
        terminated = _terminated(pod)
        if pod.get("status", {}).get("phase") == "Succeeded" and terminated.get("message"):
            return ReaderOutcome("succeeded", terminated["message"])
    failed = _condition(job, "Failed")
    if failed is not None:
        said = [_terminated(p).get("message", "").strip() for p in pods]
        reason = next((m for m in said if m), "") or failed.get("message") or failed.get("reason", "")
        return ReaderOutcome("failed", reason)
    if _condition(job, "Complete") is not None:
        # Complete, yet no pod holds the file (deleted by hand, or garbage-collected): read again.
        return ReaderOutcome("failed", "the Job completed but none of its pods holds config.json any more")
    return ReaderOutcome("running")
