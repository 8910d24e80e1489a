"""An OpenAI-compatible chat-completions client built for evaluation traffic.

Bounded concurrency, optional rate limits, retries with exponential backoff and jitter (honouring
Retry-After), a per-request time limit, and streaming for time-to-first-token. A request that still
fails after its retries raises `RequestFailed`: callers record it as an error, never as a score.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

from shinsa.api.eval_run import DEFAULT_MAX_RESPONSE_BYTES
from shinsa.evaluation.config import Sampling
from shinsa.evaluation.ratelimit import RateLimiter
from shinsa.evaluation.reasoning import split_reasoning

Message = Mapping[str, str]
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 600.0
_ERROR_DETAIL_BYTES = 300


class RequestFailed(Exception):
    """A request that failed for good: a non-retryable answer, or retries exhausted."""

    def __init__(self, url: str, reason: str, attempts: int) -> None:
        super().__init__(f"{url}: {reason} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.url = url
        self.reason = reason
        self.attempts = attempts


class EndpointUnreachable(Exception):
    """The endpoint did not answer at all before any evaluation request was sent."""


class _NotRetryable(Exception):
    """An answer that retrying cannot fix; `chat` turns it into `RequestFailed` with the attempt count."""


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        details = usage.get("completion_tokens_details") or {}
        return cls(
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(details.get("reasoning_tokens") or 0),
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }


@dataclass(frozen=True)
class TokenCount:
    """What vLLM's `/tokenize` says of a chat prompt: its length in the served model's tokens (chat
    template included) and the server's `max_model_len`."""

    count: int
    max_model_len: int | None


@dataclass(frozen=True)
class ChatResult:
    answer: str
    reasoning: str
    usage: Usage
    latency_s: float
    ttft_s: float | None
    finish_reason: str | None
    attempts: int


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    failures: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


def normalise_base_url(endpoint: str) -> str:
    """`http://host:8000` and `http://host:8000/v1/` both mean the OpenAI API root `.../v1`."""
    url = endpoint.rstrip("/")
    return url + "/v1" if urlparse(url).path in ("", "/") else url


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base_s: float, max_s: float, retry_after: float | None) -> float:
    """Delay before retry number `attempt` (0-based): the server's Retry-After when given, else
    exponential backoff with jitter so that many clients failing together do not retry in lockstep."""
    if retry_after is not None:
        wait = min(retry_after, _MAX_RETRY_AFTER_S)
        return wait + random.uniform(0, 0.1 * wait)
    ceiling = min(max_s, base_s * (2**attempt))
    return random.uniform(ceiling / 2, ceiling)


def _estimate_tokens(messages: Sequence[Message], max_tokens: int | None) -> int:
    chars = sum(len(m.get("content", "")) for m in messages)
    return chars // 4 + (max_tokens or 512)


class ChatClient:
    """One OpenAI-compatible endpoint + model, shared by all requests that go to it."""

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        concurrency: int = 16,
        timeout_s: float = 600.0,
        retries: int = 4,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        rate_limiter: RateLimiter | None = None,
        max_tokens_param: str = "max_tokens",
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = normalise_base_url(endpoint)
        self.max_response_bytes = max_response_bytes
        self.model = model
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_tokens_param = max_tokens_param
        self.extra_body = dict(extra_body or {})
        self.stats = ClientStats()
        self._limiter = rate_limiter or RateLimiter(None, None)
        self._slots = asyncio.Semaphore(concurrency)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 15.0)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )

    @property
    def chat_url(self) -> str:
        return f"{self.base_url}/chat/completions"

    @property
    def server_root(self) -> str:
        """The server's root URL: vLLM serves `/tokenize` and `/metrics` there, beside `/v1`."""
        root = self.base_url.rstrip("/")
        return root[: -len("/v1")] if root.endswith("/v1") else root

    async def tokenize(self, messages: Sequence[Message]) -> TokenCount | None:
        """The prompt length of `messages` in the served model's tokens, as vLLM's `POST /tokenize`
        counts it (its chat form: `model`, `messages`, `add_generation_prompt`; answer `count`,
        `max_model_len`, `tokens`; checked against vLLM v0.33.0,
        vllm/entrypoints/serve/tokenize/{api_router,protocol}.py). `chat_template_kwargs` of
        `extraBody` go along, since they change the rendered template.

        None when the server has no such endpoint (404, 405, 501); other failures, after the usual
        retries, raise RequestFailed.
        """
        url = f"{self.server_root}/tokenize"
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "add_generation_prompt": True,
        }
        if "chat_template_kwargs" in self.extra_body:
            body["chat_template_kwargs"] = self.extra_body["chat_template_kwargs"]
        reason = "no attempt made"
        for attempt in range(self.retries + 1):
            retry_after: float | None = None
            try:
                async with self._slots:
                    resp = await self._http.post(url, json=body)
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if resp.status_code in (404, 405, 501):
                    return None
                if resp.status_code < 400:
                    try:
                        data = resp.json()
                        limit = data.get("max_model_len")
                        return TokenCount(int(data["count"]), int(limit) if limit else None)
                    except (ValueError, KeyError, TypeError, AttributeError):
                        raise RequestFailed(
                            url, f"malformed answer: {resp.text[:200]!r}", attempt + 1
                        ) from None
                reason = f"HTTP {resp.status_code}: {resp.text[:_ERROR_DETAIL_BYTES]}"
                if resp.status_code not in _RETRYABLE_STATUS and resp.status_code < 500:
                    raise RequestFailed(url, reason, attempt + 1)
                retry_after = parse_retry_after(resp.headers.get("retry-after"))
            if attempt < self.retries:
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s, retry_after))
        raise RequestFailed(url, reason, self.retries + 1)

    async def metrics_text(self) -> str | None:
        """The server's Prometheus metrics (`GET /metrics` on its root), or None when it serves none or
        does not answer: scraped alongside a run, never a reason to fail it."""
        try:
            resp = await self._http.get(f"{self.server_root}/metrics", timeout=min(self.timeout_s, 10.0))
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        return resp.text[: 4 * 1024 * 1024]

    async def aclose(self) -> None:
        await self._http.aclose()

    async def list_models(self) -> list[str] | None:
        """The served model ids, or None when the endpoint does not implement /models.

        Raises EndpointUnreachable when nothing answers, so a wrong URL fails before any work starts.
        """
        url = f"{self.base_url}/models"
        try:
            resp = await self._http.get(url, timeout=min(self.timeout_s, 15.0))
        except httpx.HTTPError as exc:
            raise EndpointUnreachable(f"{url}: {type(exc).__name__}: {exc or 'no answer'}") from None
        if resp.status_code in (401, 403):
            raise EndpointUnreachable(f"{url}: HTTP {resp.status_code} (is the API key right?)")
        if resp.status_code >= 400:
            return None
        try:
            data = resp.json().get("data") or []
            return [str(m.get("id")) for m in data if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return None

    def _body(self, messages: Sequence[Message], sampling: Sampling, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": [dict(m) for m in messages]}
        if sampling.temperature is not None:
            body["temperature"] = sampling.temperature
        if sampling.top_p is not None:
            body["top_p"] = sampling.top_p
        if sampling.max_tokens is not None:
            body[self.max_tokens_param] = sampling.max_tokens
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if sampling.reasoning_effort is not None:
            body["reasoning_effort"] = sampling.reasoning_effort
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        body.update(self.extra_body)
        return body

    async def chat(
        self,
        messages: Sequence[Message],
        sampling: Sampling,
        *,
        stream: bool = False,
        item_key: str | None = None,
    ) -> ChatResult:
        body = self._body(messages, sampling, stream)
        headers = {"X-Shinsa-Item": item_key} if item_key else {}
        estimate = _estimate_tokens(messages, sampling.max_tokens)
        last_reason = "no attempt made"
        for attempt in range(self.retries + 1):
            await self._limiter.acquire(estimate)
            retry_after: float | None = None
            try:
                async with self._slots:
                    self.stats.requests += 1
                    result = await self._attempt(body, headers, stream, attempt + 1)
                self._limiter.settle(estimate, result.usage.prompt_tokens + result.usage.completion_tokens)
                return result
            except _Retryable as exc:
                last_reason, retry_after = str(exc), exc.retry_after
            except _NotRetryable as exc:
                self.stats.failures += 1
                raise RequestFailed(self.chat_url, str(exc), attempt + 1) from None
            if attempt < self.retries:
                self.stats.retries += 1
                await asyncio.sleep(backoff_delay(attempt, self.backoff_s, self.max_backoff_s, retry_after))
        self.stats.failures += 1
        raise RequestFailed(self.chat_url, last_reason, self.retries + 1)

    async def _attempt(
        self, body: dict[str, Any], headers: dict[str, str], stream: bool, attempt: int
    ) -> ChatResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                if stream:
                    return await self._streamed(body, headers, started, attempt)
                async with self._http.stream("POST", self.chat_url, json=body, headers=headers) as resp:
                    await self._check_status(resp)
                    # JSON escapes (`\\u3042` for a 3-byte character, `\\n`) make the body longer than
                    # its text; the text itself is held to the cap once parsed.
                    raw = await self._read(resp, 4 * self.max_response_bytes + 65536, fail=True)
                return self._parse_full(raw, started, attempt)
        except TimeoutError:
            raise _Retryable(f"timed out after {self.timeout_s:g}s") from None
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"{type(exc).__name__}: {exc}") from None

    def _too_large(self) -> _NotRetryable:
        # Not retried: a server that ignores maxTokens once does so again, and the reply is dropped
        # rather than stored.
        return _NotRetryable(f"reply larger than maxResponseBytes ({self.max_response_bytes} bytes)")

    async def _read(self, resp: httpx.Response, limit: int, *, fail: bool = False) -> bytes:
        """The body, up to `limit` bytes: beyond it, the rest is never read, and with `fail` the
        reply is refused."""
        length = resp.headers.get("content-length", "")
        if fail and length.isdigit() and int(length) > limit:
            raise self._too_large()
        chunks: list[bytes] = []
        size = 0
        async for chunk in resp.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                if fail:
                    raise self._too_large()
                break
        return b"".join(chunks)[:limit]

    def _check_text_size(self, *texts: str) -> None:
        if sum(len(t.encode()) for t in texts) > self.max_response_bytes:
            raise self._too_large()

    async def _check_status(self, resp: httpx.Response) -> None:
        key = str(resp.status_code)
        self.stats.by_status[key] = self.stats.by_status.get(key, 0) + 1
        if resp.status_code < 400:
            return
        body = await self._read(resp, _ERROR_DETAIL_BYTES)
        detail = body.decode("utf-8", errors="replace").strip()
        reason = f"HTTP {resp.status_code}" + (f": {detail}" if detail else "")
        if resp.status_code in _RETRYABLE_STATUS or resp.status_code >= 500:
            raise _Retryable(reason, parse_retry_after(resp.headers.get("retry-after")))
        raise _NotRetryable(reason)

    def _parse_full(self, raw: bytes, started: float, attempt: int) -> ChatResult:
        try:
            data = json.loads(raw)
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            text = raw[:200].decode("utf-8", errors="replace")
            raise _Retryable(f"malformed response: {text!r}") from None
        reasoning_field = message.get("reasoning_content") or message.get("reasoning")
        self._check_text_size(str(message.get("content") or ""), str(reasoning_field or ""))
        split = split_reasoning(message.get("content") or "", reasoning_field)
        return ChatResult(
            answer=split.answer,
            reasoning=split.reasoning,
            usage=Usage.from_openai(data.get("usage")),
            latency_s=time.monotonic() - started,
            ttft_s=None,
            finish_reason=choice.get("finish_reason"),
            attempts=attempt,
        )

    async def _streamed(
        self, body: dict[str, Any], headers: dict[str, str], started: float, attempt: int
    ) -> ChatResult:
        content: list[str] = []
        reasoning: list[str] = []
        usage: Mapping[str, Any] | None = None
        finish_reason: str | None = None
        ttft: float | None = None
        received = 0
        async with self._http.stream("POST", self.chat_url, json=body, headers=headers) as resp:
            await self._check_status(resp)
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                try:
                    chunk = json.loads(payload)
                except ValueError:
                    raise _Retryable(f"malformed stream chunk: {payload[:200]!r}") from None
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices") or []:
                    delta = choice.get("delta") or {}
                    piece = delta.get("content") or ""
                    thought = delta.get("reasoning_content") or delta.get("reasoning") or ""
                    if (piece or thought) and ttft is None:
                        ttft = time.monotonic() - started
                    content.append(piece)
                    reasoning.append(thought)
                    received += len(piece.encode()) + len(thought.encode())
                    if received > self.max_response_bytes:
                        raise self._too_large()
                    finish_reason = choice.get("finish_reason") or finish_reason
        split = split_reasoning("".join(content), "".join(reasoning) or None)
        return ChatResult(
            answer=split.answer,
            reasoning=split.reasoning,
            usage=Usage.from_openai(usage),
            latency_s=time.monotonic() - started,
            ttft_s=ttft,
            finish_reason=finish_reason,
            attempts=attempt,
        )
