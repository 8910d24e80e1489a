"""Judge text is read strictly: one clear in-range rating, or an error that triggers a retry."""

from __future__ import annotations

import re

import pytest

from shinsa.evaluation.ratings import RatingError, parse_criteria, parse_rating

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Good answer. [[7]]", 7.0),
        ("Rating: [[7]]", 7.0),
        ("[[ 9 ]]", 9.0),
        ("Mostly right. [[8.5]]", 8.5),
        ("[[6/10]]", 6.0),
        ("\u8a55\u4fa1\uff1a\uff3b\uff3b\uff18\uff3d\uff3d", 8.0),  # full-width: 評価 [[8]]
        ("I'd say [[5]]. To restate the verdict: [[5]]", 5.0),
        ("[[1]]", 1.0),
        ("[[10]]", 10.0),
    ],
)
def test_reads_a_single_clear_rating(text: str, expected: float) -> None:
    assert parse_rating(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("A solid answer, I would give it 8.", "no [[rating]]"),
        ("[[eleven]]", "no [[rating]]"),
        ("First [[3]], on reflection [[8]]", "several different"),
        ("[[11]]", "outside"),
        ("[[0]]", "outside"),
        ("[[-2]]", "outside"),
        ("[[4/5]]", "not on the 1-10 scale"),
        ("", "no [[rating]]"),
    ],
)
def test_rejects_missing_ambiguous_and_out_of_range_ratings(text: str, reason: str) -> None:
    with pytest.raises(RatingError, match=re.escape(reason)):
        parse_rating(text)


def test_scale_is_the_callers() -> None:
    assert parse_rating("[[5]]", 1, 5) == 5.0
    with pytest.raises(RatingError):
        parse_rating("[[6]]", 1, 5)


def test_criteria_need_every_name_present() -> None:
    text = "Fine overall.\naccuracy: [[4]]\nFluency: [[5]]\n**helpfulness**: [[3]]"
    assert parse_criteria(text, ["accuracy", "fluency", "helpfulness"]) == {
        "accuracy": 4.0,
        "fluency": 5.0,
        "helpfulness": 3.0,
    }
    with pytest.raises(RatingError, match="missing criteria: helpfulness"):
        parse_criteria("accuracy: [[4]]\nfluency: [[5]]", ["accuracy", "fluency", "helpfulness"])


def test_criteria_ratings_are_range_checked_and_must_agree() -> None:
    with pytest.raises(RatingError, match="outside"):
        parse_criteria("accuracy: [[6]]", ["accuracy"], 1, 5)
    with pytest.raises(RatingError, match="several different"):
        parse_criteria("accuracy: [[2]] ... accuracy: [[4]]", ["accuracy"], 1, 5)


def test_criteria_are_read_only_under_their_own_name() -> None:
    text = "overall_accuracy: [[2]]\naccuracy: [[5]]\ninaccuracy: [[1]]\n- factual-accuracy: [[3]]"
    assert parse_criteria(text, ["accuracy", "overall_accuracy"]) == {
        "accuracy": 5.0,
        "overall_accuracy": 2.0,
    }
    with pytest.raises(RatingError, match="missing criteria: accuracy"):
        parse_criteria("inaccuracy: [[2]]\noverall_accuracy: [[4]]", ["accuracy"])


def test_a_cjk_criterion_is_read_after_the_text_its_label_continues() -> None:
    # Japanese writes no space before a label: `回答の正確性` is the 正確性 criterion.
    assert parse_criteria("回答の正確性: [[4]]", ["正確性"]) == {"正確性": 4.0}
    assert parse_criteria("評価：\n回答の正確性：［［３］］\n流暢さ: [[5]]", ["正確性", "流暢さ"]) == {
        "正確性": 3.0,
        "流暢さ": 5.0,
    }
    # The end of the name still has to end the label.
    with pytest.raises(RatingError, match="missing criteria: 正確性"):
        parse_criteria("正確性評価: [[4]]", ["正確性"])


def test_a_cjk_criterion_ending_another_criterion_gets_its_own_rating() -> None:
    text = "回答の正確性: [[4]]\n正確性: [[2]]"
    assert parse_criteria(text, ["正確性", "回答の正確性"]) == {"正確性": 2.0, "回答の正確性": 4.0}
    assert parse_criteria(text, ["回答の正確性", "正確性"]) == {"回答の正確性": 4.0, "正確性": 2.0}
    with pytest.raises(RatingError, match="missing criteria: 正確性"):
        parse_criteria("回答の正確性: [[4]]", ["正確性", "回答の正確性"])


@pytest.mark.parametrize(
    ("text", "name"),
    [("неточность: [[2]]\nточность: [[4]]", "точность"), ("Inélégance: [[1]]\nÉlégance: [[4]]", "élégance")],
)
def test_names_in_other_spaced_scripts_still_match_only_as_whole_labels(text: str, name: str) -> None:
    assert parse_criteria(text, [name]) == {name: 4.0}
