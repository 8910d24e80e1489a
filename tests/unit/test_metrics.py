"""The operator's metrics: docs/metrics.md lists exactly what the registry serves, and the EvalRun
hooks count phases, decisions and store errors from the status writes as the controller makes them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from shinsa.api import EvalRunPhase, EvalRunStatus, GateVerdict
from shinsa.api.conditions import set_condition
from shinsa.api.lifecycle import EvalRunCondition as Cond
from shinsa.api.lifecycle import EvalRunReason as Reason
from shinsa.controllers import metrics
from tests.support.promql import metric_names, operator_series, series_names

pytestmark = pytest.mark.unit

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
_ROW = re.compile(r"^\| `(shinsa_\w+)` \| (\w+) \| ([^|]*) \|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        if match := _ROW.match(line):
            labels = frozenset(re.findall(r"`(\w+)`", match.group(3)))
            rows[match.group(1)] = (match.group(2), labels)
    return rows


def served() -> dict[str, tuple[str, frozenset[str]]]:
    """The exposition's shinsa_* families: name as scraped (counters with _total), type, labels."""
    families: dict[str, tuple[str, frozenset[str]]] = {}
    text = generate_latest(REGISTRY).decode()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("shinsa_"):
            continue
        name = family.name + "_total" if family.type == "counter" else family.name
        labels = frozenset(label for s in family.samples for label in s.labels if label != "le")
        families[name] = (family.type, labels)
    # The text format has no _created lines of its own kind: the parser reads them as gauges.
    created = {
        n
        for n in families
        if n.endswith("_created")
        and (n[: -len("_created")] + "_total" in families or n[: -len("_created")] in families)
    }
    return {n: v for n, v in families.items() if n not in created}


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_documented_metrics_are_what_the_registry_serves() -> None:
    # Each labelled family gets a sample, so that its label names are in the exposition.
    with pytest.raises(RuntimeError), metrics.reconciling("DocCheck"):
        raise RuntimeError("a reconcile that fails")
    metrics.record_phase("doc/check", "Ready")
    metrics.record_phase("doc/check", None)
    assert served() == documented()


def test_every_documented_series_is_one_a_query_can_name() -> None:
    exposed = operator_series()
    for name, (type_, _) in documented().items():
        assert series_names(name, type_) <= exposed, name


def test_eval_run_label_values_exist_before_the_first_event() -> None:
    # increase() over a series that appears with its first event misses that event.
    for verdict in GateVerdict:
        assert REGISTRY.get_sample_value("shinsa_gate_decisions_total", {"decision": verdict}) is not None
    for reason in ("Promoted", "NotPassed", "Forbidden", "Superseded", "NotPromotable", "Disabled"):
        assert REGISTRY.get_sample_value("shinsa_promotions_total", {"reason": reason}) is not None
    for phase in ("Succeeded", "Failed", "Incomplete"):
        assert REGISTRY.get_sample_value("shinsa_eval_runs_finished_total", {"phase": phase}) is not None
    for kind in ("registry", "results"):
        assert REGISTRY.get_sample_value("shinsa_store_errors_total", {"kind": kind}) is not None


def _write(step: list[EvalRunStatus], key: str, **update: Any) -> None:
    """What eval_run._Step.write hands the hook: the status before and the one it wrote."""
    before = step[-1]
    after = before.model_copy(update=update)
    metrics.record_eval_run(key, before, after)
    step.append(after)


def _condition(status: EvalRunStatus, type_: Cond, value: bool | None, reason: Reason) -> list[Any]:
    return set_condition(status.conditions, type_, True if value is None else value, reason, "m")


def test_an_eval_run_moves_through_the_in_flight_gauge_and_finishes_once() -> None:
    key = "unit/run-a"
    running_before = value("shinsa_eval_runs", phase="Running")
    finished_before = value("shinsa_eval_runs_finished_total", phase="Incomplete")
    step = [EvalRunStatus()]
    _write(step, key, phase=EvalRunPhase.PENDING)
    _write(step, key, phase=EvalRunPhase.RUNNING)
    _write(step, key, phase=EvalRunPhase.RUNNING)  # a resync that changed nothing
    assert value("shinsa_eval_runs", phase="Running") == running_before + 1
    _write(step, key, phase=EvalRunPhase.INCOMPLETE)
    _write(step, key)  # a later write in the same reconcile: not a second finish
    assert value("shinsa_eval_runs", phase="Running") == running_before
    assert value("shinsa_eval_runs_finished_total", phase="Incomplete") == finished_before + 1


def test_a_decision_is_counted_when_first_written() -> None:
    key = "unit/run-b"
    before = value("shinsa_gate_decisions_total", decision="Inconclusive")
    step = [EvalRunStatus(phase=EvalRunPhase.GATING)]
    _write(step, key, phase=EvalRunPhase.PROMOTING, decision=GateVerdict.INCONCLUSIVE)
    _write(step, key, phase=EvalRunPhase.SUCCEEDED)
    assert value("shinsa_gate_decisions_total", decision="Inconclusive") == before + 1


def test_each_failed_store_attempt_is_counted_and_a_carried_condition_is_not() -> None:
    key = "unit/run-c"
    before = value("shinsa_store_errors_total", kind="results")
    step = [EvalRunStatus(phase=EvalRunPhase.RUNNING)]
    # Two reconciles that could not read the results, the second with the same message.
    _write(step, key, conditions=_condition(step[-1], Cond.JOB_COMPLETE, None, Reason.RESULTS_UNAVAILABLE))
    _write(step, key, conditions=_condition(step[-1], Cond.JOB_COMPLETE, None, Reason.RESULTS_UNAVAILABLE))
    assert value("shinsa_store_errors_total", kind="results") == before + 2
    # A write that sets another condition carries the first along: no new error.
    _write(step, key, conditions=_condition(step[-1], Cond.TARGET_READY, True, Reason.ENDPOINT_GIVEN))
    _write(step, key, phase=EvalRunPhase.GATING)
    assert value("shinsa_store_errors_total", kind="results") == before + 2


def test_a_deleted_run_leaves_the_gauge() -> None:
    key = "unit/run-d"
    waiting = value("shinsa_eval_runs", phase="WaitingForTarget")
    step = [EvalRunStatus()]
    _write(step, key, phase=EvalRunPhase.WAITING_FOR_TARGET)
    metrics.forget_eval_run(key)
    assert value("shinsa_eval_runs", phase="WaitingForTarget") == waiting


def test_promotions_are_counted_by_reason() -> None:
    before = value("shinsa_promotions_total", reason="Forbidden")
    metrics.record_promotion(Reason.FORBIDDEN)
    assert value("shinsa_promotions_total", reason="Forbidden") == before + 1


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum(rate(shinsa_reconcile_errors_total[5m])) by (kind) > 0.1", {"shinsa_reconcile_errors_total"}),
        (
            "histogram_quantile(0.95, sum by (le) (rate(vllm:e2e_request_latency_seconds_bucket"
            '{model_name=~"$model"}[$__rate_interval])))',
            {"vllm:e2e_request_latency_seconds_bucket"},
        ),
        ("increase(a_total[6h]) >= 3 unless on() increase(b[1h] offset 5m) > 0", {"a_total", "b"}),
        ('max_over_time(shinsa_eval_runs{phase="Running"}[1h:1m]) or vector(0)', {"shinsa_eval_runs"}),
    ],
)
def test_metric_names_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


# -- the hooks as the EvalRun controller calls them -------------------------------------------------


@pytest.fixture
def step(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A controller step over the shipped example EvalRun, writing to no API server."""
    import yaml

    from shinsa.api import EvalRun
    from shinsa.controllers import eval_run, kube

    monkeypatch.setattr(kube, "patch_status", lambda *_: None)
    monkeypatch.setattr(kube, "post_event", lambda *_: None)
    path = Path(__file__).resolve().parents[2] / "examples" / "evalrun-qwen3-8b.yaml"
    body = next(d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "EvalRun")
    body["metadata"] |= {"namespace": "unit", "name": "wired", "generation": 1}
    return eval_run._Step(body, EvalRun.from_body(body))


def test_the_controllers_status_writes_reach_the_hook(step: Any) -> None:
    running = value("shinsa_eval_runs", phase="Running")
    results = value("shinsa_store_errors_total", kind="results")
    step.write(
        phase=EvalRunPhase.RUNNING,
        conditions=step.condition(Cond.JOB_COMPLETE, None, Reason.RESULTS_UNAVAILABLE, "S3 did not answer"),
    )
    assert value("shinsa_eval_runs", phase="Running") == running + 1
    assert value("shinsa_store_errors_total", kind="results") == results + 1
    step.write(phase=EvalRunPhase.FAILED)
    assert value("shinsa_eval_runs", phase="Running") == running


def test_the_promotion_step_counts_its_outcome_and_a_registry_outage(
    step: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kopf

    from shinsa.controllers import eval_run
    from shinsa.controllers.promotion import Outcome, RegistryUnavailable

    superseded = value("shinsa_promotions_total", reason="Superseded")
    registry = value("shinsa_store_errors_total", kind="registry")

    def down(*_: Any) -> Outcome:
        raise RegistryUnavailable("MLflow did not answer")

    monkeypatch.setattr(eval_run, "promote_run", down)
    with pytest.raises(kopf.TemporaryError):
        eval_run._promote(step, settings=None)  # type: ignore[arg-type]
    assert value("shinsa_store_errors_total", kind="registry") == registry + 1

    outcome = Outcome(promoted=False, reason=Reason.SUPERSEDED, message="a newer version holds the alias")
    monkeypatch.setattr(eval_run, "promote_run", lambda *_: outcome)
    eval_run._promote(step, settings=None)  # type: ignore[arg-type]
    assert value("shinsa_promotions_total", reason="Superseded") == superseded + 1
