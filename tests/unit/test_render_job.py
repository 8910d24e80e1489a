"""The evaluation Job and its ConfigMap, rendered from an EvalRun (pure)."""

from __future__ import annotations

import pytest
import yaml

from shinsa.api import EvalRun, SecretKeyRef, Toleration
from shinsa.controllers.eval_run import EXITS
from shinsa.evaluation.results import ExitCode
from shinsa.render.job import ExitPolicy, JobDefaults, job_name, render_config_map, render_job

pytestmark = pytest.mark.unit

DEFAULTS = JobDefaults(
    image="shinsa-operator:0.1.0",
    node_selector={"pool": "cpu"},
    tolerations=(Toleration(key="batch", operator="Exists"),),
    s3_endpoint_url="http://s3.example:9000",
)


def run(**job: object) -> EvalRun:
    return EvalRun.model_validate(
        {
            "metadata": {"name": "candidate", "namespace": "models", "uid": "5c8a"},
            "spec": {
                "model": {"deploymentRef": {"name": "llm-jp"}},
                "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "s3://data/mt-bench"}}],
                "judges": [{"name": "gpt", "endpoint": "https://api.example/v1", "model": "gpt-4o",
                            "apiKeySecretRef": {"name": "openai", "key": "key"}}],
                "job": job,
            },
        }
    )  # fmt: skip


def test_the_job_runs_the_evaluator_with_paths_on_its_command_line_and_keys_from_secrets() -> None:
    env = {"SHINSA_JUDGE_API_KEY_GPT": SecretKeyRef(name="openai", key="key")}
    job = render_job(run(), "/var/run/shinsa/results", env, DEFAULTS, exits=EXITS)
    assert job["metadata"]["name"] == job_name(run()) == "candidate-eval"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "5c8a"
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["shinsa"]
    assert container["args"] == ["eval", "run", "--config", "/etc/shinsa/evalrun.yaml",
                                 "--output", "/var/run/shinsa/results", "--json-logs",
                                 "--termination-log", "/dev/termination-log"]  # fmt: skip
    # The evaluator writes the file the pod's status takes its termination message from.
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": "SHINSA_JUDGE_API_KEY_GPT",
            "valueFrom": {"secretKeyRef": {"name": "openai", "key": "key"}}} in container["env"]  # fmt: skip
    assert {"name": "AWS_ENDPOINT_URL", "value": "http://s3.example:9000"} in container["env"]
    assert all("value" not in e or "API_KEY" not in e["name"] for e in container["env"])
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["tolerations"] == [{"key": "batch", "operator": "Exists"}]
    assert pod["restartPolicy"] == "Never"
    assert "kueue.x-k8s.io/queue-name" not in job["metadata"]["labels"]


def test_spec_job_overrides_the_operators_defaults() -> None:
    evalrun = run(image="registry.example/shinsa:1", serviceAccountName="evaluator", nodeSelector={"a": "b"},
                  tolerations=[], queueName="evals", activeDeadlineSeconds=600, backoffLimit=0,
                  resources={"requests": {"cpu": "2"}})  # fmt: skip
    job = render_job(evalrun, "/out", {}, DEFAULTS, exits=EXITS)
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "registry.example/shinsa:1"
    assert pod["serviceAccountName"] == "evaluator"
    assert pod["nodeSelector"] == {"a": "b"} and "tolerations" not in pod
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "evals"
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    assert job["spec"]["activeDeadlineSeconds"] == 600 and job["spec"]["backoffLimit"] == 0
    assert pod["containers"][0]["resources"] == {"requests": {"cpu": "2"}}


def test_the_config_map_holds_the_engine_config_as_a_file() -> None:
    cm = render_config_map(run(), {"model": {"endpoint": "http://x/v1"}, "engine": {"outputDir": "/out"}})
    assert yaml.safe_load(cm["data"]["evalrun.yaml"])["engine"]["outputDir"] == "/out"
    assert cm["metadata"]["name"] == "candidate-eval"


def test_exits_a_retry_cannot_change_fail_the_job_and_stops_are_retried_for_free() -> None:
    job = render_job(run(), "/out", {}, DEFAULTS, exits=EXITS)
    policy = job["spec"]["podFailurePolicy"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"  # required by the policy
    fail, stopped, disrupted = policy["rules"]
    final = [ExitCode.CONFIG, ExitCode.INCOMPLETE]
    assert fail == {
        "action": "FailJob",
        "onExitCodes": {"containerName": "evaluator", "operator": "In", "values": final},
    }
    assert stopped["action"] == "Ignore" and stopped["onExitCodes"]["values"] == [ExitCode.TERMINATED]
    assert disrupted == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    # A crash matches no rule: it counts against backoffLimit and is retried.
    assert all(ExitCode.CRASH not in r.get("onExitCodes", {}).get("values", []) for r in policy["rules"])
    # The values are plain ints (the API server's JSON), ascending and unique as it requires.
    values = ExitPolicy(final=(3, 2, 3), stopped=143)
    rendered = render_job(run(), "/out", {}, DEFAULTS, exits=values)["spec"]["podFailurePolicy"]
    assert rendered["rules"][0]["onExitCodes"]["values"] == [2, 3]
    assert all(type(v) is int for r in rendered["rules"][:2] for v in r["onExitCodes"]["values"])
