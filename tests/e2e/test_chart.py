"""The Helm chart as a platform team uses it: lint, render, refuse bad values, install; and its RBAC
proven sufficient (and not padded) by running the real operator under the chart's ServiceAccount.

The RBAC tests use a control plane of their own: the session `operator` fixture is a cluster-wide
operator with admin credentials, and once any test has started it, it would reconcile the
ModelDeployments here too; a negative control could then never fail to become Ready. A second
local control plane costs a few seconds (docs/development.md).

The operator runs as a child process whose kubeconfig holds a token of the chart's ServiceAccount
(TokenRequest API), not an impersonating admin: neither kopf's kubeconfig login nor the
kubernetes client honour a kubeconfig's `as:`, so impersonation would silently run as admin."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from shinsa.devcluster.cluster import LocalCluster, NodePool, tool_bin_dir
from tests.e2e.test_model_deployment import condition
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shinsa"
GROUP, VERSION, PLURAL = "shinsa.dev", "v1alpha1", "modeldeployments"

Helm = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def bin_dir() -> Path:
    """Where helm and kubectl are (tools/build.sh builds them with the control plane)."""
    return tool_bin_dir()


@pytest.fixture(scope="module")
def helm(bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """`helm ...` with its cache/config/data in a temporary directory, never the user's."""
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(bin_dir / "helm"), *args], capture_output=True, text=True, env=env, timeout=180, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    return run


def render(helm: Helm, *args: str) -> list[dict[str, Any]]:
    out = helm("template", "shinsa", str(CHART), "--namespace", "shinsa-system", *args).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def only(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def rules_of(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for d in docs if d["kind"] == "ClusterRole" for rule in d["rules"]]


def repo_crds() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in sorted((REPO / "crds").glob("*.yaml"))]


# -- the chart on its own ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "values",
    [
        [],
        ["--set", "watchNamespaces={team-a,team-b}"],
        ["--set", "metrics.enabled=false", "--set", "rbac.create=false",
         "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=existing"],
        ["--set", "metrics.serviceMonitor.enabled=true", "--set", "image.digest=sha256:" + "a" * 64],
    ],
    ids=["defaults", "watch-namespaces", "bring-your-own-account", "service-monitor"],
)  # fmt: skip
def test_chart_lints_clean(helm: Helm, values: list[str]) -> None:
    done = helm("lint", "--strict", str(CHART), *values)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout


def test_template_renders_a_locked_down_operator_with_probes_and_metrics(helm: Helm) -> None:
    docs = render(helm)
    kinds = ["ServiceAccount", "ClusterRole", "ClusterRole", "ClusterRoleBinding", "ClusterRoleBinding"]
    assert sorted(d["kind"] for d in docs) == sorted([*kinds, "Deployment", "Service"])
    account = only(docs, "ServiceAccount")["metadata"]
    assert (account["name"], account["namespace"]) == ("shinsa", "shinsa-system")

    deployment = only(docs, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    pod = spec["template"]
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "8080",
        "prometheus.io/path": "/metrics",
    }
    assert pod["spec"]["serviceAccountName"] == "shinsa"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["spec"]["containers"]
    assert (
        container["image"]
        == f"shinsa-operator:{yaml.safe_load((CHART / 'Chart.yaml').read_text())['appVersion']}"
    )
    assert container["args"] == ["--metrics-port=8080", "--liveness-port=8081"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"metrics": 8080, "liveness": 8081}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "liveness"}, probe
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    # The only writable path: the discovery cache under /tmp.
    assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
    assert "emptyDir" in pod["spec"]["volumes"][0]

    service = only(docs, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]

    # Least privilege, in shape: no wildcards, no secrets, nothing beyond read at cluster scope.
    rules = rules_of(docs)
    assert not any("*" in r["verbs"] or "*" in r["resources"] or "*" in r["apiGroups"] for r in rules)
    assert not any(res in r["resources"] for r in rules for res in ("secrets", "namespaces"))
    # ConfigMaps only written (an EvalRun's engine config), never read: no one else's is seen.
    assert {v for r in rules if "configmaps" in r["resources"] for v in r["verbs"]} == {"create", "patch"}
    cluster = only(docs, "ClusterRole", "shinsa-cluster")
    assert {v for r in cluster["rules"] for v in r["verbs"]} <= {"list", "watch"}
    for binding in (d for d in docs if d["kind"] == "ClusterRoleBinding"):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "shinsa", "namespace": "shinsa-system"}
        ]


def test_evaluation_values_become_the_operators_evaluator_settings(helm: Helm) -> None:
    from shinsa.controllers.settings import OperatorSettings

    def settings(*args: str) -> OperatorSettings:
        (container,) = only(render(helm, *args), "Deployment")["spec"]["template"]["spec"]["containers"]
        return OperatorSettings.from_env({e["name"]: e["value"] for e in container["env"] if "value" in e})

    chosen = settings(
        "--set", "evaluation.resultsBucket=team-evals", "--set", "evaluation.s3EndpointUrl=http://minio:9000",
        "--set", "evaluation.envSecret=s3-credentials", "--set", "evaluation.serviceAccount=evaluator",
        "--set-json", 'evaluation.nodeSelector={"pool":"cpu"}',
        "--set-json", 'evaluation.tolerations=[{"key":"batch","operator":"Exists","effect":"NoSchedule"}]',
        "--set", "image.repository=registry.example/shinsa", "--set", "image.tag=1.2.3",
    )  # fmt: skip
    assert chosen.results_bucket == "team-evals" and chosen.s3_endpoint_url == "http://minio:9000"
    assert chosen.evaluator_env_secret == "s3-credentials"
    assert chosen.evaluator_service_account == "evaluator"
    assert chosen.evaluator_node_selector == {"pool": "cpu"}
    assert [t.to_k8s() for t in chosen.evaluator_tolerations] == [
        {"key": "batch", "operator": "Exists", "effect": "NoSchedule"}
    ]
    # The evaluator runs the operator's own image unless told otherwise.
    assert chosen.evaluator_image == "registry.example/shinsa:1.2.3"
    assert settings("--set", "evaluation.image=registry.example/evaluator:2").evaluator_image == (
        "registry.example/evaluator:2"
    )
    defaults = settings()
    assert defaults.results_bucket is None and defaults.evaluator_env_secret is None
    assert defaults.evaluator_node_selector == {} and defaults.evaluator_tolerations == ()


def test_template_with_watch_namespaces_binds_the_operator_role_only_there(helm: Helm) -> None:
    docs = render(helm, "--set", "watchNamespaces={team-a,team-b}")
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert container["args"][-2:] == ["--namespace=team-a", "--namespace=team-b"]
    bindings = [d for d in docs if d["kind"] == "RoleBinding"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert {b["roleRef"]["name"] for b in bindings} == {"shinsa-operator"}
    # Only the cluster-scoped reads are bound cluster-wide; kopf now also watches namespaces.
    (cluster_binding,) = [d for d in docs if d["kind"] == "ClusterRoleBinding"]
    assert cluster_binding["roleRef"]["name"] == "shinsa-cluster"
    cluster = only(docs, "ClusterRole", "shinsa-cluster")
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]} in cluster["rules"]


def test_chart_ships_the_generated_crds(helm: Helm) -> None:
    included = [d for d in render(helm, "--include-crds") if d["kind"] == "CustomResourceDefinition"]
    assert sorted(included, key=lambda c: c["metadata"]["name"]) == repo_crds()


@pytest.mark.parametrize(
    ("values", "field", "why"),
    [
        ({"replicaCount": "three"}, "/replicaCount", "want integer"),
        ({"replicaCount": 3}, "/replicaCount", "maximum"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy", "must be one of"),
        ({"metrics": {"port": 70000}}, "/metrics/port", "maximum"),
        ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0", "does not match pattern"),
        ({"replicas": 2}, "replicas", "additional properties"),
    ],
)
def test_schema_refuses_bad_values_naming_the_field(
    helm: Helm, tmp_path: Path, values: dict[str, Any], field: str, why: str
) -> None:
    bad = tmp_path / "values.yaml"
    bad.write_text(yaml.safe_dump(values))
    done = helm("template", "shinsa", str(CHART), "-f", str(bad), check=False)
    assert done.returncode != 0, done.stdout
    assert "don't meet the specifications of the schema" in done.stderr, done.stderr
    assert field in done.stderr and why in done.stderr, done.stderr


def test_equal_metrics_and_liveness_ports_are_refused(helm: Helm) -> None:
    done = helm("template", "shinsa", str(CHART), "--set", "livenessPort=8080", check=False)
    assert done.returncode != 0
    assert "metrics.port and livenessPort must differ" in done.stderr, done.stderr


# -- installed into the test cluster ----------------------------------------------------------------


def deployment_available(apps: client.AppsV1Api, namespace: str, name: str) -> bool:
    status = apps.read_namespaced_deployment(name, namespace).status
    return any(c.type == "Available" and c.status == "True" for c in status.conditions or [])


def test_helm_install_makes_the_operator_deployment_available_on_a_cpu_node(
    cluster: LocalCluster, kube: client.ApiClient, crds: list[str], namespace: str, helm: Helm
) -> None:
    release = f"shinsa-{namespace}"  # cluster-scoped RBAC objects are named after the release
    # The `crds` fixture already applied crds/ (server-side, its own field manager); helm would
    # only skip existing CRDs anyway (it never updates crds/), --skip-crds says so explicitly.
    try:
        installed = helm(
            "install", release, str(CHART), "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig),
            "--skip-crds", "--wait", "--timeout", "120s",
        )  # fmt: skip
        assert "STATUS: deployed" in installed.stdout, installed.stdout
        assert f"deployment/{release}" in installed.stdout  # NOTES.txt

        apps = client.AppsV1Api(kube)
        eventually(lambda: deployment_available(apps, namespace, release), 90, what="the operator Available")
        (pod,) = (
            client.CoreV1Api(kube)
            .list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/instance={release}")
            .items
        )
        assert pod.spec.node_name.startswith("cpu-node"), pod.spec.node_name  # GPU nodes are tainted
        assert pod.spec.service_account_name == release
        assert pod.spec.security_context.run_as_non_root is True
        rbac = client.RbacAuthorizationV1Api(kube)
        assert rbac.read_cluster_role(f"{release}-operator").rules
        assert client.CoreV1Api(kube).read_namespaced_service(f"{release}-metrics", namespace)
    finally:
        helm(
            "uninstall", release, "--namespace", namespace, "--kubeconfig", str(cluster.kubeconfig), "--wait",
            check=False,
        )  # fmt: skip
    with pytest.raises(ApiException) as gone:
        client.RbacAuthorizationV1Api(kube).read_cluster_role(f"{release}-operator")
    assert gone.value.status == 404


# -- the chart's RBAC, with the real operator running as the chart's ServiceAccount -----------------


@dataclass
class RbacCluster:
    local: LocalCluster
    api: client.ApiClient
    release_namespace: str
    service_account: str
    logs: Path


@pytest.fixture(scope="module")
def rbac_cluster(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RbacCluster]:
    """A control plane of its own with the chart installed by helm, CRDs included. replicaCount=0:
    the operator runs below as a real process under the chart's ServiceAccount, not as a
    simulated pod."""
    local = LocalCluster(tmp_path_factory.mktemp("rbac-cluster"))
    try:
        local.up([NodePool("gpu-node", 1, gpus=8), NodePool("cpu-node", 1, gpus=0)])
        helm(
            "install", "shinsa", str(CHART), "--namespace", "shinsa-system", "--create-namespace",
            "--kubeconfig", str(local.kubeconfig), "--set", "replicaCount=0",
        )  # fmt: skip
        api = local.api()
        extensions = client.ApiextensionsV1Api(api)

        def established() -> bool:
            return all(
                any(c.type == "Established" and c.status == "True" for c in crd.status.conditions or [])
                for crd in (
                    extensions.read_custom_resource_definition(c["metadata"]["name"]) for c in repo_crds()
                )
            )

        eventually(established, 30, what="the CRDs helm installed to be Established")
        yield RbacCluster(local, api, "shinsa-system", "shinsa", tmp_path_factory.mktemp("operator-logs"))
    finally:
        local.down()


def service_account_kubeconfig(env: RbacCluster, account: str, path: Path) -> Path:
    """A kubeconfig that authenticates with a token of `account` (TokenRequest API): the operator
    then holds exactly that account's permissions, as in its pod."""
    token = (
        client.CoreV1Api(env.api)
        .create_namespaced_service_account_token(
            account, env.release_namespace, {"spec": {"expirationSeconds": 3600}}
        )
        .status.token
    )
    admin = yaml.safe_load(env.local.kubeconfig.read_text())
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": admin["clusters"],
                "users": [{"name": account, "user": {"token": token}}],
                "contexts": [
                    {"name": account, "context": {"cluster": admin["clusters"][0]["name"], "user": account}}
                ],
                "current-context": account,
            }
        )
    )
    path.chmod(0o600)
    whoami = client.AuthenticationV1Api(client.ApiClient(_configuration(path)))
    review = whoami.create_self_subject_review(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    )
    assert review.status.user_info.username == f"system:serviceaccount:{env.release_namespace}:{account}"
    return path


def _configuration(kubeconfig: Path) -> client.Configuration:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    return configuration


# `shinsa operator run` as the image's entrypoint runs it, with kopf's standard log format turned
# on first (the command itself leaves logging unconfigured), so the test can read what it did.
RUN_OPERATOR = "import sys, kopf; kopf.configure(); from shinsa.cli import app; app(sys.argv[1:])"


@contextmanager
def operator_process(kubeconfig: Path, log: Path, *namespaces: str) -> Iterator[Callable[[], str]]:
    """`shinsa operator run` (cluster-wide unless `namespaces`, as the chart runs it) in a child
    process whose only credentials are `kubeconfig`; yields a reader of its log, stops it on exit."""
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    args = ["operator", "run", "--metrics-port", "0", "--liveness-port", "0"]
    args += [f"--namespace={n}" for n in namespaces]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUN_OPERATOR, *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        yield lambda: log.read_text(errors="replace")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def small(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        },
    }


def apply_model_deployment(env: RbacCluster, namespace: str) -> Callable[[], dict[str, Any]]:
    with contextlib.suppress(ApiException):  # already there (a RoleBinding needed it first)
        client.CoreV1Api(env.api).create_namespace({"metadata": {"name": namespace}})
    custom = client.CustomObjectsApi(env.api)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, small(namespace))
    return lambda: dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, namespace))


def wait_reconciled(get: Callable[[], dict[str, Any]], log: Callable[[], str]) -> tuple[dict[str, Any], str]:
    """Ready=True, then the operator's log once the handler has returned: the handler writes the
    status itself, so Ready can be read before kopf logs the handler's success."""

    def ready() -> dict[str, Any] | None:
        md = get()
        found = condition(md, "Ready")
        return md if found and found["status"] == "True" else None

    try:
        md = eventually(ready, 120, what="Ready=True under the chart's RBAC")
        output = eventually(
            lambda: text if "Handler 'reconcile' succeeded" in (text := log()) else None,
            30,
            what="the operator to log the reconcile handler's success",
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- operator log ---\n{log()[-6000:]}") from None
    return md, output


def assert_nothing_refused(output: str) -> None:
    """The operator reconciled, nothing it tried was refused, and kopf had what it needs to
    watch CRDs (and namespaces) and to post events."""
    assert "Handler 'reconcile' succeeded" in output, output[-6000:]
    for refused in ("forbidden", "Not enough permissions", "Failed to post an event"):
        assert refused.lower() not in output.lower(), f"{refused!r} in the operator log:\n{output[-6000:]}"


def test_the_chart_service_account_can_do_what_the_operator_needs_and_nothing_more(
    rbac_cluster: RbacCluster, tmp_path: Path
) -> None:
    env = rbac_cluster
    kubeconfig = service_account_kubeconfig(env, env.service_account, tmp_path / "operator.kubeconfig")
    # It is not an admin in disguise: secrets, for one, are out of reach.
    with pytest.raises(ApiException) as denied:
        client.CoreV1Api(client.ApiClient(_configuration(kubeconfig))).list_secret_for_all_namespaces()
    assert denied.value.status == 403

    with operator_process(kubeconfig, env.logs / "allowed.log") as log:
        get = apply_model_deployment(env, "rbac-allowed")

        md, output = wait_reconciled(get, log)

    assert md["status"]["phase"] == "Ready" and md["status"]["readyReplicas"] == 1
    uid = md["metadata"]["uid"]
    deployment = client.AppsV1Api(env.api).read_namespaced_deployment("rbac-allowed", "rbac-allowed")
    assert [o.uid for o in deployment.metadata.owner_references] == [uid]
    service = client.CoreV1Api(env.api).read_namespaced_service("rbac-allowed", "rbac-allowed")
    assert [o.uid for o in service.metadata.owner_references] == [uid]
    # Condition transitions were posted as Events by the operator, under the account. kopf posts
    # them from a queue, so the last ones may land just after the status that reports Ready.
    eventually(
        lambda: (
            client.CoreV1Api(env.api)
            .list_namespaced_event("rbac-allowed", field_selector=f"involvedObject.uid={uid}")
            .items
        ),
        timeout_s=30,
        what="events posted for the ModelDeployment",
    )
    assert_nothing_refused(output)


def test_without_deployments_the_reconcile_cannot_complete(rbac_cluster: RbacCluster, tmp_path: Path) -> None:
    """The negative control: the same operator and ModelDeployment, with the chart's rules minus
    `deployments`, gets no Deployment and never becomes Ready."""
    env = rbac_cluster
    rbac = client.RbacAuthorizationV1Api(env.api)
    chart_roles = rbac.list_cluster_role(label_selector="app.kubernetes.io/instance=shinsa").items
    assert sorted(r.metadata.name for r in chart_roles) == ["shinsa-cluster", "shinsa-operator"]
    rules = []
    for role in chart_roles:
        for rule in env.api.sanitize_for_serialization(role)["rules"]:
            if "deployments" in rule["resources"]:
                rule["resources"].remove("deployments")
                if not rule["resources"]:
                    continue
            rules.append(rule)
    assert len(rules) == sum(len(r.rules) for r in chart_roles) - 1  # exactly one rule dropped

    account = "shinsa-no-deployments"
    client.CoreV1Api(env.api).create_namespaced_service_account(
        env.release_namespace, {"metadata": {"name": account}}
    )
    rbac.create_cluster_role({"metadata": {"name": account}, "rules": rules})
    rbac.create_cluster_role_binding(
        {
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": env.release_namespace}],
        }
    )
    kubeconfig = service_account_kubeconfig(env, account, tmp_path / "crippled.kubeconfig")

    refusal = re.compile(r'deployments\.apps \\*"rbac-denied\\*" is forbidden')

    def refused(md: dict[str, Any]) -> str | None:
        # kopf keeps the handler's last failure in its progress annotation (shinsa.dev/<handler>).
        progress = md["metadata"].get("annotations", {}).get("shinsa.dev/reconcile")
        message = json.loads(progress).get("message") or "" if progress else ""
        return message if refusal.search(message) else None

    with operator_process(kubeconfig, env.logs / "denied.log") as log:
        get = apply_model_deployment(env, "rbac-denied")
        try:
            message = eventually(lambda: refused(get()), 90, what="the Deployment apply to be refused")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- operator log ---\n{log()[-6000:]}") from None
        md = get()
        output = log()

    assert f"system:serviceaccount:{env.release_namespace}:{account}" in message
    assert refusal.search(output), output[-6000:]
    ready = condition(md, "Ready")
    assert ready is None or ready["status"] != "True", md.get("status")
    assert md.get("status", {}).get("phase") != "Ready"
    deployments = client.AppsV1Api(env.api).list_namespaced_deployment("rbac-denied").items
    assert deployments == []


def test_a_namespaced_install_reconciles_with_role_bindings_only_there(
    rbac_cluster: RbacCluster, helm: Helm, tmp_path: Path
) -> None:
    """watchNamespaces: the operator role is bound by a RoleBinding in the watched namespace only,
    and that (plus the cluster-scoped reads) is enough for `--namespace`."""
    env = rbac_cluster
    core = client.CoreV1Api(env.api)
    core.create_namespace({"metadata": {"name": "rbac-team"}})  # RoleBindings need it first
    helm(
        "install", "team", str(CHART), "--namespace", "shinsa-team", "--create-namespace",
        "--kubeconfig", str(env.local.kubeconfig), "--skip-crds",
        "--set", "replicaCount=0", "--set", "watchNamespaces={rbac-team}",
    )  # fmt: skip
    team = RbacCluster(env.local, env.api, "shinsa-team", "team-shinsa", env.logs)
    kubeconfig = service_account_kubeconfig(team, team.service_account, tmp_path / "team.kubeconfig")
    # Outside its namespaces the account can do nothing with ModelDeployments.
    with pytest.raises(ApiException) as denied:
        client.CustomObjectsApi(client.ApiClient(_configuration(kubeconfig))).list_namespaced_custom_object(
            GROUP, VERSION, "rbac-elsewhere", PLURAL
        )
    assert denied.value.status == 403

    with operator_process(kubeconfig, env.logs / "team.log", "rbac-team") as log:
        elsewhere = apply_model_deployment(env, "rbac-elsewhere")
        md, output = wait_reconciled(apply_model_deployment(env, "rbac-team"), log)

    assert md["status"]["phase"] == "Ready"
    assert client.AppsV1Api(env.api).read_namespaced_deployment("rbac-team", "rbac-team")
    assert_nothing_refused(output)
    assert "status" not in elsewhere(), "the namespaced operator reconciled outside its namespace"


def test_crds_installed_by_helm_upgrade_with_server_side_apply(
    rbac_cluster: RbacCluster, bin_dir: Path, tmp_path: Path
) -> None:
    """docs/install.md's upgrade path: helm created the CRDs (and never updates them);
    `kubectl apply --server-side --force-conflicts` takes them over with a newer definition."""
    env = rbac_cluster
    kubectl = [str(bin_dir / "kubectl"), "--kubeconfig", str(env.local.kubeconfig)]
    name = "modeldeployments.shinsa.dev"
    crd = client.ApiextensionsV1Api(env.api).read_custom_resource_definition(name)
    managers = {f.manager for f in crd.metadata.managed_fields}
    assert "helm" in managers, managers

    # A newer version of the CRD: one printer column's description changed.
    newer = yaml.safe_load((REPO / "crds" / f"{name}.yaml").read_text())
    newer["spec"]["versions"][0]["additionalPrinterColumns"][0]["description"] = "upgraded"
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(newer))

    plain = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(path)], capture_output=True, text=True
    )
    assert plain.returncode != 0 and "conflict" in plain.stderr.lower(), plain.stderr
    forced = subprocess.run(
        [*kubectl, "apply", "--server-side", "--force-conflicts", "-f", str(path)],
        capture_output=True,
        text=True,
    )
    assert forced.returncode == 0, forced.stderr
    got = client.ApiextensionsV1Api(env.api).read_custom_resource_definition(name)
    assert got.spec.versions[0].additional_printer_columns[0].description == "upgraded"
    # From now on kubectl's apply owns the fields: later upgrades apply cleanly.
    again = subprocess.run(
        [*kubectl, "apply", "--server-side", "-f", str(REPO / "crds" / f"{name}.yaml")],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr
    assert (
        json.loads(
            subprocess.run(
                [*kubectl, "get", "crd", name, "-o", "json"], capture_output=True, text=True
            ).stdout
        )["spec"]["versions"][0]["additionalPrinterColumns"][0]["description"]
        != "upgraded"
    )
