"""Parity with llm-jp-judge v2.0.0 (commit 4392b3b): the same answers, prompt files and judge replies
give Shinsa's `profile: llm-jp-judge` run the numbers the real llm-jp-judge reported.

Each fixture set's expected.json (tests/fixtures/llm_jp_judge/ and its edges/) was recorded from
llm-jp-judge itself against the same scripted judge (tools/llm_jp_judge/record.py, run by hand).
The main set's judge replies hold first-of-two ratings, out-of-range and malformed replies asked
again, replies never readable in 4 attempts, content-filter 400s (once, and at every attempt) and
failed generations; the edge set holds unreadable replies and 400s mixed in one judgment, a
refusal answered at the 4th attempt, a rating of 0 on the safety scale, and conversations whose
every answer failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from shinsa.commands.eval import run_command
from shinsa.evaluation.config import Phase, parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import ExitCode, RunStatus, read_results
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.llm_jp_judge import (
    EDGES,
    FIXTURES,
    differences,
    expected,
    judge_requests,
    parity_spec,
    scripted_judge,
    shinsa_tables,
)

pytestmark = pytest.mark.e2e

TOLERANCE = 1e-9
# llm-jp-judge sends `frequency_penalty: 0.0` with quality_ja / safety_ja judge requests
# (config/benchmark/evaluate.yaml); Shinsa's sampling has no frequency penalty and sends none.
# 0.0 is the API's default, so the two requests ask the same.
_DEFAULTS_UNSENT = {"frequency_penalty": 0.0}


@dataclass
class Judged:
    root: Path
    result: RunResult
    output_dir: Path
    requests: dict[str, dict[str, Any]]

    def tables(self) -> dict[str, dict[str, float]]:
        return shinsa_tables(self.result.results, self.output_dir)

    def recorded(self) -> dict[str, Any]:
        return expected(self.root)


@pytest.fixture(scope="module", params=[FIXTURES, EDGES], ids=["main", "edges"])
def judged(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judged]:
    root: Path = request.param
    out = tmp_path_factory.mktemp(f"llm-jp-judge-parity-{root.name}")
    with scripted_judge(root) as double:
        config = parse_config(parity_spec(double, out, root), phase=Phase.JUDGE)
        result = asyncio.run(
            run_evaluation(config, phase=Phase.JUDGE, reporter=JsonLinesReporter(every_s=60))
        )
        yield Judged(root, result, out, judge_requests(double))


def _scores(tables: dict[str, Any], prefix: str) -> dict[str, dict[str, float]]:
    """score_table's metrics of one benchmark (`prefix`: its llm-jp-judge name), as a table."""
    return {"score_table": {k: v for k, v in tables["score_table"].items() if k.startswith(prefix)}}


def test_the_run_finishes_judging_only_the_given_answers(judged: Judged) -> None:
    assert judged.result.status is RunStatus.SUCCEEDED
    assert judged.result.results.requests.get("model", 0) == 0
    assert judged.result.results.model.answers_model == "parity-fixture-model"  # answers/metadata.json


def test_mt_bench_scores_equal_llm_jp_judge(judged: Judged) -> None:
    """MT-Bench JA / EN: the score (every turn's judgment pooled), per turn and per category."""
    recorded, ours = judged.recorded(), judged.tables()
    names = [n for n in ("mt_bench_ja", "mt_bench_en") if n in recorded["score_table"]]
    assert names
    for name in names:
        tables = [f"{name}_turn_score_table", f"{name}_category_score_table"]
        theirs = {**_scores(recorded, name), **{t: recorded[t] for t in tables}}
        mine = {**_scores(ours, name), **{t: ours[t] for t in tables}}
        assert differences(theirs, mine, TOLERANCE) == []


def test_quality_per_criterion_means_equal_llm_jp_judge(judged: Judged) -> None:
    recorded = _scores(judged.recorded(), "quality_ja:")
    assert len(recorded["score_table"]) == 5
    assert differences(recorded, _scores(judged.tables(), "quality_ja:"), TOLERANCE) == []


def test_safety_score_and_rates_equal_llm_jp_judge(judged: Judged) -> None:
    recorded = _scores(judged.recorded(), "safety_ja:")
    assert len(recorded["score_table"]) == 3
    assert differences(recorded, _scores(judged.tables(), "safety_ja:"), TOLERANCE) == []


def test_pattern_match_error_rates_equal_llm_jp_judge(judged: Judged) -> None:
    """`<benchmark>:pattern_match(%)`: the judgments left without a rating, API refusals included."""
    recorded = judged.recorded()["evaluate_error_rate_table"]
    ours = judged.tables()["evaluate_error_rate_table"]
    keep = [k for k in recorded if k.endswith(":pattern_match(%)")]
    assert (
        differences(
            {"errors": {k: recorded[k] for k in keep}}, {"errors": {k: ours[k] for k in keep}}, TOLERANCE
        )
        == []
    )


def test_api_error_rates_equal_llm_jp_judge(judged: Judged) -> None:
    """`<benchmark>:api(%)`: judgments refused at every attempt, never replied to."""
    recorded = judged.recorded()["evaluate_error_rate_table"]
    ours = judged.tables()["evaluate_error_rate_table"]
    keep = [k for k in recorded if k.endswith(":api(%)")]
    assert (
        differences(
            {"errors": {k: recorded[k] for k in keep}}, {"errors": {k: ours[k] for k in keep}}, TOLERANCE
        )
        == []
    )


def test_the_judge_is_asked_the_same_prompts_as_often_with_the_same_sampling(judged: Judged) -> None:
    recorded = judged.recorded()["judge_requests"]
    assert judged.requests.keys() == recorded.keys()
    for marker, theirs in recorded.items():
        ours = judged.requests[marker]
        assert (ours["attempts"], ours["messages"], {**_DEFAULTS_UNSENT, **ours["params"]}) == (
            theirs["attempts"],
            theirs["messages"],
            {**_DEFAULTS_UNSENT, **theirs["params"]},
        ), marker


def test_the_cli_judge_phase_gives_llm_jp_judge_s_score_table(tmp_path: Path) -> None:
    """`shinsa eval run --phase judge` on an EvalRun manifest, as a user coming from llm-jp-judge runs it."""
    with scripted_judge() as double:
        spec = parity_spec(double, tmp_path / "unused")
        spec.pop("engine")
        manifest = {"apiVersion": "shinsa.dev/v1alpha1", "kind": "EvalRun", "metadata": {"name": "parity"}}
        path = tmp_path / "evalrun.yaml"
        path.write_text(yaml.safe_dump({**manifest, "spec": spec}, allow_unicode=True), encoding="utf-8")
        assert run_command(path, tmp_path / "out", False, True, phase=Phase.JUDGE) == ExitCode.OK
    ours = shinsa_tables(read_results(tmp_path / "out"), tmp_path / "out")
    assert differences({"score_table": expected()["score_table"]}, ours, TOLERANCE) == []
