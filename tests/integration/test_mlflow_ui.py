"""The evaluation run as an MLflow 3 user sees it, in a real browser: MLflow's UI served by a real
`mlflow server`, rendered by headless Chromium. A candidate and its baseline are evaluated by the
engine against the graded OpenAI double, the gates decide, the operator's `record_decision` records
it; the run page then shows the decision tag and the datasets, the run's traces carry the judges'
assessments, and the gate table and plot are artifacts of the run."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from shinsa.api.gates import GatePolicy
from shinsa.evaluation.config import parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.runner import RunResult, run_evaluation
from shinsa.gates import evaluate_gates
from shinsa.registry.evaluations import (
    GATE_PLOT_ARTIFACT,
    GATE_TABLE_ARTIFACT,
    TAG_GATE_DECISION,
    mlflow_run_url,
    record_decision,
)
from support.browser import rendered

pytestmark = pytest.mark.e2e

EXPERIMENT = "shinsa-ui-test"
SAMPLED = 12


def _evaluate(
    make_graded_spec: Any, tmp_path: Path, mlflow_server: str, model: str, traces: Any
) -> RunResult:
    spec = make_graded_spec(model, tmp_path / model)
    spec["repeats"] = 1
    spec["mlflow"] = {"trackingUri": mlflow_server, "experiment": EXPERIMENT}
    spec["engine"]["mlflowTraces"] = traces
    spec["engine"]["mlflowRunName"] = f"{model}-eval"
    return asyncio.run(run_evaluation(parse_config(spec), reporter=JsonLinesReporter(every_s=60)))


def _text(dom: str) -> str:
    """The page's visible text, roughly: tags dropped, whitespace folded."""
    dom = re.sub(r"<(style|script)\b.*?</\1>", " ", dom, flags=re.DOTALL)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", dom))


def test_run_page_shows_decision_datasets_traces_and_gate_plot(
    mlflow_server: str, make_graded_spec: Any, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    baseline = _evaluate(make_graded_spec, tmp_path, mlflow_server, "plain-model", "none")
    candidate = _evaluate(make_graded_spec, tmp_path, mlflow_server, "better-model", SAMPLED)
    run_id, experiment_id = candidate.results.mlflow_run_id, candidate.results.mlflow_experiment_id
    assert run_id and experiment_id and baseline.results.mlflow_run_id
    policy = GatePolicy.model_validate(
        {
            "rules": [
                {"type": "minimum", "benchmark": "mt-bench", "threshold": 1},
                {"type": "nonInferiority", "benchmark": "mt-bench", "margin": 0.5},
                {"type": "maxErrorRate", "limit": 0.05},
            ]
        }
    )
    decision = evaluate_gates(policy, candidate.results, baseline.results, draws=500).model_dump(mode="json")
    assert decision["decision"] == "Passed"
    for _ in range(2):  # a retried record leaves one table and one plot
        record_decision(
            run_id,
            decision,
            baseline.results.mlflow_run_id,
            tracking_uri=mlflow_server,
            baseline="MLflow run",
        )

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    # The run spans the evaluation, not the seconds spent logging it.
    started_at = candidate.results.started_at
    assert started_at is not None
    assert run.info.start_time == int(started_at * 1000)
    duration_s = (run.info.end_time - run.info.start_time) / 1000
    assert duration_s == pytest.approx(candidate.results.wall_time_s, abs=0.01)
    # The datasets, with the digest the results carry.
    [dataset_input] = run.inputs.dataset_inputs
    digest = candidate.results.benchmarks["mt-bench"].dataset.digest  # type: ignore[union-attr]
    assert dataset_input.dataset.name == "mt-bench"
    assert digest.split(":")[-1].startswith(dataset_input.dataset.digest)
    assert {t.key: t.value for t in dataset_input.tags} == {"mlflow.data.context": "evaluation"}
    # The sample of traces, linked to the run, each with the judge's score and rationale.
    traces = client.search_traces(
        locations=[experiment_id], filter_string=f"metadata.`mlflow.sourceRun` = '{run_id}'"
    )
    assert len(traces) == SAMPLED
    for trace in traces:
        [feedback] = trace.info.assessments
        assert feedback.name == "judge-a" and isinstance(feedback.value, float) and feedback.rationale
        names = [span.name for span in trace.data.spans]
        assert "generation" in names and "judgment/judge-a" in names
        generation = next(s for s in trace.data.spans if s.name == "generation")
        assert generation.attributes["mlflow.chat.tokenUsage"]["output_tokens"] > 0
        assert generation.end_time_ns > generation.start_time_ns
    # The gate table (an MLflow table, written once) and its plot.
    paths = [a.path for a in client.list_artifacts(run_id)]
    assert paths.count(GATE_PLOT_ARTIFACT) == 1 and paths.count(GATE_TABLE_ARTIFACT) == 1
    table = json.loads(
        Path(client.download_artifacts(run_id, GATE_TABLE_ARTIFACT, str(tmp_path))).read_text()
    )
    assert len(table["data"]) == 3
    plot = Path(client.download_artifacts(run_id, GATE_PLOT_ARTIFACT, str(tmp_path)))
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert {"path": GATE_TABLE_ARTIFACT, "type": "table"} in json.loads(
        run.data.tags["mlflow.loggedArtifacts"]
    )

    # What the browser shows.
    url = mlflow_run_url(mlflow_server, experiment_id, run_id)
    assert url is not None
    page = _text(rendered(url, screenshot=tmp_path / "run-page.png"))
    (tmp_path / "run-page.txt").write_text(page)
    assert TAG_GATE_DECISION in page and "Passed" in page
    assert "mt-bench" in page  # the dataset input
    assert "Datasets" in page and "None" not in page.split("Datasets", 1)[1][:40]
    traces_page = _text(rendered(f"{url}/traces", screenshot=tmp_path / "run-traces.png"))
    (tmp_path / "run-traces.txt").write_text(traces_page)
    assert f"{SAMPLED} of {SAMPLED}" in traces_page  # the run's traces
    assert "judge-a" in traces_page and "AVG" in traces_page  # the assessment, averaged over them
    assert '"shinsa.question_id": "g' in traces_page  # a trace's request
    runs_page = _text(rendered(f"{mlflow_server}/#/experiments/{experiment_id}/evaluation-runs"))
    (tmp_path / "evaluation-runs.txt").write_text(runs_page)
    # The experiment's evaluation runs: the candidate's, with its dataset.
    assert "better-model-eval" in runs_page
    assert "Dataset" in runs_page and "mt-bench" in runs_page
    artifacts_page = _text(
        rendered(f"{url}/artifacts/{GATE_PLOT_ARTIFACT}", screenshot=tmp_path / "plot.png")
    )
    (tmp_path / "artifacts.txt").write_text(artifacts_page)
    assert GATE_PLOT_ARTIFACT in artifacts_page
