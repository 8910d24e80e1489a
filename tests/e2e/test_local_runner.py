"""Jobs whose pods the dev cluster's local runner really runs, with the real Job controller and
scheduler deciding around it."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from kubernetes import client, watch

from shinsa.api import ModelDeployment
from shinsa.devcluster.cluster import LocalCluster
from shinsa.devcluster.local_runner import NODE_NAME
from shinsa.devcluster.model_endpoints import ANSWER_QUALITY_ANNOTATION
from shinsa.render import endpoint_url
from tests.support.local_jobs import job_condition, job_pods, python_job, terminated
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

GREET = """
import os, sys
greeting = open('/etc/demo/greeting').read().strip()
words = [greeting, os.environ['TOKEN'], *sys.argv[1:], os.environ['POD_NAME'], os.environ['CFG_MODE']]
print('ran:', *words)
open('/dev/termination-log', 'w').write(' '.join(words))
"""

# Appends what happened to a file on a hostPath volume, which outlives the pods: the first pod
# waits to be stopped, the Job controller's replacement finds the marker and finishes.
WAIT_FOR_SIGTERM = """
import os, signal, sys, time
pod = os.environ['POD_NAME']
log = open('/shared/events', 'a')
if os.path.exists('/shared/first-ran'):
    print('ran', pod, file=log, flush=True)
    sys.exit(0)
open('/shared/first-ran', 'w').close()
def stop(signum, frame):
    print('SIGTERM', pod, file=log, flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
print('started', pod, file=log, flush=True)
while True:
    time.sleep(0.05)
"""

POD_NAME = {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}


def shared_dir(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    return [{"name": "shared", "hostPath": {"path": str(path), "type": "Directory"}}], [
        {"name": "shared", "mountPath": "/shared"}
    ]


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def create_job(kube: client.ApiClient, namespace: str, job: dict[str, Any]) -> None:
    client.BatchV1Api(kube).create_namespaced_job(namespace, job)


def test_a_job_runs_what_its_spec_says_with_secret_env_and_config_map_files_and_completes(
    kube: client.ApiClient, namespace: str, cluster: LocalCluster
) -> None:
    core = client.CoreV1Api(kube)
    core.create_namespaced_secret(namespace, {"metadata": {"name": "api"}, "stringData": {"token": "s3cr3t"}})
    settings = {"greeting.txt": "hello\n", "MODE": "fast"}
    core.create_namespaced_config_map(namespace, {"metadata": {"name": "settings"}, "data": settings})
    env = [
        {"name": "SUFFIX", "value": "alpha"},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "api", "key": "token"}}},
        POD_NAME,
    ]
    items = [{"key": "greeting.txt", "path": "greeting"}]
    volumes = [{"name": "settings", "configMap": {"name": "settings", "items": items}}]
    mounts = [{"name": "settings", "mountPath": "/etc/demo", "readOnly": True}]
    common: dict[str, Any] = {"env": env, "volumes": volumes, "mounts": mounts}
    common["envFrom"] = [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"}]
    # The same Job twice, but for one argument: `$$` escapes an expansion in the first.
    create_job(
        kube, namespace, python_job("greet", GREET, args=["--suffix=$(SUFFIX)", "$$(SUFFIX)"], **common)
    )
    create_job(
        kube, namespace, python_job("greet-changed", GREET, args=["--suffix=$(SUFFIX)", "other"], **common)
    )

    assert job_condition(kube, namespace, "greet") == "Complete"
    assert job_condition(kube, namespace, "greet-changed") == "Complete"
    (pod,) = job_pods(kube, namespace, "greet")
    (changed,) = job_pods(kube, namespace, "greet-changed")
    assert pod.spec.node_name == NODE_NAME
    node = core.read_node(NODE_NAME)
    assert any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
    lease = client.CoordinationV1Api(kube).read_namespaced_lease(NODE_NAME, "kube-node-lease")
    assert lease.spec.holder_identity == NODE_NAME
    assert pod.status.phase == "Succeeded" and pod.status.pod_ip == "127.0.0.1"
    done = terminated(pod)
    assert done is not None and (done.exit_code, done.reason) == (0, "Completed")
    assert done.message == f"hello s3cr3t --suffix=alpha $(SUFFIX) {pod.metadata.name} fast"
    assert done.started_at is not None and done.finished_at >= done.started_at
    other = terminated(changed)
    assert (
        other is not None
        and other.message == f"hello s3cr3t --suffix=alpha other {changed.metadata.name} fast"
    )

    # stdout is in the pod's log file, where docs/development.md says it is.
    pod_dir = (
        cluster.state_dir / "local-runner" / "pods" / f"{namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    )
    assert (pod_dir / "main" / "0.log").read_text().startswith("ran: hello s3cr3t")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={pod.metadata.name}")
    started = [e for e in events.items if e.reason == "Started"]
    assert started and "is not used by the local runner" in started[0].message


def test_a_failing_command_fails_the_pod_with_its_exit_code_and_termination_message(
    kube: client.ApiClient, namespace: str
) -> None:
    exit_3 = (
        "import sys; open('/dev/termination-log', 'w').write('no such benchmark: mt-bench-xx'); sys.exit(3)"
    )
    create_job(kube, namespace, python_job("fails", exit_3))
    from_logs = (
        "import sys; print('loading', flush=True); print('Traceback: boom', file=sys.stderr); sys.exit(3)"
    )
    job = python_job("fails-logs", from_logs, terminationMessagePolicy="FallbackToLogsOnError")
    create_job(kube, namespace, job)

    assert job_condition(kube, namespace, "fails") == "Failed"
    assert job_condition(kube, namespace, "fails-logs") == "Failed"
    (pod,) = job_pods(kube, namespace, "fails")
    assert pod.status.phase == "Failed"
    done = terminated(pod)
    assert done is not None and (done.exit_code, done.reason) == (3, "Error")
    assert done.message == "no such benchmark: mt-bench-xx"
    (logged,) = job_pods(kube, namespace, "fails-logs")
    done = terminated(logged)
    assert done is not None and done.exit_code == 3 and done.message == "loading\nTraceback: boom\n"
    failed = client.BatchV1Api(kube).read_namespaced_job_status("fails", namespace).status
    assert failed.failed == 1
    assert any(c.reason == "BackoffLimitExceeded" for c in failed.conditions if c.type == "Failed")


def test_a_pod_deleted_midway_is_sigtermed_and_the_job_controllers_replacement_runs(
    kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    volumes, mounts = shared_dir(tmp_path)
    job = python_job("stopped", WAIT_FOR_SIGTERM, env=[POD_NAME], volumes=volumes, mounts=mounts)
    job["spec"]["backoffLimit"] = 1
    create_job(kube, namespace, job)
    events = tmp_path / "events"
    first = eventually(lambda: lines(events), timeout_s=30, what="the first pod to start")[0].split()[1]

    core = client.CoreV1Api(kube)
    seen = core.read_namespaced_pod(first, namespace).metadata.resource_version
    deleted_at = time.monotonic()
    core.delete_namespaced_pod(first, namespace)
    eventually(lambda: f"SIGTERM {first}" in lines(events), timeout_s=10, what="the process to get SIGTERM")
    assert time.monotonic() - deleted_at < 5, "SIGTERM comes at deletion, not after the grace period"

    # The kubelet's last word on the pod before it goes: Failed, exit code 143.
    last: dict[str, Any] = {}
    for event in watch.Watch().stream(
        core.list_namespaced_pod,
        namespace,
        field_selector=f"metadata.name={first}",
        resource_version=seen,
        timeout_seconds=30,
    ):
        last = event["raw_object"]
        if event["type"] == "DELETED":
            break
    assert last["status"]["phase"] == "Failed"
    assert last["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 143

    assert job_condition(kube, namespace, "stopped") == "Complete"
    (replacement,) = job_pods(kube, namespace, "stopped")
    assert replacement.metadata.name != first
    assert f"ran {replacement.metadata.name}" in lines(events)
    status = client.BatchV1Api(kube).read_namespaced_job_status("stopped", namespace).status
    assert (status.succeeded, status.failed) == (1, 1)


def test_a_jobs_active_deadline_is_enforced_by_the_job_controller_stopping_the_process(
    kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    volumes, mounts = shared_dir(tmp_path)
    job = python_job("deadline", WAIT_FOR_SIGTERM, env=[POD_NAME], volumes=volumes, mounts=mounts)
    job["spec"]["activeDeadlineSeconds"] = 3
    create_job(kube, namespace, job)

    assert job_condition(kube, namespace, "deadline", timeout_s=30) == "Failed"
    status = client.BatchV1Api(kube).read_namespaced_job_status("deadline", namespace).status
    assert any(c.reason == "DeadlineExceeded" for c in status.conditions if c.type == "Failed")
    events = tmp_path / "events"
    eventually(lambda: any(line.startswith("SIGTERM") for line in lines(events)), 15, what="SIGTERM")


def test_a_pod_reaches_a_model_deployments_stand_in_at_its_service_url_with_its_answer_quality(
    kube: client.ApiClient, namespace: str, crds: list[str], cluster: LocalCluster
) -> None:
    body = {
        "apiVersion": "shinsa.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "chat", "annotations": {ANSWER_QUALITY_ANNOTATION: "2"}},
        "spec": {
            "model": {"uri": "hf://llm-jp/llm-jp-4-8b", "servedName": "llm-jp-4-8b"},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        },
    }
    created = client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "shinsa.dev", "v1alpha1", namespace, "modeldeployments", body
    )
    # What status.endpoint says and what an EvalRun's deploymentRef resolves to.
    endpoint = endpoint_url(ModelDeployment.from_body(created))
    assert endpoint == f"http://chat.{namespace}.svc:8000/v1"
    proxy = json.loads((cluster.state_dir / "local-runner" / "runner.json").read_text())["env"]["HTTP_PROXY"]

    def served() -> bool:  # from this machine, as a developer would: curl -x $HTTP_PROXY ...
        return httpx.get(f"{endpoint}/models", proxy=proxy, timeout=5).status_code == 200

    eventually(served, timeout_s=15, what="the stand-in of the ModelDeployment")

    ask = """
import json, os, httpx
base = os.environ['ENDPOINT']
models = [m['id'] for m in httpx.get(base + '/models').json()['data']]
chat = {'model': 'llm-jp-4-8b', 'messages': [{'role': 'user', 'content': 'hello'}]}
answer = httpx.post(base + '/chat/completions', json=chat).json()['choices'][0]['message']['content']
open('/dev/termination-log', 'w').write(json.dumps({'models': models, 'answer': answer}))
"""
    create_job(kube, namespace, python_job("ask", ask, env=[{"name": "ENDPOINT", "value": endpoint}]))
    assert job_condition(kube, namespace, "ask") == "Complete"
    (pod,) = job_pods(kube, namespace, "ask")
    done = terminated(pod)
    assert done is not None
    reply = json.loads(done.message)
    assert "llm-jp-4-8b" in reply["models"] and "judge-a" in reply["models"]
    assert reply["answer"].endswith("[quality +2]")

    # Gone with its ModelDeployment: the Service name has no stand-in any more.
    client.CustomObjectsApi(kube).delete_namespaced_custom_object(
        "shinsa.dev", "v1alpha1", namespace, "modeldeployments", "chat"
    )
    eventually(
        lambda: httpx.get(f"{endpoint}/models", proxy=proxy, timeout=5).status_code == 502,
        timeout_s=15,
        what="the stand-in to stop",
    )


def test_an_evaluation_job_runs_the_virtualenvs_shinsa_eval_run_against_a_stand_in(
    kube: client.ApiClient, namespace: str, crds: list[str], cluster: LocalCluster, tmp_path: Path
) -> None:
    """The shape of the EvalRun controller's Job: the image's `shinsa` entrypoint, the engine config
    from a ConfigMap, results in an emptyDir, the model at its ModelDeployment's Service URL."""
    body = {
        "apiVersion": "shinsa.dev/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": "candidate"},
        "spec": {
            "model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        },
    }
    created = client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "shinsa.dev", "v1alpha1", namespace, "modeldeployments", body
    )
    endpoint = endpoint_url(ModelDeployment.from_body(created))
    proxy = json.loads((cluster.state_dir / "local-runner" / "runner.json").read_text())["env"]["HTTP_PROXY"]
    eventually(
        lambda: httpx.get(f"{endpoint}/models", proxy=proxy, timeout=5).status_code == 200,
        timeout_s=15,
        what="the stand-in of the ModelDeployment",
    )
    # A dataset path inside the config file is not rewritten: it is a hostPath at the same path.
    dataset = tmp_path / "mt-bench"
    dataset.mkdir()
    questions = [
        {"question_id": f"q{i}", "category": "writing", "turns": [f"Write about {topic}.", "Shorter."]}
        for i, topic in enumerate(["autumn", "a harbour", "a train"])
    ]
    (dataset / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    manifest = {
        "apiVersion": "shinsa.dev/v1alpha1",
        "kind": "EvalRun",
        "metadata": {"name": "candidate-eval"},
        "spec": {
            "model": {"endpoint": endpoint, "servedName": "candidate"},
            "benchmarks": [{"name": "mt-bench", "dataset": {"uri": str(dataset)}}],
            "judges": [{"name": "judge-a", "endpoint": endpoint, "model": "judge-a"}],
            "repeats": 1,
            "timeoutSeconds": 10,
        },
    }
    core = client.CoreV1Api(kube)
    config_map = {"metadata": {"name": "evalrun"}, "data": {"evalrun.yaml": json.dumps(manifest)}}
    core.create_namespaced_config_map(namespace, config_map)
    job = python_job(
        "evaluate",
        "",
        volumes=[
            {"name": "config", "configMap": {"name": "evalrun"}},
            {"name": "results", "emptyDir": {}},
            {"name": "datasets", "hostPath": {"path": str(dataset), "type": "Directory"}},
        ],
        mounts=[
            {"name": "config", "mountPath": "/etc/shinsa"},
            {"name": "results", "mountPath": "/var/run/shinsa/results"},
            {"name": "datasets", "mountPath": str(dataset)},
        ],
        image="shinsa-operator:0.1.0",
        command=["shinsa"],
        args=["eval", "run", "--config", "/etc/shinsa/evalrun.yaml", "--output", "/var/run/shinsa/results"],
    )
    create_job(kube, namespace, job)

    assert job_condition(kube, namespace, "evaluate", timeout_s=120) == "Complete"
    (pod,) = job_pods(kube, namespace, "evaluate")
    done = terminated(pod)
    assert done is not None and done.exit_code == 0
    pod_dir = (
        cluster.state_dir / "local-runner" / "pods" / f"{namespace}_{pod.metadata.name}_{pod.metadata.uid}"
    )
    scores = json.loads((pod_dir / "volumes" / "results" / "scores.json").read_text())
    assert "mt-bench" in json.dumps(scores)
    # Not a terminal: the engine logs JSON lines, one of them its summary.
    assert '"summary"' in (pod_dir / "main" / "0.log").read_text()
