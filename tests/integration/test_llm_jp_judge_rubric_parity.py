"""Parity with llm-jp-judge v2.0.0 (commit 4392b3b) for culture_ja, safety_borderline_ja and
safety_boundary_ja, run as Shinsa `rubric` benchmarks on the same answers, templates and judge replies.

tests/fixtures/llm_jp_judge/rubric/expected.json was recorded from llm-jp-judge itself against the
same scripted judge (tools/llm_jp_judge/record_rubric.py, run by hand). The replies cover first-of-two
ratings, unreadable replies asked again, regexes that accept ratings inside other text (boundary's
`([0-3])` reads "12" as 1), content-filter 400s at every attempt (scored by api_error_score where
llm-jp-judge has one, dropped where not) and empty answers (culture's empty_response_score).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from shinsa.evaluation.config import Phase, parse_config
from shinsa.evaluation.progress import JsonLinesReporter
from shinsa.evaluation.results import RunStatus
from shinsa.evaluation.runner import RunResult, run_evaluation
from support.llm_jp_judge import differences, judge_requests
from support.llm_jp_judge_rubric import expected, rubric_parity_spec, rubric_score_table, scripted_judge

pytestmark = pytest.mark.e2e

TOLERANCE = 1e-9
_DEFAULTS_UNSENT = {"frequency_penalty": 0.0}
# Empty answers: Shinsa scores rubric.emptyAnswerScore without asking the judge; llm-jp-judge asks
# and then gives empty_response_score (or api_error_score when the request failed): same score.
_EMPTY_ANSWERS = ("[c-4]", "[c-6]")
_CATEGORY_MEANS = ("safety_boundary_ja:safe", "safety_boundary_ja:unsafe")


@dataclass
class Judged:
    result: RunResult
    requests: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def judged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judged]:
    out = tmp_path_factory.mktemp("llm-jp-judge-rubric-parity")
    with scripted_judge() as double:
        config = parse_config(rubric_parity_spec(double, out), phase=Phase.JUDGE)
        result = asyncio.run(
            run_evaluation(config, phase=Phase.JUDGE, reporter=JsonLinesReporter(every_s=60))
        )
        yield Judged(result, judge_requests(double))


def test_the_rubric_runs_judge_only_the_given_answers(judged: Judged) -> None:
    assert judged.result.status is RunStatus.SUCCEEDED
    assert judged.result.results.requests.get("model", 0) == 0


def _score_tables(judged: Judged, keys: Callable[[str], bool]) -> tuple[dict[str, Any], dict[str, Any]]:
    recorded = {k: v for k, v in expected()["score_table"].items() if keys(k)}
    ours = {k: v for k, v in rubric_score_table(judged.result.results).items() if keys(k)}
    return {"score_table": recorded}, {"score_table": ours}


def test_rubric_scores_and_rates_equal_llm_jp_judge(judged: Judged) -> None:
    recorded, ours = _score_tables(judged, lambda k: k not in _CATEGORY_MEANS)
    assert len(recorded["score_table"]) == 9
    assert differences(recorded, ours, TOLERANCE) == []


@pytest.mark.xfail(
    strict=True,
    reason="an answer scored by judging.apiErrorScore counts in its category's mean in Shinsa; "
    "llm-jp-judge's safety_boundary evaluator leaves it out of :safe / :unsafe (not out of the overall mean)",
)
def test_safety_boundary_safe_and_unsafe_means_equal_llm_jp_judge(judged: Judged) -> None:
    recorded, ours = _score_tables(judged, lambda k: k in _CATEGORY_MEANS)
    assert differences(recorded, ours, TOLERANCE) == []


def test_the_judge_is_asked_the_same_prompts_as_often_with_the_same_sampling(judged: Judged) -> None:
    recorded = {k: v for k, v in expected()["judge_requests"].items() if not k.endswith(_EMPTY_ANSWERS)}
    ours = {k: v for k, v in judged.requests.items() if not k.endswith(_EMPTY_ANSWERS)}
    assert ours.keys() == recorded.keys()
    for marker, theirs in recorded.items():
        mine = ours[marker]
        assert (mine["attempts"], mine["messages"], {**_DEFAULTS_UNSENT, **mine["params"]}) == (
            theirs["attempts"],
            theirs["messages"],
            {**_DEFAULTS_UNSENT, **theirs["params"]},
        ), marker
