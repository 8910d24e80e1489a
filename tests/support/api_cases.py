"""Resource manifests and the bad variants of them that must be refused, naming the field: shared
by the unit tests (pydantic) and the e2e tests (the real API server's schema and CEL rules)."""

from __future__ import annotations

import copy
from typing import Any

SHA = "0123456789abcdef0123456789abcdef01234567"
CM_REF = {"configMapKeyRef": {"name": "c", "key": "k"}}

MOE = {
    "apiVersion": "shinsa.dev/v1alpha1",
    "kind": "ModelDeployment",
    "metadata": {"name": "llm-jp-4-32b-a3b", "namespace": "models"},
    "spec": {
        "model": {
            "uri": "hf://llm-jp/llm-jp-4-32b-a3b-thinking",
            "revision": SHA,
            "trustRemoteCode": True,
            "servedName": "llm-jp-4-32b-a3b-thinking",
        },
        "serving": {
            "maxModelLen": 65536,
            "dtype": "bfloat16",
            "reasoningParser": "openai_gptoss",
            "extraArgs": ["--enable-prefix-caching"],
            "env": [
                {"name": "VLLM_LOGGING_LEVEL", "value": "INFO"},
                {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}},
            ],
        },
        "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3", "count": 2, "targetConcurrency": 8}},
        "parallelism": {"tensor": 1, "data": 2, "expert": 2},
        "scheduling": {
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "queueName": "gpu-queue",
        },
    },
}

EVAL = {
    "apiVersion": "shinsa.dev/v1alpha1",
    "kind": "EvalRun",
    "metadata": {"name": "llm-jp-4-8b-candidate"},
    "spec": {
        "model": {"deploymentRef": {"name": "llm-jp-4-8b"}, "extraBody": {"chat_template_kwargs": {"x": 1}}},
        "sampling": {"temperature": 0.7, "maxTokens": 2048, "reasoningEffort": "minimal"},
        "benchmarks": [
            {
                "name": "mt-bench-ja",
                "dataset": {"uri": "s3://datasets/mt-bench-ja"},
                "categorySampling": {"math": {"temperature": 0.0}},
                "referenceCategories": ["math", "coding"],
            },
            {
                "name": "answer-carefully",
                "dataset": {"uri": "pvc://eval-data/answer-carefully-v2", "questionFile": "test.json"},
                "sampling": {"temperature": 0.0, "reasoningEffort": "medium"},
                "prompts": {"single": "{question} {answer} {reference}"},
            },
            {"name": "long-context", "dataset": {"uri": "/data/long"}, "contextLengths": [8192, 32768],
             "depths": [0.5], "charsPerToken": 1.5},
        ],
        "judges": [
            {
                "name": "gpt",
                "endpoint": "https://api.openai.com/v1",
                "model": "gpt-5.4-2026-03-05",
                "apiKeySecretRef": {"name": "openai", "key": "api-key"},
                "temperature": None,
                "maxTokensParam": "max_completion_tokens",
                "rateLimit": {"requestsPerSecond": 5},
            }
        ],
        "repeats": 3,
        "rateLimit": {"requestsPerSecond": 20, "tokensPerMinute": 400000},
        "timeoutSeconds": 300,
        "mlflow": {"trackingUri": "http://mlflow.mlops:5000", "experiment": "llm-jp-4"},
        "gates": {
            "baseline": {"mlflowModel": "llm-jp-4-8b@champion"},
            "rules": [
                {"type": "nonInferiority", "benchmark": "mt-bench-ja", "margin": 0.1},
                {"type": "minimum", "benchmark": "answer-carefully", "threshold": 3.5},
                {"type": "maxViolationRate", "benchmark": "answer-carefully", "limit": 0.05},
                {"type": "maxErrorRate", "limit": 0.02},
            ],
        },
        "promote": {
            "registeredModel": "llm-jp-4-8b",
            "alias": "production",
            "enabled": True,
        },
    },
}  # fmt: skip


def with_value(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `body` with the dotted `path` set to `value` (or removed when value is ...)."""
    out = copy.deepcopy(body)
    *parents, leaf = path.split(".")
    node = out
    for part in parents:
        node = node.setdefault(part, {})
    if value is ...:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return out


# (dotted path, value): variants of MOE that must be accepted.
GOOD_MODEL_DEPLOYMENTS: list[tuple[str, Any]] = [
    ("spec.parallelism", {"tensor": 8, "expert": 8}),
    ("spec.parallelism", {"tensor": 2, "data": 4, "expert": 8}),
    ("spec.parallelism", {"data": 4, "expert": 1}),
    ("spec.parallelism", {"tensor": 4}),
    # `resources.gpu.count` (2 in MOE) fills the sizes left unset, so expert may equal it.
    ("spec.parallelism", {"expert": 2}),
    ("spec.parallelism", {"tensor": 1, "expert": 2}),
]

# (dotted path, value or ... to remove it, text the error must contain)
BAD_MODEL_DEPLOYMENTS: list[tuple[str, Any, str]] = [
("spec.model.uri", "http://example.com/model", "uri"),
    ("spec.model.uri", "hf://just-a-name", "uri"),
    ("spec.model.revision", ..., "spec.model.revision"),
    ("spec.model.revision", "main", "spec.model.revision"),
    ("spec.model.revision", SHA.upper(), "spec.model.revision"),
    ("spec.serving.engine", "tgi", "engine"),
    ("spec.serving.dtype", "int4", "dtype"),
    ("spec.serving.gpuMemoryUtilization", 1.2, "gpuMemoryUtilization"),
    # Integers against fractional bounds: the API server compares them as integers (0 >= int(0.1)).
    ("spec.serving.gpuMemoryUtilization", 0, "gpuMemoryUtilization"),
    ("spec.serving.gpuMemoryUtilization", -1, "gpuMemoryUtilization"),
    ("spec.serving.gpuMemoryUtilization", 1, "gpuMemoryUtilization"),
    ("spec.serving.maxModelLen", 0, "maxModelLen"),
    ("spec.serving.ropeScaling", {"type": "yarn", "factor": 1}, "factor"),
    ("spec.serving.ropeScaling", {"type": "dynamic", "factor": 4}, "type"),
    ("spec.serving.extraArg", ["--x"], "extraArg"),
    ("spec.serving.env", [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}], "spec.serving.env"),
    ("spec.serving.env", [{"name": "A", "value": "1", "valueFrom": CM_REF}], "valueFrom"),
    ("spec.serving.env", [{"name": "A", "valueFrom": {}}], "secretKeyRef"),
    ("spec.resources.gpu", {"product": "NVIDIA-H100-80GB-HBM3", "memoryGiB": 80}, "memoryGiB"),
    ("spec.resources.gpu", {"count": 2}, "memoryGiB"),
    ("spec.resources.gpu.targetConcurrency", 0, "targetConcurrency"),
    ("spec.parallelism", {"tensor": 2, "expert": 4}, "spec.parallelism.expert"),
    ("spec.parallelism", {"expert": 8}, "spec.parallelism.expert"),
    # `count` (2 here) fills unset sizes only: with tensor and data both pinned it cannot stand in for them.
    ("spec.parallelism", {"tensor": 1, "data": 1, "expert": 2}, "spec.parallelism.expert"),
    ("spec.parallelism", {"expert": 4}, "spec.parallelism.expert"),
    ("spec.parallelism", {"nodes": 2}, "spec.backend"),
    ("spec.replicas", -1, "replicas"),
    ("spec.backend", "statefulset", "backend"),
    ("spec.scheduling.tolerations", [{"operator": "Maybe"}], "operator"),
    ("metadata.name", "m" * 64, "metadata.name"),
    # Valid names of custom objects (DNS-1123 subdomains) that cannot name the Service.
    ("metadata.name", "1edge-digit", "metadata.name"),
    ("metadata.name", "edge.dot", "metadata.name"),
]  # fmt: skip

# (dotted path, value): variants of EVAL that must be accepted.
GOOD_EVAL_RUNS: list[tuple[str, Any]] = [
    ("spec.model", {"endpoint": "https://api.example/v1", "servedName": "gpt-4o",
                    "apiKeySecretRef": {"name": "example", "key": "api-key"}}),
    ("spec.model.extraBody", {"chat_template_kwargs": {"enable_thinking": False}, "top_k": 20}),
    ("spec.judges", [{"name": "a", "endpoint": "http://j/v1", "model": "m", "temperature": None,
                      "maxTokens": None, "reasoningEffort": "minimal"}]),
    ("spec.gates", {"rules": [{"type": "maxErrorRate", "limit": 0.1}]}),
    ("spec.gates.baseline", {"evalRunRef": {"name": "llm-jp-4-8b-production"}}),
    ("spec.gates.rules", [{"type": "nonInferiority", "benchmark": "mt-bench-ja",
                           "metric": "category/人文 社会", "margin": 0.3}]),
    ("spec.mlflow.trackingUri", "file:///tmp/a@b/mlruns"),
    ("spec.repeats", 20),
    ("spec.benchmarks", [{"name": "mt-bench-ja", "dataset": {"uri": "/a"}},
                         {"name": "answer-carefully", "dataset": {"uri": "/b"}},
                         {"name": "rubric", "dataset": {"uri": "/c/test.json"},
                          "rubric": {"id": "culture-ja", "criteria": "accuracy",
                                     "regex": "\\[\\[(\\d+)\\]\\]", "emptyAnswerScore": 1,
                                     "rates": [{"name": "violation_rate", "below": 3}]}},
                         {"name": "rubric", "dataset": {"uri": "/d/test.csv"},
                          "rubric": {"id": "safety-boundary-ja", "minScore": 0, "maxScore": 3,
                                     "categoryField": "safety", "templateSyntax": "jinja2"},
                          "prompts": {"single": "{{ input }} {{ lm_output }}"}}]),
]  # fmt: skip

BAD_EVAL_RUNS: list[tuple[str, Any, str]] = [
("spec.model", {}, "deploymentRef"),
    ("spec.model", {"deploymentRef": {"name": "a"}, "endpoint": "http://x/v1", "servedName": "a"},
     "deploymentRef"),
    ("spec.model", {"endpoint": "http://x/v1"}, "spec.model.servedName"),
    ("spec.model", {"endpoint": "ftp://x", "servedName": "a"}, "endpoint"),
    ("spec.model", {"endpoint": "http://bob:hunter2@x/v1", "servedName": "a"}, "credentials"),
    ("spec.model", {"deploymentRef": {"name": "a"}, "apiKeySecretRef": {"name": "s", "key": "k"}},
     "spec.model.apiKeySecretRef"),
    ("spec.model.maxTokensParam", "max_new_tokens", "maxTokensParam"),
    ("spec.sampling", {"reasoningEffort": "extreme"}, "reasoningEffort"),
    ("spec.sampling", {"topP": 0}, "topP"),
    ("spec.benchmarks", [], "benchmarks"),
    ("spec.benchmarks", [{"name": "mmlu", "dataset": {"uri": "/d"}}], "name"),
    ("spec.benchmarks", [{"name": "mt-bench", "dataset": {"uri": "relative/path"}}], "uri"),
    ("spec.benchmarks", [{"name": "mt-bench-ja", "dataset": {"uri": "/d"}, "contextLengths": [8192]}],
     "contextLengths"),
    ("spec.benchmarks", [{"name": "long-context", "dataset": {"uri": "/d"}, "contextLengths": [100]}],
     "contextLengths"),
    ("spec.benchmarks", [{"name": "long-context", "dataset": {"uri": "/d"}, "depths": [1.5]}], "depths"),
    ("spec.benchmarks", [{"name": "mt-bench", "dataset": {"uri": "/d"}, "criteria": ["accuracy"]}],
     "criteria"),
    ("spec.benchmarks", [{"name": "llm-jp-instructions", "dataset": {"uri": "/d"},
                          "criteria": ["accuracy", "accuracy"]}], "criteria"),
    ("spec.benchmarks", [{"name": "answer-carefully", "dataset": {"uri": "/d"},
                          "referenceCategories": ["math"]}], "referenceCategories"),
    ("spec.benchmarks", [{"name": "mt-bench", "dataset": {"uri": "/d"}, "sampling": {"temprature": 1}}],
     "temprature"),
    ("spec.benchmarks", [{"name": "mt-bench-ja", "dataset": {"uri": "/a"}},
                         {"name": "mt-bench-ja", "dataset": {"uri": "/b"}}], "spec.benchmarks"),
    ("spec.benchmarks", [{"name": "rubric", "dataset": {"uri": "/a"}}], "rubric"),
    ("spec.benchmarks", [{"name": "mt-bench", "dataset": {"uri": "/a"}, "rubric": {"id": "x"}}], "rubric"),
    ("spec.benchmarks", [{"name": "rubric", "dataset": {"uri": "/a"}, "rubric": {"id": "x"}},
                         {"name": "rubric", "dataset": {"uri": "/b"}, "rubric": {"id": "x"}}], "rubric.id"),
    ("spec.benchmarks", [{"name": "rubric", "dataset": {"uri": "/a"},
                          "rubric": {"id": "x", "minScore": 3, "maxScore": 1}}], "minScore"),
    ("spec.benchmarks", [{"name": "rubric", "dataset": {"uri": "/a"},
                          "rubric": {"id": "x", "rates": [{"name": "r"}]}}], "atMost"),
    ("spec.benchmarks", [{"name": "rubric", "dataset": {"uri": "/a"},
                          "rubric": {"id": "x", "rates": [{"name": "mean", "below": 3}]}}], "own metrics"),
    ("spec.judges", [], "spec.judges"),
    ("spec.judges", [{"name": "a", "endpoint": "https://hunter2@j/v1", "model": "m"}], "credentials"),
    ("spec.judges", [{"name": "a", "endpoint": "http://j/v1", "model": "m", "temperature": 3}],
     "temperature"),
    ("spec.judges", [{"name": "a", "endpoint": "http://j/v1", "model": "m", "parseRetries": 11}],
     "parseRetries"),
    ("spec.repeats", 21, "repeats"),
    ("spec.repeats", 0, "repeats"),
    ("spec.timeoutSeconds", 0, "timeoutSeconds"),
    ("spec.retries", 21, "retries"),
    ("spec.rateLimit", {"requestsPerSecond": 0}, "requestsPerSecond"),
    ("spec.maxErrorRate", 1.5, "maxErrorRate"),
    ("spec.mlflow.trackingUri", "https://bob:hunter2@mlflow.example", "credentials"),
    ("spec.gates", ..., "spec.gates"),
    ("spec.gates.baseline", {}, "evalRunRef"),
    ("spec.gates.baseline", {"mlflowRunId": "abc", "mlflowModel": "m@champion"}, "mlflowModel"),
    ("spec.gates.baseline", {"mlflowModel": "no-alias"}, "mlflowModel"),
    ("spec.gates.rules", [{"type": "minimum", "benchmark": "mt-bench", "threshold": 7}], "spec.benchmarks"),
    ("spec.gates.rules", [{"type": "minimum", "benchmark": "mt-bench-ja"}], "threshold"),
    ("spec.gates.rules", [{"type": "nonInferiority", "benchmark": "mt-bench-ja", "margin": -1}], "margin"),
    ("spec.gates.rules", [{"type": "nonInferiority", "benchmark": "mt-bench-ja"}], "margin"),
    ("spec.gates.rules", [{"type": "superiority"}], "benchmark"),
    ("spec.gates.rules", [{"type": "superiority", "benchmark": "mt-bench-ja", "margin": 0.2}], "margin"),
    ("spec.gates.rules", [{"type": "minimum", "benchmark": "mt-bench-ja", "threshold": 7, "limit": 0.1}],
     "limit"),
    ("spec.gates.rules", [{"type": "maxErrorRate", "limit": 0.1, "threshold": 1}], "threshold"),
    ("spec.gates.rules", [{"type": "minimum", "benchmark": "mt-bench-ja", "metric": " x", "threshold": 1}],
     "metric"),
    ("spec.gates.rules", [{"type": "maxErrorRate"}], "limit"),
    ("spec.gates.rules", [{"type": "maxErrorRate", "limit": 0.1, "metric": "score"}], "metric"),
    ("spec.gates.rules", [{"type": "maxViolationRate", "limit": 0.1}], "benchmark"),
    ("spec.gates.rules", [{"type": "maxViolationRate", "benchmark": "mt-bench-ja", "limit": 0.1}],
     "answer-carefully"),
    ("spec.gates.rules", [{"type": "regression", "benchmark": "mt-bench-ja"}], "type"),
    ("spec.gates.rules", [], "rules"),
    ("spec.gates.confidence", 1.0, "confidence"),
    ("spec.gates.confidence", 0, "confidence"),
    ("spec.gates.confidence", 1, "confidence"),
    ("spec.gates.minPairs", 0, "minPairs"),
    ("spec.promote.alias", "not an alias", "alias"),
]  # fmt: skip
