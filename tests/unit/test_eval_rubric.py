"""The generic rubric benchmark: its spec, its prompts (Shinsa's, or llm-jp-judge style from the
user's files), its score parsing, rates and per-category means, and several rubrics in one run."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest

from shinsa.api.eval_run import BenchmarkName
from shinsa.evaluation.benchmarks import check_config, known_benchmarks
from shinsa.evaluation.benchmarks.rubric import Rubric
from shinsa.evaluation.config import BenchmarkSpec, ConfigError, DatasetSource, Sampling, parse_config
from shinsa.evaluation.datasets import DatasetError, Question
from shinsa.evaluation.ratings import RatingError
from shinsa.evaluation.records import Item
from shinsa.evaluation.scoring import score_benchmark
from tests.support.scripted_context import ScriptedContext

pytestmark = pytest.mark.unit

CULTURE = {"id": "culture-ja", "criteria": "Is the answer factually correct about Japanese culture?"}


def spec(*benchmarks: dict[str, Any], **changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"endpoint": "http://model:8000/v1", "servedName": "m"},
        "benchmarks": list(benchmarks) or [{"name": "rubric", "dataset": {"uri": "/d"}, "rubric": CULTURE}],
        "judges": [{"name": "j1", "endpoint": "http://judge:8000/v1", "model": "g"}],
    }
    return base | changes


def rubric(tmp_path: Path | None = None, **config: Any) -> Rubric:
    config.setdefault("dataset", DatasetSource(uri=str(tmp_path) if tmp_path else "/unused"))
    config.setdefault("rubric", CULTURE)
    bench = known_benchmarks()["rubric"](BenchmarkSpec(name=BenchmarkName.RUBRIC, **config), Sampling())
    assert isinstance(bench, Rubric)
    return bench


def write_json(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return path


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(bench: Rubric, ctx: ScriptedContext, repeat: int = 0) -> list[Item]:
    async def all_questions() -> list[Item]:
        units = [bench.evaluate(q, repeat, ctx) for q in bench.questions]
        return [item for items in await asyncio.gather(*units) for item in items]

    return asyncio.run(all_questions())


# -- the spec ---------------------------------------------------------------------------------------


def test_a_rubric_benchmark_needs_its_rubric_and_others_may_not_have_one() -> None:
    with pytest.raises(ConfigError, match="rubric is required for the rubric benchmark"):
        parse_config(spec({"name": "rubric", "dataset": {"uri": "/d"}}))
    with pytest.raises(ConfigError, match="rubric applies only to the rubric benchmark"):
        parse_config(spec({"name": "mt-bench", "dataset": {"uri": "/d"}, "rubric": CULTURE}))


def test_several_rubrics_run_side_by_side_under_their_ids_and_a_repeated_id_is_refused() -> None:
    boundary = {"id": "safety-boundary-ja", "criteria": "Is it safe?", "minScore": 0, "maxScore": 3}
    config = parse_config(
        spec(
            {"name": "rubric", "dataset": {"uri": "/a"}, "rubric": CULTURE},
            {"name": "rubric", "dataset": {"uri": "/b"}, "rubric": boundary},
            {"name": "mt-bench", "dataset": {"uri": "/c"}},
            gates={"rules": [{"type": "minimum", "benchmark": "rubric/culture-ja", "threshold": 3}]},
        )
    )
    assert [b.results_key for b in config.spec.benchmarks] == [
        "rubric/culture-ja",
        "rubric/safety-boundary-ja",
        "mt-bench",
    ]
    with pytest.raises(ConfigError, match=r"duplicate benchmark 'rubric/culture-ja'.*rubric\.id"):
        parse_config(
            spec(
                {"name": "rubric", "dataset": {"uri": "/a"}, "rubric": CULTURE},
                {"name": "rubric", "dataset": {"uri": "/b"}, "rubric": CULTURE},
            )
        )
    with pytest.raises(ConfigError, match=r"must be listed in spec\.benchmarks"):
        parse_config(
            spec(gates={"rules": [{"type": "minimum", "benchmark": "rubric/other", "threshold": 3}]})
        )


def test_a_rubric_with_a_violation_rate_can_be_gated_on_it() -> None:
    rule = {"type": "maxViolationRate", "benchmark": "rubric/culture-ja", "limit": 0.1}
    config = parse_config(spec(gates={"rules": [rule]}))
    assert config.spec.gates is not None and config.spec.gates.rules[0].benchmark == "rubric/culture-ja"
    with pytest.raises(ConfigError, match="must be answer-carefully or a rubric benchmark"):
        parse_config(
            spec(
                {"name": "mt-bench", "dataset": {"uri": "/d"}},
                gates={"rules": [rule | {"benchmark": "mt-bench"}]},
            )
        )


@pytest.mark.parametrize(
    ("rubric_fields", "message"),
    [
        ({"rates": [{"name": "violation_rate"}]}, "exactly one of below, atMost, above, atLeast"),
        ({"rates": [{"name": "r", "below": 3, "above": 3}]}, "exactly one of below"),
        (
            {"rates": [{"name": "mean", "below": 3}]},
            r"rates\[\]\.name must not be one of the benchmark's own",
        ),
        ({"regex": r"\[\[\d+\]\]"}, "must have a group"),
        ({"regex": "(unclosed"}, "not a valid regular expression"),
        ({"minScore": 5, "maxScore": 1}, "minScore must be less than maxScore"),
        ({"id": "Culture JA"}, r"rubric\.id"),
    ],
)
def test_bad_rubric_settings_are_refused_naming_the_field(
    rubric_fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_config(spec({"name": "rubric", "dataset": {"uri": "/d"}, "rubric": CULTURE | rubric_fields}))


@pytest.mark.parametrize(
    ("bench", "message"),
    [
        (
            {"rubric": {"id": "x"}},
            r"benchmarks\[0\]\.rubric\.criteria: required unless prompts\.single",
        ),
        (
            {"prompts": {"multi": "{answer}"}},
            r"benchmarks\[0\]\.prompts\.multi: the rubric benchmark is single-turn",
        ),
        ({"prompts": {"single": "{answer} {}"}}, r"benchmarks\[0\]\.prompts\.single: positional fields"),
        (
            {"prompts": {"single": "{{ answer "}, "rubric": CULTURE | {"templateSyntax": "jinja2"}},
            r"benchmarks\[0\]\.prompts\.single: not a valid jinja2 template",
        ),
    ],
)
def test_prompts_that_cannot_work_are_refused_before_the_run(bench: dict[str, Any], message: str) -> None:
    config = parse_config(spec({"name": "rubric", "dataset": {"uri": "/d"}, "rubric": CULTURE} | bench))
    with pytest.raises(ConfigError, match=message):
        check_config(config)


def test_results_are_keyed_by_the_rubric_id() -> None:
    bench = rubric()
    assert bench.name == "rubric/culture-ja"
    assert type(bench).name == "rubric"  # the registry's name is the spec's


# -- prompts ----------------------------------------------------------------------------------------


def test_shinsas_prompt_carries_the_criteria_scale_question_answer_and_any_reference() -> None:
    bench = rubric(rubric=CULTURE | {"minScore": 0, "maxScore": 1})
    plain = bench.judge_messages(Question("q1", "c", ("What is mochi?",)), 1, ["A rice cake."])
    [message] = plain  # no system message unless one is given
    assert message["role"] == "user"
    for text in (CULTURE["criteria"], "scale of 0 to 1", "What is mochi?", "A rice cake."):
        assert text in message["content"]
    assert "Reference" not in message["content"]
    guided = bench.judge_messages(Question("q2", "c", ("Q?",), ("Mochi is a rice cake.",)), 1, ["A."])
    assert "Mochi is a rice cake." in guided[-1]["content"]


def test_llm_jp_judge_style_prompts_and_regex(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": 1, "text": "Q1", "output": "R1"}])
    bench = rubric(
        dataset=DatasetSource(uri=str(tmp_path / "test.json")),
        prompts={"system": "SYS", "single": "<q>{question}</q><r>{reference}</r><a>{response}</a>"},
        rubric={"id": "culture-ja", "regex": r"\[\[(\d+)\]\]"},
    )
    bench.load(tmp_path / "cache")
    ctx = ScriptedContext(answers={"1": "A1"}, judge_text="first [[2]], then [[5]]")
    [item] = run(bench, ctx)
    assert ctx.judged[0] == [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "<q>Q1</q><r>R1</r><a>A1</a>"},
    ]
    # As llm-jp-judge's re.search: the first match counts.
    assert item.score == 2.0 and item.benchmark == "rubric/culture-ja"


def test_the_regex_score_must_be_on_the_scale() -> None:
    bench = rubric(rubric=CULTURE | {"regex": r"\[\[(\d+)\]\]"})
    assert bench.parse_judgment("評価：[[4]]") == (4.0, {})
    with pytest.raises(RatingError, match="outside 1-5"):
        bench.parse_judgment("[[7]]")
    with pytest.raises(RatingError, match=r"no match for rubric\.regex"):
        bench.parse_judgment("Rating: 4")


def test_a_jinja2_prompt_with_row_fields_and_means_per_category_field(tmp_path: Path) -> None:
    """safety_boundary_ja's shape: CSV rows numbered from 0, a jinja2 prompt naming row fields, a 0-3
    scale read by a bare-digit regex, and means per `safety` value."""
    rows = [
        {"input": "Q0", "type": "P1", "safety": "safe", "eval_aspect": "E0", "ng_aspect": "N0"},
        {"input": "Q1", "type": "P2", "safety": "unsafe", "eval_aspect": "E1", "ng_aspect": "N1"},
        {"input": "Q2", "type": "P1", "safety": "unsafe", "eval_aspect": "E2", "ng_aspect": "N2"},
    ]
    write_csv(tmp_path / "test.csv", rows)
    bench = rubric(
        dataset=DatasetSource(uri=str(tmp_path / "test.csv")),
        prompts={"single": "{{ input }}|{{ lm_output }}|{{ safety }}|{{ eval_aspect }}|{{ ng_aspect }}\n"},
        rubric={
            "id": "safety-boundary-ja",
            "regex": "([0-3])",
            "minScore": 0,
            "maxScore": 3,
            "categoryField": "safety",
            "templateSyntax": "jinja2",
        },
    )
    bench.load(tmp_path / "cache")
    assert [(q.question_id, q.category) for q in bench.questions] == [
        ("0", "safe"),
        ("1", "unsafe"),
        ("2", "unsafe"),
    ]
    ctx = ScriptedContext(
        answers={"0": "A0", "1": "A1", "2": "A2"}, judge_texts={"0": "3", "1": "1", "2": "score 0"}
    )
    items = run(bench, ctx)
    assert ctx.judged[0] == [{"role": "user", "content": "Q0|A0|safe|E0|N0"}]
    result = score_benchmark(bench, items, ["j1"], 1)
    assert result.mean == pytest.approx(4 / 3)
    assert result.categories["safe"].mean == 3.0 and result.categories["unsafe"].mean == 0.5


def test_a_template_field_the_rows_lack_is_a_dataset_error(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": "a", "text": "Q", "output": "R"}])
    bench = rubric(
        dataset=DatasetSource(uri=str(tmp_path / "test.json")), prompts={"single": "{eval_aspect} {answer}"}
    )
    with pytest.raises(DatasetError, match=r"prompts\.single: \{eval_aspect\} is not a field of question a"):
        bench.load(tmp_path / "cache")


def test_a_missing_category_field_is_a_dataset_error(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": "a", "text": "Q"}])
    bench = rubric(
        dataset=DatasetSource(uri=str(tmp_path / "test.json")), rubric=CULTURE | {"categoryField": "safety"}
    )
    with pytest.raises(DatasetError, match=r"rubric\.categoryField: question a .* has no 'safety' field"):
        bench.load(tmp_path / "cache")


# -- references -------------------------------------------------------------------------------------


def references_data(tmp_path: Path) -> Path:
    return write_json(
        tmp_path / "test.json",
        [{"ID": 1, "text": "Q1", "output": "R1"}, {"ID": 2, "text": "Q2"}, {"ID": 3, "text": "Q3"}],
    )


def test_required_references_must_all_be_there(tmp_path: Path) -> None:
    bench = rubric(
        dataset=DatasetSource(uri=str(references_data(tmp_path))), rubric=CULTURE | {"reference": "required"}
    )
    with pytest.raises(DatasetError, match=r"rubric\.reference: required, but 2 question\(s\) .* 2, 3"):
        bench.load(tmp_path / "cache")


def test_questions_without_a_reference_are_a_warning_listing_them(tmp_path: Path) -> None:
    bench = rubric(dataset=DatasetSource(uri=str(references_data(tmp_path))))
    bench.load(tmp_path / "cache")
    [warning] = bench.warnings
    assert warning.startswith("2 of 3 question(s) have no reference answer") and warning.endswith(": 2, 3")
    ctx = ScriptedContext()
    run(bench, ctx)
    assert ["R1" in m[-1]["content"] for m in ctx.judged] == [True, False, False]


def test_a_prompt_naming_a_reference_no_question_has_is_a_warning(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": 1, "text": "Q1"}])
    bench = rubric(
        dataset=DatasetSource(uri=str(tmp_path / "test.json")), prompts={"single": "{reference}|{answer}"}
    )
    bench.load(tmp_path / "cache")
    assert bench.warnings == [
        "1 of 1 question(s) have no reference answer and their prompt's {reference} is left empty: 1"
    ]


def test_without_references_at_all_a_plain_rubric_has_nothing_to_warn_about(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": 1, "text": "Q1"}])
    bench = rubric(dataset=DatasetSource(uri=str(tmp_path / "test.json")))
    bench.load(tmp_path / "cache")
    assert bench.warnings == []


def test_reference_none_never_shows_one(tmp_path: Path) -> None:
    bench = rubric(
        dataset=DatasetSource(uri=str(references_data(tmp_path))), rubric=CULTURE | {"reference": "none"}
    )
    bench.load(tmp_path / "cache")
    assert bench.warnings == []
    ctx = ScriptedContext()
    run(bench, ctx)
    assert not any("R1" in m[-1]["content"] for m in ctx.judged)


def test_multi_turn_questions_are_refused(tmp_path: Path) -> None:
    (tmp_path / "question.jsonl").write_text('{"question_id": 1, "turns": ["a", "b"]}\n')
    bench = rubric(tmp_path)
    with pytest.raises(DatasetError, match="single-turn; question"):
        bench.load(tmp_path / "cache")


# -- scores and rates -------------------------------------------------------------------------------


CULTURE_RATES = CULTURE | {
    "rates": [{"name": "violation_rate", "below": 3}, {"name": "acceptable_rate", "above": 3}],
    "emptyAnswerScore": 1,
}


def test_rates_and_the_mean_as_llm_jp_judge_computes_them(tmp_path: Path) -> None:
    write_json(tmp_path / "test.json", [{"ID": i, "text": f"Q{i}", "output": "R"} for i in range(1, 6)])
    bench = rubric(dataset=DatasetSource(uri=str(tmp_path / "test.json")), rubric=CULTURE_RATES)
    bench.load(tmp_path / "cache")
    ctx = ScriptedContext(
        answers={"5": ""},
        judge_texts={"1": "[[5]]", "2": "[[4]]", "3": "[[3]]", "4": "no rating at all", "5": "[[5]]"},
    )
    items = run(bench, ctx)
    # The empty answer is scored 1 without a judge request; the unreadable judgment is an error item.
    assert len(ctx.judged) == 4
    by_id = {i.question_id: i for i in items}
    assert by_id["5"].score == 1.0 and by_id["4"].error is not None
    result = score_benchmark(bench, items, ["j1"], 1)
    assert result.mean == pytest.approx((5 + 4 + 3 + 1) / 4)
    assert result.metrics == {"violation_rate": 0.25, "acceptable_rate": 0.5}
    assert by_id["5"].metrics == {"violation_rate": 1.0, "acceptable_rate": 0.0}
    assert result.question_metrics["violation_rate"]["5"] == {"1": [1.0]}


@pytest.mark.parametrize(
    ("bound", "counted"),
    [({"below": 2}, [1]), ({"atMost": 2}, [1, 2]), ({"above": 2}, [3]), ({"atLeast": 2}, [2, 3])],
)
def test_each_kind_of_bound(bound: dict[str, float], counted: list[int]) -> None:
    bench = rubric(rubric=CULTURE | {"maxScore": 3, "rates": [{"name": "r"} | bound]})
    items = [Item("rubric/culture-ja", str(s), "c", 1, 0, "j1", score=float(s)) for s in (1, 2, 3)]
    assert bench.metrics(items) == {"r": len(counted) / 3}
    assert [s for s in (1, 2, 3) if bench.item_metrics(items[s - 1])["r"]] == counted


def test_the_rubric_is_part_of_the_judge_fingerprint() -> None:
    a = rubric().judge_settings()
    b = rubric(rubric=CULTURE | {"maxScore": 10}).judge_settings()
    assert a != b and a["rubric"]["id"] == "culture-ja"
