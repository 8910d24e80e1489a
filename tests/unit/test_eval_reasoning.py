"""Judges see only the answer; the model's thinking is kept aside, whatever form it came in."""

from __future__ import annotations

import pytest

from shinsa.evaluation.reasoning import split_reasoning

pytestmark = pytest.mark.unit


def test_plain_answers_pass_through() -> None:
    split = split_reasoning("  Paris.  ")
    assert (split.answer, split.reasoning) == ("Paris.", "")


def test_separate_reasoning_field_is_kept() -> None:
    split = split_reasoning("Paris.", "The capital of France is Paris.")
    assert (split.answer, split.reasoning) == ("Paris.", "The capital of France is Paris.")


def test_think_blocks_are_removed() -> None:
    split = split_reasoning("<think>hmm, France...</think>\nParis.")
    assert (split.answer, split.reasoning) == ("Paris.", "hmm, France...")


def test_closing_tag_only_means_the_template_opened_the_block() -> None:
    split = split_reasoning("hmm, France...</think>Paris.")
    assert (split.answer, split.reasoning) == ("Paris.", "hmm, France...")


def test_unclosed_think_block_leaves_no_answer() -> None:
    split = split_reasoning("<think>still thinking when max_tokens ran out")
    assert split.answer == ""
    assert split.reasoning == "still thinking when max_tokens ran out"


def test_harmony_channels_keep_only_final() -> None:
    text = (
        "<|channel|>analysis<|message|>User wants the capital.<|end|>"
        "<|start|>assistant<|channel|>final<|message|>Paris.<|return|>"
    )
    split = split_reasoning(text)
    assert (split.answer, split.reasoning) == ("Paris.", "User wants the capital.")


def test_harmony_with_special_tokens_stripped() -> None:
    split = split_reasoning("analysisUser wants the capital.assistantfinalParis.")
    assert (split.answer, split.reasoning) == ("Paris.", "User wants the capital.")


@pytest.mark.parametrize("answer", ["An analysis of the data shows growth.", "analysis: none needed"])
def test_ordinary_text_mentioning_analysis_is_untouched(answer: str) -> None:
    assert split_reasoning(answer).answer == answer


def test_unclosed_think_block_after_leading_whitespace_leaves_no_answer() -> None:
    split = split_reasoning("\n  <think>still thinking")
    assert (split.answer, split.reasoning) == ("", "still thinking")


def test_a_literal_think_tag_inside_an_answer_does_not_cut_it() -> None:
    answer = "Qwen models open their reasoning with <think> and the rest follows."
    split = split_reasoning(answer)
    assert (split.answer, split.reasoning) == (answer, "")
    after_thinking = split_reasoning("<think>plan</think>Write <think> literally.")
    assert (after_thinking.answer, after_thinking.reasoning) == ("Write <think> literally.", "plan")
