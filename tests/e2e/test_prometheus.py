"""The operator's metrics as a platform team consumes them: a real Prometheus (Debian's 2.42, from
tools/prometheus.sh) scrapes the operator while it reconciles a ModelDeployment; the chart's
PrometheusRule passes `promtool check rules` and its expressions, like every dashboard panel's
query, name only metrics the operator or the pinned vLLM serves; the dashboard type-checks against
Grafana's own schema."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from prometheus_client import start_http_server

from shinsa.devcluster.cluster import free_port, tool_bin_dir
from tests.support import grafana_schema
from tests.support.operator import InProcessOperator
from tests.support.prometheus import Prometheus, binaries, check_rules
from tests.support.promql import metric_names, operator_series, vllm_series
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "shinsa"
GROUP, VERSION, PLURAL = "shinsa.dev", "v1alpha1", "modeldeployments"
ENABLED = ["--set", "metrics.prometheusRule.enabled=true", "--set", "metrics.dashboard.enabled=true"]


@pytest.fixture(scope="module")
def prometheus_bin() -> Path:
    bin_dir, took = binaries()
    print(f"\n[prometheus] binaries ready in {took:.1f} s: {bin_dir}")
    return bin_dir


def helm(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        [str(tool_bin_dir() / "helm"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The chart with the PrometheusRule and the dashboard turned on."""
    home = tmp_path_factory.mktemp("helm-home")
    done = helm("template", "shinsa", str(CHART), "--namespace", "shinsa-system", *ENABLED, home=home)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, [d["metadata"]["name"] for d in found]
    return found[0]


def alert_rules(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [rule for group in only(docs, "PrometheusRule")["spec"]["groups"] for rule in group["rules"]]


def dashboard(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(only(docs, "ConfigMap")["data"]["shinsa.json"])


def panel_queries(board: dict[str, Any]) -> dict[str, list[str]]:
    queries: dict[str, list[str]] = {}
    for panel in board["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            exprs = [t["expr"] for t in inner.get("targets", [])]
            if exprs:
                queries[inner["title"]] = exprs
    return queries


def variable_queries(board: dict[str, Any]) -> list[str]:
    # label_values(<selector>, <label>): only the selector names a metric.
    out = []
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            assert text.startswith("label_values(") and "," in text, text
            out.append(text.removeprefix("label_values(").rsplit(",", 1)[0])
    return out


# -- a real Prometheus scrapes the operator -----------------------------------------------------------


@pytest.fixture
def operator_metrics(operator: InProcessOperator) -> Iterator[str]:
    """The session operator's metrics on a loopback port. It runs in this process, so its metrics are
    prometheus_client's default registry, served as `shinsa operator run --metrics-port` serves it."""
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def test_prometheus_scrapes_the_operator_reconciling_a_model_deployment(
    prometheus_bin: Path, operator_metrics: str, kube: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ModelDeployment",
        "metadata": {"name": "scraped"},
        "spec": {
            "model": {"uri": "hf://llm-jp/llm-jp-4-8b"},
            "serving": {"maxModelLen": 8192},
            "resources": {"gpu": {"product": "NVIDIA-H100-80GB-HBM3"}},
        },
    }
    api = client.CustomObjectsApi(kube)
    with Prometheus(prometheus_bin, tmp_path, "shinsa-operator", [operator_metrics]) as prom:
        ready = time.monotonic() - prom.started_at
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)

        def reconciled() -> list[dict[str, Any]]:
            return prom.query('shinsa_reconcile_total{job="shinsa-operator",kind="ModelDeployment"} > 0')

        series = eventually(reconciled, timeout_s=60, what="shinsa_reconcile_total in Prometheus")
        first = time.monotonic() - prom.started_at
        assert series[0]["metric"]["instance"] == operator_metrics

        def phase_counted() -> list[dict[str, Any]] | None:
            md = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, "scraped")
            phase = (md.get("status") or {}).get("phase")
            if phase is None:
                return None
            return prom.query(f'shinsa_model_deployments{{job="shinsa-operator",phase="{phase}"}} >= 1')

        by_phase = eventually(phase_counted, timeout_s=60, what="the ModelDeployment's phase in Prometheus")
        assert by_phase[0]["metric"]["phase"]
        # Every family the operator serves reached Prometheus, labelled or not yet.
        names = {r["metric"]["__name__"] for r in prom.query('{job="shinsa-operator",__name__=~"shinsa_.+"}')}
        assert {"shinsa_eval_runs", "shinsa_gate_decisions_total", "shinsa_promotions_total"} <= names
        print(f"\n[prometheus] ready {ready:.1f} s after start; first shinsa_reconcile_total {first:.1f} s")


# -- the chart's alerts and dashboard -----------------------------------------------------------------


def test_the_chart_lints_with_alerts_and_dashboard(tmp_path: Path) -> None:
    done = helm("lint", "--strict", str(CHART), *ENABLED, home=tmp_path)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout + done.stderr


def test_the_alerts_are_off_by_default_and_link_their_runbooks(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    done = helm("template", "shinsa", str(CHART), home=tmp_path)
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout) if d}
    assert not kinds & {"PrometheusRule", "ConfigMap"}

    rules = alert_rules(rendered)
    assert {r["alert"] for r in rules} >= {
        "ShinsaReconcileErrors",
        "ShinsaModelDeploymentNotReady",
        "ShinsaEvalRunIncomplete",
        "ShinsaGateInconclusiveStreak",
        "ShinsaPromotionRefused",
    }
    for rule in rules:
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/runbooks/") and (REPO / url).is_file(), (rule["alert"], url)
        assert rule["labels"]["severity"]

    base = "https://wiki.example.com/shinsa/runbooks"
    done = helm(
        "template", "shinsa", str(CHART), *ENABLED, "--set", f"metrics.prometheusRule.runbookBaseUrl={base}/",
        home=tmp_path,
    )  # fmt: skip
    linked = alert_rules([d for d in yaml.safe_load_all(done.stdout) if d])
    assert all(r["annotations"]["runbook_url"].startswith(base + "/") for r in linked)
    assert not any("//" in r["annotations"]["runbook_url"].removeprefix("https://") for r in linked)


def test_promtool_accepts_the_rendered_rules(
    rendered: list[dict[str, Any]], prometheus_bin: Path, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": only(rendered, "PrometheusRule")["spec"]["groups"]}))
    done = check_rules(prometheus_bin, rules)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(alert_rules(rendered))} rules found" in done.stdout, done.stdout

    # And promtool would say so: a broken expression is refused.
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "rate(x[5m]"}]}]})
    )
    assert check_rules(prometheus_bin, broken).returncode != 0


def test_every_alert_names_only_metrics_the_operator_serves(rendered: list[dict[str, Any]]) -> None:
    served = operator_series()
    for rule in alert_rules(rendered):
        names = metric_names(rule["expr"])
        assert names, rule["alert"]
        assert names <= served, (rule["alert"], names - served)


def test_every_dashboard_query_names_only_served_metrics(rendered: list[dict[str, Any]]) -> None:
    board = dashboard(rendered)
    assert only(rendered, "ConfigMap")["metadata"]["labels"]["grafana_dashboard"] == "1"
    served = operator_series() | vllm_series()
    queries = panel_queries(board)
    for title, exprs in queries.items():
        names = {name for expr in exprs for name in metric_names(expr)}
        assert names and names <= served, (title, names - served)
    for selector in variable_queries(board):
        assert metric_names(selector) <= served, selector
    # The serving metrics the issue asks for each have a panel.
    shown = {name for exprs in queries.values() for expr in exprs for name in metric_names(expr)}
    for family in ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc"):
        assert f"vllm:{family}" in shown
    for family in ("time_to_first_token_seconds", "e2e_request_latency_seconds"):
        assert f"vllm:{family}_bucket" in shown
    # ... and so does every operator metric.
    for name in served - vllm_series():
        base = name.removesuffix("_created")
        if base != name:
            continue
        family = base.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count")
        assert any(s.startswith(family) for s in shown), family


def test_panel_ids_and_positions_are_unique(rendered: list[dict[str, Any]]) -> None:
    panels = dashboard(rendered)["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    cells = set()
    for p in panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for x in range(g["x"], g["x"] + g["w"]):
            for y in range(g["y"], g["y"] + g["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps another panel"
                cells.add((x, y))


def test_the_dashboard_type_checks_against_grafanas_schema(
    rendered: list[dict[str, Any]], tmp_path: Path
) -> None:
    try:
        grafana_schema.install_dir()
    except FileNotFoundError:
        pytest.skip("npm is not installed: the Grafana schema check needs Node.js and npm")
    text = only(rendered, "ConfigMap")["data"]["shinsa.json"]
    started = time.monotonic()
    done = grafana_schema.type_check(text, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    print(f"\n[grafana-schema] tsc took {time.monotonic() - started:.1f} s")

    # The check bites: an unknown key and a wrong type are both refused.
    board = json.loads(text)
    board["panels"][1]["gridPos"]["w"] = "eight"
    board["refreshRate"] = "30s"
    done = grafana_schema.type_check(json.dumps(board), tmp_path)
    assert done.returncode != 0
    assert "refreshRate" in done.stdout or "'string' is not assignable" in done.stdout, done.stdout
