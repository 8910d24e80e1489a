"""The evaluation engine's defences against hostile input (issue 12, the evaluation engine): secrets
masked, URLs with keys refused, bad bytes in datasets, markup and escape sequences in user data,
oversized replies."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from shinsa.evaluation.config import parse_config
from shinsa.evaluation.masking import MASK, MaskedReporter, SecretMask, masked
from shinsa.evaluation.progress import JsonLinesReporter

pytestmark = pytest.mark.unit


def spec(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": {"endpoint": "http://model:8000/v1", "servedName": "m"},
        "benchmarks": [{"name": "mt-bench", "dataset": {"uri": "/data/mt-bench"}}],
        "judges": [{"name": "judge-a", "endpoint": "https://judge.example/v1", "model": "gpt"}],
    }
    base.update(changes)
    return base


# -- secrets ----------------------------------------------------------------------------------------


def test_the_mask_holds_the_keys_and_extra_body_strings_of_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_KEY", "sk-model-0123456789")
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-0123456789")
    config = parse_config(
        {
            **spec(),
            "model": {
                "endpoint": "http://model:8000/v1",
                "servedName": "m",
                "extraBody": {"vendor": {"tokens": ["tok-nested-0123456789"]}, "effort": "low"},
            },
            "engine": {"modelApiKeyEnv": "MODEL_KEY", "judgeApiKeyEnv": {"judge-a": "JUDGE_KEY"}},
        }
    )
    mask = SecretMask.of_config(config)
    text = "sent sk-model-0123456789, sk-judge-0123456789 and tok-nested-0123456789 at effort low"
    assert mask.text(text) == f"sent {MASK}, {MASK} and {MASK} at effort low"


def test_bearer_tokens_are_masked_even_when_not_the_key_sent() -> None:
    mask = SecretMask()
    assert mask.text("Incorrect API key provided: Bearer sk-abcdefgh1234") == (
        f"Incorrect API key provided: Bearer {MASK}"
    )
    # A word after "Bearer" in prose is no token.
    assert mask.text("the Bearer of news") == "the Bearer of news"


def test_short_values_are_not_masked_and_longer_secrets_are_masked_whole() -> None:
    mask = SecretMask(["EMPTY", "secret-12345678", "secret-12345678-longer"])
    assert mask.text("EMPTY secret-12345678-longer secret-12345678") == f"EMPTY {MASK} {MASK}"


def test_a_masked_reporter_masks_messages_and_nested_fields() -> None:
    stream = io.StringIO()
    mask = SecretMask(["sk-live-0123456789"])
    reporter = masked(JsonLinesReporter(stream=stream), mask)
    assert masked(reporter, SecretMask(["sk-live-0123456789"])) is reporter
    assert isinstance(reporter, MaskedReporter)
    reporter.event("crashed sk-live-0123456789", error={"detail": ["key sk-live-0123456789"]})
    reporter.benchmark_finished("mt-bench", note="sk-live-0123456789")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert "sk-live" not in stream.getvalue()
    assert lines[0]["event"] == f"crashed {MASK}" and lines[0]["error"] == {"detail": [f"key {MASK}"]}
