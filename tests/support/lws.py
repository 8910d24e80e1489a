"""Reading what the real LeaderWorkerSet controller made: its StatefulSets, its pods, and what a
kubelet would pass a pod's container (environment and `$(VAR)`-expanded command line).

Label and naming conventions checked against LWS v0.8.0 (api/leaderworkerset/v1, pkg/utils/pod).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from typing import Any

from kubernetes import client

from shinsa.devcluster.lws import LWS_GROUP, LWS_PLURAL, LWS_VERSION, NAME_LABEL

WORKER_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/worker-index"
GROUP_INDEX_LABEL = "leaderworkerset.sigs.k8s.io/group-index"
LWS_ENV = ("LWS_LEADER_ADDRESS", "LWS_GROUP_SIZE", "LWS_WORKER_INDEX")
_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def get_lws(kube: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(kube).get_namespaced_custom_object(
            LWS_GROUP, LWS_VERSION, namespace, LWS_PLURAL, name
        )
    )


def lws_condition(lws: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in (lws.get("status") or {}).get("conditions") or [] if c["type"] == type_), None)


def group_pods(kube: client.ApiClient, namespace: str, lws_name: str) -> dict[str, client.V1Pod]:
    """The LWS's pods by name (leader `<lws>-<group>`, workers `<lws>-<group>-<index>`)."""
    pods = client.CoreV1Api(kube).list_namespaced_pod(namespace, label_selector=f"{NAME_LABEL}={lws_name}")
    return {pod.metadata.name: pod for pod in pods.items}


def is_ready(pod: client.V1Pod) -> bool:
    return not pod.metadata.deletion_timestamp and any(
        c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
    )


def container_env(pod: client.V1Pod, container: client.V1Container) -> dict[str, str]:
    """The container's environment as a kubelet sets it: literal values (expanded against the
    variables before them) and the downward-API fields these pods use."""
    fields = {
        "status.podIP": pod.status.pod_ip,
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "spec.nodeName": pod.spec.node_name,
    }
    env: dict[str, str] = {}
    for var in container.env or []:
        if var.value_from is None:
            env[var.name] = expand(var.value or "", env)
        elif var.value_from.field_ref is not None:
            env[var.name] = fields[var.value_from.field_ref.field_path] or ""
    return env


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' `$(VAR)` expansion of command, args and env values: a defined variable is
    replaced, `$$` escapes, anything else is left as written (and reaches the program literally)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif (match := _REFERENCE.match(text, i)) and match.group(1) in env:
            out.append(env[match.group(1)])
            i = match.end()
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def unresolved_references(words: list[str], env: dict[str, str]) -> list[str]:
    """`$(VAR)` references in `words` that name no variable of the container (a kubelet leaves them
    as they are, so the program would see the literal text)."""
    return [name for word in words for name in _REFERENCE.findall(word) if name not in env]


def option(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


def exec_words(shell_line: str) -> list[str]:
    """The words of the `exec ...` a worker's `sh -c` line ends with, as written (not expanded)."""
    return shlex.split(shell_line[shell_line.rindex("exec ") :])[1:]


def shell_value(word: str, env: dict[str, str]) -> str:
    """What sh makes of `word` (an arithmetic expansion such as $((LWS_WORKER_INDEX*8))) with `env`."""
    done = subprocess.run(
        ["sh", "-c", f"printf %s {word}"], env=env, capture_output=True, text=True, check=True, timeout=10
    )
    return done.stdout
