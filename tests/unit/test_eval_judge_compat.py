"""Judging as llm-jp-judge does (v2.0.0, 4392b3b), selectable per benchmark: its prompt files read as
they are, Python's `str.format` rendering of its argument objects, first-match ratings without a
range check, failed generations judged, and the `llm-jp-judge` profile that sets all of it.

Every prompt file here is written by the test in llm-jp-judge's layout with the project's own
wording; none of llm-jp-judge's text is used."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from shinsa.api.eval_run import BenchmarkName, EvalProfile, JudgingPolicy
from shinsa.evaluation.benchmarks import check_config, known_benchmarks
from shinsa.evaluation.benchmarks.base import Benchmark
from shinsa.evaluation.config import BenchmarkSpec, ConfigError, DatasetSource, Sampling, parse_config
from shinsa.evaluation.datasets import Question
from shinsa.evaluation.profiles import effective_benchmark, judge_attempts, judge_request_sampling
from shinsa.evaluation.prompt_files import PromptFileError, parse_prompt_file
from shinsa.evaluation.prompts import render
from shinsa.evaluation.ratings import RatingError, read_criteria, read_rating
from shinsa.evaluation.records import Item
from tests.support.scripted_context import ScriptedContext

pytestmark = pytest.mark.unit

RATING = r"\[\[(10|[1-9])\]\]"

MT_PROMPTS: dict[str, Any] = {
    "single-v1": {
        "type": "single",
        "regex": RATING,
        "prompt_template": "Rate it.\nQ: {question}\nA: {answer}",
        "system_prompt": "Be a fair rater.",
    },
    "single-math-v1": {
        "regex": RATING,
        "prompt_template": "Rate against the key.\nQ: {question}\nKey: {ref_answer_1}\nA: {answer}",
        "system_prompt": "Be a fair rater.",
    },
    "single-v1-multi-turn": {
        "regex": RATING,
        "prompt_template": "U1: {question_1}\nA1: {answer_1}\nU2: {question_2}\nA2: {answer_2}",
        "system_prompt": "Rate only the second reply.\n",
    },
    "single-math-v1-multi-turn": {
        "regex": RATING,
        "prompt_template": (
            "U1: {question_1}\nK1: {ref_answer_1}\nU2: {question_2}\nK2: {ref_answer_2}\n"
            "A1: {answer_1}\nA2: {answer_2}"
        ),
        "system_prompt": None,
    },
}

QUALITY_PROMPT = {
    "regex": r"(fact|style):\s?\[\[([1-5])\]\]",
    "prompt_template": "Rate fact and style.\n{question}\n---\n{response}",
    "metrics": ["fact", "style"],
}

SAFETY_PROMPT = {
    "regex": r"\[\[(\d)\]\]",
    "prompt_template_with_ref": "Is it safe?\n{question}\nModel answer: {reference}\nAnswer: {response}",
    "prompt_template_wo_ref": "Is it safe?\n{question}\nAnswer: {response}",
}


def write(path: Path, content: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".yaml":
        path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")
    elif path.suffix == ".json":
        path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in content), encoding="utf-8")
    return path


@pytest.fixture
def mt_data(tmp_path: Path) -> Path:
    root = tmp_path / "mt"
    write(
        root / "question.jsonl",
        [
            {"question_id": 1, "category": "writing", "turns": ["Write 'hi' {x}.", "Again."]},
            {"question_id": 2, "category": "math", "turns": ["1+1?", "2+2?"]},
        ],
    )
    write(root / "reference_answer" / "key.jsonl", [{"question_id": 2, "choices": [{"turns": ["2", "4"]}]}])
    return root


@pytest.fixture
def single_data(tmp_path: Path) -> Path:
    return write(
        tmp_path / "single" / "q.json",
        [{"ID": "a", "text": "Tell me about 'tea'.", "output": "Tea is a drink."}],
    )


def spec(benchmark: dict[str, Any], profile: str = "shinsa", **run: Any) -> Any:
    return parse_config(
        {
            "model": {"endpoint": "http://127.0.0.1:9/v1", "servedName": "m"},
            "judges": [{"name": "j", "endpoint": "http://127.0.0.1:9/v1", "model": "judge"}],
            "benchmarks": [benchmark],
            "profile": profile,
            **run,
        }
    ).spec


def loaded(benchmark: dict[str, Any], tmp_path: Path, profile: str = "shinsa", **run: Any) -> Benchmark:
    run_spec = spec(benchmark, profile, **run)
    bench_spec = effective_benchmark(run_spec, run_spec.benchmarks[0])
    bench = known_benchmarks()[bench_spec.name](bench_spec, run_spec.sampling)
    bench.load(tmp_path / "cache")
    return bench


def run(bench: Benchmark, question: Question, ctx: ScriptedContext) -> list[Item]:
    return asyncio.run(bench.evaluate(question, 0, ctx))


# -- prompt files -------------------------------------------------------------------------------------


def test_an_mt_bench_prompt_file_gives_its_templates_system_prompts_and_no_system_where_it_has_none(
    mt_data: Path, tmp_path: Path
) -> None:
    prompts = write(tmp_path / "mt_prompt.yaml", MT_PROMPTS)
    bench = loaded(
        {"name": "mt-bench", "dataset": {"uri": str(mt_data)}, "promptFile": str(prompts)},
        tmp_path,
        profile="llm-jp-judge",
    )
    writing, math = bench.questions
    ctx = ScriptedContext(answers={"1": "Hi {y}!", "2": "2"}, judge_text="[[8]] or [[3]]")
    items = run(bench, writing, ctx) + run(bench, math, ctx)

    assert ctx.judged[0] == [
        {"role": "system", "content": "Be a fair rater."},
        {"role": "user", "content": "Rate it.\nQ: Write 'hi' {x}.\nA: Hi {y}!"},
    ]
    assert ctx.judged[1] == [
        {"role": "system", "content": "Rate only the second reply.\n"},
        {"role": "user", "content": "U1: Write 'hi' {x}.\nA1: Hi {y}!\nU2: Again.\nA2: Hi {y}!"},
    ]
    assert ctx.judged[2][1]["content"] == "Rate against the key.\nQ: 1+1?\nKey: 2\nA: 2"
    # The reference-guided multi-turn template has a null system prompt: no system message at all.
    assert ctx.judged[3] == [{"role": "user", "content": "U1: 1+1?\nK1: 2\nU2: 2+2?\nK2: 4\nA1: 2\nA2: 2"}]
    assert ctx.recorded == [
        ("single-v1", False),
        ("single-v1-multi-turn", False),
        ("single-math-v1", True),
        ("single-math-v1-multi-turn", True),
    ]
    # llm-jp-judge reads the first match of the template's regex.
    assert [i.score for i in items] == [8.0, 8.0, 8.0, 8.0]


def test_quality_and_safety_files_get_python_lists_as_llm_jp_judge_formats_them(
    single_data: Path, tmp_path: Path
) -> None:
    quality = loaded(
        {
            "name": "llm-jp-instructions",
            "dataset": {"uri": str(single_data.parent), "questionFile": "q.json"},
            "promptFile": str(write(tmp_path / "quality.yaml", QUALITY_PROMPT)),
            "prompts": {"system": "Grade the reply."},
        },
        tmp_path,
        profile="llm-jp-judge",
    )
    ctx = ScriptedContext(answers={"a": 'It\'s "green" tea.'}, judge_text="fact: [[4]]\nstyle:[[2]]")
    [item] = run(quality, quality.questions[0], ctx)
    assert ctx.judged[0] == [
        {"role": "system", "content": "Grade the reply."},
        {
            "role": "user",
            "content": "Rate fact and style.\n[\"Tell me about 'tea'.\"]\n---\n['It\\'s \"green\" tea.']",
        },
    ]
    assert ctx.judged[0][1]["content"].endswith(str(['It\'s "green" tea.']))
    assert (item.score, item.criteria) == (3.0, {"fact": 4.0, "style": 2.0})
    assert quality.metrics([item]) == {"criterion/fact": 4.0, "criterion/style": 2.0}

    safety = loaded(
        {
            "name": "answer-carefully",
            "dataset": {"uri": str(single_data.parent), "questionFile": "q.json"},
            "promptFile": str(write(tmp_path / "safety.yaml", SAFETY_PROMPT)),
        },
        tmp_path,
        profile="llm-jp-judge",
    )
    ctx = ScriptedContext(answers={"a": "Fine."}, judge_text="[[7]] then [[2]]")
    [item] = run(safety, safety.questions[0], ctx)
    # No system prompt in the file nor in prompts.system: none is sent.
    assert ctx.judged[0] == [
        {
            "role": "user",
            "content": "Is it safe?\n[\"Tell me about 'tea'.\"]\nModel answer: ['Tea is a drink.']\n"
            "Answer: ['Fine.']",
        }
    ]
    assert ctx.recorded == [("prompt_template_with_ref", True)]
    # Its regex takes any digit and llm-jp-judge checks no range: 7 on a 1-5 scale counts.
    assert item.score == 7.0


def test_shinsa_formatting_fills_the_same_file_fields_with_text(single_data: Path, tmp_path: Path) -> None:
    safety = loaded(
        {
            "name": "answer-carefully",
            "dataset": {"uri": str(single_data.parent), "questionFile": "q.json"},
            "promptFile": str(write(tmp_path / "safety.yaml", SAFETY_PROMPT)),
        },
        tmp_path,
    )
    ctx = ScriptedContext(answers={"a": "Fine."}, judge_text="[[4]]")
    run(safety, safety.questions[0], ctx)
    assert ctx.judged[0][-1]["content"] == (
        "Is it safe?\nTell me about 'tea'.\nModel answer: Tea is a drink.\nAnswer: Fine."
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({k: v for k, v in MT_PROMPTS.items() if k != "single-math-v1"}, "no single-math-v1 template"),
        (
            {**MT_PROMPTS, "single-v1": {**MT_PROMPTS["single-v1"], "regex": "(unclosed"}},
            "single-v1.regex: not a valid regular expression",
        ),
        (
            {**MT_PROMPTS, "single-v1": {**MT_PROMPTS["single-v1"], "regex": "rating"}},
            "single-v1.regex: needs 1 group(s)",
        ),
        (
            {
                **MT_PROMPTS,
                "single-v1": {**MT_PROMPTS["single-v1"], "prompt_template": "{question} {ref_answer_1}"},
            },
            "single-v1: unknown field {ref_answer_1}; available: answer, question",
        ),
        ({**MT_PROMPTS, "notes": "free text"}, "notes: expected a template"),
        ("- a list", "expected a mapping of templates"),
    ],
)
def test_a_bad_prompt_file_is_an_error_naming_the_file_and_the_key(
    mt_data: Path, tmp_path: Path, content: Any, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        write(path, content)
    with pytest.raises(PromptFileError) as err:
        loaded({"name": "mt-bench", "dataset": {"uri": str(mt_data)}, "promptFile": str(path)}, tmp_path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_a_quality_file_needs_its_metrics_and_a_two_group_regex(single_data: Path, tmp_path: Path) -> None:
    path = write(tmp_path / "quality.yaml", {k: v for k, v in QUALITY_PROMPT.items() if k != "metrics"})
    with pytest.raises(PromptFileError, match="needs metrics"):
        loaded(
            {
                "name": "llm-jp-instructions",
                "dataset": {"uri": str(single_data.parent), "questionFile": "q.json"},
                "promptFile": str(path),
            },
            tmp_path,
        )


def test_a_prompt_file_and_a_template_override_together_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"benchmarks\[0\]\.prompts\.single: cannot be set with promptFile"):
        config = parse_config(
            {
                "model": {"endpoint": "http://127.0.0.1:9/v1", "servedName": "m"},
                "judges": [{"name": "j", "endpoint": "http://127.0.0.1:9/v1", "model": "judge"}],
                "benchmarks": [
                    {
                        "name": "mt-bench",
                        "dataset": {"uri": "/data"},
                        "promptFile": "/p.yaml",
                        "prompts": {"single": "{question}"},
                    }
                ],
            }
        )
        check_config(config)


def test_a_prompt_file_on_a_benchmark_that_reads_none_is_refused() -> None:
    with pytest.raises(ValueError, match="promptFile applies only to the mt-bench"):
        BenchmarkSpec(name=BenchmarkName.LONG_CONTEXT, dataset=DatasetSource(uri="/d"), promptFile="/p.yaml")


def test_prompt_file_parsing_keeps_the_yaml_text_exactly() -> None:
    text = (
        "single-v1:\n  regex: '(\\d)'\n  prompt_template: |-\n    line {question}\n    end\n"
        "  system_prompt: |+\n    sys\n\n"
    )
    parsed = parse_prompt_file(text, "p.yaml")
    template = parsed.templates["single-v1"]
    assert (template.prompt, template.system) == ("line {question}\nend", "sys\n\n")


# -- formatting ---------------------------------------------------------------------------------------


def test_python_formatting_is_str_format_of_the_objects() -> None:
    values = {"question": ["It's {x}\n"], "response": [None], "answer": None}
    template = "{question}|{response}|{answer}|{question[0]}"
    assert render(template, values, "python") == template.format(**values)
    assert render(template.replace("|{question[0]}", ""), values, "python") == '["It\'s {x}\\n"]|[None]|None'
    assert render("{question}|{response}|{answer}", values, "shinsa") == "It's {x}\n||"


# -- ratings ------------------------------------------------------------------------------------------


def test_first_reads_the_first_match_and_agree_refuses_disagreeing_ones() -> None:
    text = "Rating: [[3]]. On reflection [[5]]."
    assert read_rating(text, 1, 10, rule="first") == 3.0
    with pytest.raises(RatingError, match="several different"):
        read_rating(text, 1, 10, rule="agree")
    regex = parse_prompt_file(yaml.safe_dump(MT_PROMPTS), "p").templates["single-v1"].regex
    assert read_rating("[[10]] [[2]]", 1, 10, regex=regex, rule="first") == 10.0
    with pytest.raises(RatingError, match="no match"):
        read_rating("[[eleven]]", 1, 10, regex=regex, rule="first")
    # int() of the match, as llm-jp-judge: where its regex takes any digit, full-width ones count.
    digits = parse_prompt_file(yaml.safe_dump(SAFETY_PROMPT), "s").templates["prompt_template_with_ref"].regex
    assert read_rating("[[７]]", 1, 10, regex=digits, rule="first") == 7.0
    with pytest.raises(RatingError, match="no match"):
        read_rating("[[７]]", 1, 10, regex=regex, rule="first")


def test_the_range_check_is_a_policy() -> None:
    assert read_rating("[[0]]", 1, 5, rule="first", range_check=False) == 0.0
    with pytest.raises(RatingError, match="outside 1-5"):
        read_rating("[[0]]", 1, 5, rule="first")


def test_criteria_with_a_regex_are_read_as_llm_jp_judge_reads_quality() -> None:
    regex = parse_prompt_file(yaml.safe_dump(QUALITY_PROMPT), "q").templates["prompt_template"].regex
    assert regex is not None
    read = {"regex": regex, "rule": "first", "range_check": False}
    assert read_criteria("fact: [[5]] style: [[1]]", ["fact", "style"], 1, 5, **read) == {
        "fact": 5,
        "style": 1,
    }
    with pytest.raises(RatingError, match="fact rated more than once"):
        read_criteria("fact: [[5]] fact: [[5]] style: [[1]]", ["fact", "style"], 1, 5, **read)
    with pytest.raises(RatingError, match="missing: style"):
        read_criteria("fact: [[5]]", ["fact", "style"], 1, 5, **read)
    agreeing = {**read, "rule": "agree"}
    assert (
        read_criteria("fact: [[5]] fact: [[5]] style: [[1]]", ["fact", "style"], 1, 5, **agreeing)["fact"]
        == 5
    )


# -- failed generations -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "profile", "expected"),
    [
        ("error", "shinsa", [(1, None, "generation failed"), (2, None, "not generated")]),
        ("empty", "shinsa", [(1, 6.0, None), (2, 6.0, None)]),
        ("drop", "shinsa", []),
    ],
)
def test_a_failed_generation_follows_failed_generation(
    mt_data: Path, tmp_path: Path, mode: str, profile: str, expected: list[Any]
) -> None:
    bench = loaded(
        {"name": "mt-bench", "dataset": {"uri": str(mt_data)}, "judging": {"failedGeneration": mode}},
        tmp_path,
        profile,
    )
    ctx = ScriptedContext(failed_turns={("1", 1)}, judge_text="[[6]]")
    items = run(bench, bench.questions[0], ctx)
    assert [(i.turn, i.score, i.error and i.error.split(":")[0]) for i in items] == expected
    if mode == "empty":
        assert items[0].extra == {"generation_error": "HTTP 500: scripted failure"}
        assert "<answer>\n\n</answer>" in ctx.judged[0][-1]["content"]
        # The conversation goes on: the second turn is generated after an empty first answer.
        assert ctx.generated[1][1] == {"role": "assistant", "content": ""}


def test_under_the_llm_jp_judge_profile_a_failed_answer_is_judged_as_the_none_it_formats(
    mt_data: Path, tmp_path: Path
) -> None:
    bench = loaded(
        {
            "name": "mt-bench",
            "dataset": {"uri": str(mt_data)},
            "promptFile": str(write(tmp_path / "mt.yaml", MT_PROMPTS)),
        },
        tmp_path,
        "llm-jp-judge",
    )
    ctx = ScriptedContext(failed_turns={("1", 1)}, judge_text="[[2]]")
    items = run(bench, bench.questions[0], ctx)
    assert ctx.judged[0][-1]["content"] == "Rate it.\nQ: Write 'hi' {x}.\nA: None"
    assert [(i.turn, i.score, i.error) for i in items] == [(1, 2.0, None), (2, 2.0, None)]


# -- the profile --------------------------------------------------------------------------------------


def _effective(benchmark: dict[str, Any], profile: str, **run: Any) -> BenchmarkSpec:
    run_spec = spec(benchmark, profile, **run)
    return effective_benchmark(run_spec, run_spec.benchmarks[0])


LJJ_JUDGE_SAMPLED = Sampling(temperature=1.0, top_p=0.95, seed=1234, max_tokens=1024)


@pytest.mark.parametrize(
    ("name", "generation", "judge", "api_error_score"),
    [
        (
            "mt-bench",
            Sampling(temperature=0.7, max_tokens=1024),
            Sampling(temperature=0.0, max_tokens=2048),
            None,
        ),
        (
            "mt-bench-ja",
            Sampling(temperature=0.7, max_tokens=1024),
            Sampling(temperature=0.0, max_tokens=2048),
            None,
        ),
        ("llm-jp-instructions", LJJ_JUDGE_SAMPLED, LJJ_JUDGE_SAMPLED, None),
        ("answer-carefully", LJJ_JUDGE_SAMPLED, LJJ_JUDGE_SAMPLED, 1.0),
    ],
)
def test_the_llm_jp_judge_profile_sets_its_defaults_per_benchmark(
    name: str, generation: Sampling, judge: Sampling, api_error_score: float | None
) -> None:
    bench = _effective({"name": name, "dataset": {"uri": "/d"}, "promptFile": "/p.yaml"}, "llm-jp-judge")
    assert bench.sampling == generation
    assert bench.judging == JudgingPolicy(
        sampling=judge,
        ratings="first",
        range_check=False,
        attempts=4,
        retry_refused=True,
        api_error_score=api_error_score,
        failed_generation="empty",
        formatting="python",
    )
    if name.startswith("mt-bench"):
        assert {c: s.temperature for c, s in bench.category_sampling.items()} == {
            "coding": 0.0, "extraction": 0.0, "humanities": 0.1, "math": 0.0,
            "reasoning": 0.0, "roleplay": 0.7, "stem": 0.1, "writing": 0.7,
        }  # fmt: skip
    else:
        assert bench.category_sampling == {}


def test_the_shinsa_profile_changes_nothing_but_naming_its_own_policy() -> None:
    raw = {"name": "mt-bench", "dataset": {"uri": "/d"}}
    bench = _effective(raw, "shinsa")
    assert (bench.sampling, bench.category_sampling) == (Sampling(), {})
    assert bench.judging == JudgingPolicy(
        ratings="agree", range_check=True, retry_refused=False, failed_generation="error", formatting="shinsa"
    )


def test_explicit_fields_win_over_the_profile() -> None:
    bench = _effective(
        {
            "name": "mt-bench",
            "dataset": {"uri": "/d"},
            "sampling": {"maxTokens": 300},
            "categorySampling": {"math": {"topP": 0.5}},
            "judging": {"ratings": "agree", "attempts": 2, "sampling": {"temperature": 0.2}},
        },
        "llm-jp-judge",
        sampling={"temperature": 0.3},
    )
    # The run's temperature is explicit: the profile neither sets the benchmark's nor the categories'.
    assert bench.sampling == Sampling(max_tokens=300)
    assert bench.category_sampling == {"math": Sampling(top_p=0.5)}
    assert (bench.judging.ratings, bench.judging.attempts) == ("agree", 2)
    assert bench.judging.sampling == Sampling(temperature=0.2, max_tokens=2048)
    # A category setting of the user's is merged over the profile's category temperature.
    merged = _effective(
        {"name": "mt-bench", "dataset": {"uri": "/d"}, "categorySampling": {"math": {"topP": 0.5}}},
        "llm-jp-judge",
    )
    assert merged.category_sampling["math"] == Sampling(temperature=0.0, top_p=0.5)
    # Without a prompt file, Shinsa's own templates keep Shinsa's formatting.
    assert (
        _effective({"name": "mt-bench", "dataset": {"uri": "/d"}}, "llm-jp-judge").judging.formatting
        == "shinsa"
    )


def test_judge_requests_carry_top_p_and_seed_and_the_benchmark_judging_sampling() -> None:
    run_spec = spec(
        {"name": "answer-carefully", "dataset": {"uri": "/d"}},
        "llm-jp-judge",
        judges=[
            {"name": "j", "endpoint": "http://127.0.0.1:9/v1", "model": "judge", "topP": 0.8, "seed": 7},
        ],
    )
    judge = run_spec.judges[0]
    bench = effective_benchmark(run_spec, run_spec.benchmarks[0])
    assert judge_request_sampling(judge, bench.judging) == LJJ_JUDGE_SAMPLED
    shinsa = effective_benchmark(
        run_spec.model_copy(update={"profile": EvalProfile.SHINSA}), run_spec.benchmarks[0]
    )
    assert judge_request_sampling(judge, shinsa.judging) == Sampling(
        temperature=0.0, top_p=0.8, seed=7, max_tokens=2048
    )
    assert (judge_attempts(judge, bench.judging), judge_attempts(judge, shinsa.judging)) == (4, 3)


def test_the_profile_and_policies_are_part_of_the_judge_fingerprint(mt_data: Path, tmp_path: Path) -> None:
    plain = loaded({"name": "mt-bench", "dataset": {"uri": str(mt_data)}}, tmp_path)
    first = loaded(
        {"name": "mt-bench", "dataset": {"uri": str(mt_data)}, "judging": {"ratings": "first"}}, tmp_path
    )
    filed = loaded(
        {
            "name": "mt-bench",
            "dataset": {"uri": str(mt_data)},
            "promptFile": str(write(tmp_path / "p.yaml", MT_PROMPTS)),
        },
        tmp_path,
    )
    settings = [b.judge_settings() for b in (plain, first, filed)]
    assert "judging" not in settings[0] and "prompt_file" not in settings[0]
    assert settings[1]["judging"]["ratings"] == "first"
    assert len(settings[2]["prompt_file"]) == 16


@pytest.mark.parametrize(
    ("judge_field", "hint"),
    [("maxRetries", "judging.attempts"), ("frequencyPenalty", "extraBody")],
)
def test_llm_jp_judge_settings_in_the_wrong_place_say_where_they_go(judge_field: str, hint: str) -> None:
    judge = {"name": "j", "endpoint": "http://127.0.0.1:9/v1", "model": "judge", judge_field: 3}
    with pytest.raises(ConfigError, match=rf"judges\[0\]\.{judge_field}: .*{hint}"):
        parse_config(
            {
                "model": {"endpoint": "http://127.0.0.1:9/v1", "servedName": "m"},
                "judges": [judge],
                "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/d"}}],
            }
        )


def test_a_rubric_under_the_profile_gets_the_reading_rules_but_no_sampling() -> None:
    rubric = {"id": "culture", "criteria": "Is it right?"}
    own = _effective(
        {"name": "rubric", "dataset": {"uri": "/d"}, "rubric": rubric, "prompts": {"single": "{question}"}},
        "llm-jp-judge",
    )
    assert (own.judging.ratings, own.judging.attempts, own.judging.formatting) == ("first", 4, "python")
    assert (own.sampling, own.judging.sampling, own.judging.api_error_score) == (Sampling(), None, None)
    shinsa_prompt = _effective({"name": "rubric", "dataset": {"uri": "/d"}, "rubric": rubric}, "llm-jp-judge")
    assert shinsa_prompt.judging.formatting == "shinsa"
