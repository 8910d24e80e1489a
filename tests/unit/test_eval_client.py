"""The chat client retries what is worth retrying, waits as told, and otherwise fails loudly."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from email.utils import formatdate
from typing import Any

import httpx
import pytest

from shinsa.evaluation.client import (
    ChatClient,
    EndpointUnreachable,
    RequestFailed,
    backoff_delay,
    normalise_base_url,
    parse_retry_after,
)
from shinsa.evaluation.config import Sampling
from shinsa.evaluation.ratelimit import RateLimiter

pytestmark = pytest.mark.unit

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]
USER = [{"role": "user", "content": "hello"}]


def completion(content: str = "hi there", **message: Any) -> httpx.Response:
    body = {
        "choices": [
            {"message": {"role": "assistant", "content": content, **message}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": 3,
            "completion_tokens": 2,
            "completion_tokens_details": {"reasoning_tokens": 1},
        },
    }
    return httpx.Response(200, json=body)


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A transport handler answering with `responses` in order (the last one repeats)."""
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses[min(len(seen), len(responses)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def client(handler: Handler, **options: Any) -> ChatClient:
    defaults: dict[str, Any] = {"retries": 3, "backoff_s": 0.01, "timeout_s": 5.0}
    return ChatClient(
        "http://model.test:8000/v1", "m", transport=httpx.MockTransport(handler), **{**defaults, **options}
    )


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def test_rate_limited_requests_wait_for_retry_after_then_succeed() -> None:
    handler, seen = scripted(httpx.Response(429, headers={"Retry-After": "0.3"}), completion("ok"))
    started = time.monotonic()
    result = run(client(handler).chat(USER, Sampling()))
    assert result.answer == "ok" and result.attempts == 2
    assert time.monotonic() - started >= 0.3
    assert len(seen) == 2


def test_server_errors_and_dropped_connections_are_retried() -> None:
    handler, seen = scripted(
        httpx.Response(500), httpx.Response(503), httpx.ConnectError("reset"), completion("finally")
    )
    assert run(client(handler).chat(USER, Sampling())).answer == "finally"
    assert len(seen) == 4


def test_exhausted_retries_raise_with_url_reason_and_attempts() -> None:
    handler, seen = scripted(httpx.Response(500, text="boom"))
    with pytest.raises(RequestFailed) as raised:
        run(client(handler, retries=2).chat(USER, Sampling()))
    assert len(seen) == 3
    assert raised.value.attempts == 3
    assert "http://model.test:8000/v1/chat/completions" in str(raised.value)
    assert "HTTP 500: boom" in str(raised.value)


def test_client_errors_are_not_retried() -> None:
    handler, seen = scripted(httpx.Response(400, json={"error": "bad request"}))
    with pytest.raises(RequestFailed, match="HTTP 400"):
        run(client(handler).chat(USER, Sampling()))
    assert len(seen) == 1


def test_slow_answers_time_out_and_are_retried() -> None:
    calls = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(2)
        return completion("fast enough")

    result = run(client(handler, timeout_s=0.2).chat(USER, Sampling()))
    assert result.answer == "fast enough" and calls == 2


def test_persistent_timeouts_become_a_request_failure() -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(2)
        return completion()

    with pytest.raises(RequestFailed, match="timed out"):
        run(client(handler, timeout_s=0.1, retries=1).chat(USER, Sampling()))


def test_request_body_carries_only_the_set_sampling_fields() -> None:
    handler, seen = scripted(completion())
    sampling = Sampling(temperature=0.2, top_p=0.9, max_tokens=64, seed=7, reasoning_effort="medium")
    c = client(handler, api_key="sk-secret", max_tokens_param="max_completion_tokens", extra_body={"x": 1})
    run(c.chat(USER, sampling, item_key="mt-bench/81/1/0/generation"))
    body = json.loads(seen[0].content)
    assert body == {
        "model": "m",
        "messages": USER,
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 64,
        "seed": 7,
        "reasoning_effort": "medium",
        "x": 1,
    }
    assert seen[0].headers["authorization"] == "Bearer sk-secret"
    assert seen[0].headers["x-shinsa-item"] == "mt-bench/81/1/0/generation"
    handler, seen = scripted(completion())
    run(client(handler).chat(USER, Sampling()))
    assert set(json.loads(seen[0].content)) == {"model", "messages"}


def test_reasoning_is_split_from_the_answer_and_usage_recorded() -> None:
    handler, _ = scripted(
        completion("<think>let me see</think>The answer.", reasoning_content="more thought")
    )
    result = run(client(handler).chat(USER, Sampling()))
    assert result.answer == "The answer."
    assert "let me see" in result.reasoning and "more thought" in result.reasoning
    assert (result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.reasoning_tokens) == (
        3,
        2,
        1,
    )


def test_streaming_measures_time_to_first_token() -> None:
    chunks = [
        {"choices": [{"delta": {"reasoning_content": "thinking"}}]},
        {"choices": [{"delta": {"content": "Hel"}}]},
        {"choices": [{"delta": {"content": "lo"}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}},
    ]
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    handler, seen = scripted(httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"}))
    result = run(client(handler).chat(USER, Sampling(), stream=True))
    assert (result.answer, result.reasoning, result.finish_reason) == ("Hello", "thinking", "stop")
    assert result.ttft_s is not None and result.ttft_s <= result.latency_s
    assert result.usage.prompt_tokens == 5
    assert json.loads(seen[0].content)["stream_options"] == {"include_usage": True}


def test_in_flight_requests_never_exceed_the_concurrency() -> None:
    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.02)
        in_flight -= 1
        return completion()

    async def many() -> None:
        c = client(handler, concurrency=4)
        await asyncio.gather(*(c.chat(USER, Sampling()) for _ in range(20)))

    run(many())
    assert peak == 4


def test_request_rate_limit_spaces_requests() -> None:
    handler, seen = scripted(completion())

    async def burst() -> float:
        c = client(handler, rate_limiter=RateLimiter(requests_per_second=10, tokens_per_minute=None))
        started = time.monotonic()
        await asyncio.gather(*(c.chat(USER, Sampling()) for _ in range(15)))
        return time.monotonic() - started

    # A burst of 10 passes at once; the other 5 are spaced 0.1 s apart.
    assert run(burst()) >= 0.4
    assert len(seen) == 15


def test_token_rate_limit_holds_back_large_requests() -> None:
    async def timed() -> float:
        limiter = RateLimiter(requests_per_second=None, tokens_per_minute=600)  # 10 tokens/s
        started = time.monotonic()
        await limiter.acquire(600)
        await limiter.acquire(5)
        return time.monotonic() - started

    assert run(timed()) >= 0.45


def test_unreachable_endpoint_is_named() -> None:
    handler, _ = scripted(httpx.ConnectError("connection refused"))
    with pytest.raises(EndpointUnreachable, match=r"http://model.test:8000/v1/models"):
        run(client(handler).list_models())


def test_models_listing() -> None:
    handler, _ = scripted(httpx.Response(200, json={"data": [{"id": "m"}, {"id": "other"}]}))
    assert run(client(handler).list_models()) == ["m", "other"]
    handler, _ = scripted(httpx.Response(404))
    assert run(client(handler).list_models()) is None


def test_retry_after_forms_and_backoff_bounds() -> None:
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after(None) is None
    in_a_while = parse_retry_after(formatdate(time.time() + 30, usegmt=True))
    assert in_a_while is not None and 25 < in_a_while <= 30
    for attempt in range(6):
        delay = backoff_delay(attempt, 1.0, 10.0, None)
        ceiling = min(10.0, 2.0**attempt)
        assert ceiling / 2 <= delay <= ceiling
    assert 5.0 <= backoff_delay(0, 1.0, 10.0, 5.0) <= 5.5


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://h:8000", "http://h:8000/v1"),
        ("http://h:8000/", "http://h:8000/v1"),
        ("http://h:8000/v1/", "http://h:8000/v1"),
        ("https://api.example/openai/v1", "https://api.example/openai/v1"),
    ],
)
def test_base_url_normalisation(given: str, expected: str) -> None:
    assert normalise_base_url(given) == expected


def test_a_client_error_after_retries_reports_every_attempt() -> None:
    handler, seen = scripted(
        httpx.Response(503), httpx.Response(429), httpx.Response(400, json={"error": "context too long"})
    )
    with pytest.raises(RequestFailed) as raised:
        run(client(handler, retries=5).chat(USER, Sampling()))
    assert len(seen) == 3
    assert raised.value.attempts == 3
    assert "HTTP 400" in str(raised.value) and "(after 3 attempts)" in str(raised.value)
