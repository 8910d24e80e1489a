"""A real OpenAI-compatible HTTP server for tests: deterministic model and judge, with fault injection.

It serves `GET /v1/models` and `POST /v1/chat/completions` (plain and streamed) on 127.0.0.1, and,
as vLLM does on its server root, `POST /tokenize` (chat form; `count_tokens` is its rule) and
`GET /metrics` (a `vllm:kv_cache_usage_perc` gauge: the prompt tokens of the model requests in
flight over `kv_capacity_tokens`). `serve_tokenize` / `serve_metrics` False make them 404.

- Model side (any model not named as a judge): answers derived from the last user message; for
  long-context needle prompts it answers the planted code and cites the passage it opens, as
  `1234567 [P3]` (up to `context_limit_chars`).
- Judge side (models in `judge_models`): a rating derived from the judge prompt with `judge_rating`,
  on the scale the prompt asks for ("scale of 1 to N"), one `name: [[n]]` line per listed criterion
  when the prompt asks for criteria.
- Answer quality (`answer_quality`, served model name -> points): extra models served by the same
  double whose answers carry a `[quality +k]` marker; the judge rates an answer with a marker as it
  would the same answer without, plus k (within the scale), so two models' scores differ by a
  known, configured amount on every question.
- Faults: HTTP statuses with Retry-After, delays (for timeouts), malformed ratings (or any fixed
  reply, `text`), dropped connections, answers cut at max tokens (`length`: half the answer,
  finish reason `length`), each for the next N matching requests.
- Scripts (`add_script`): fixed replies or HTTP statuses, one per request in turn, for requests
  whose messages contain a given text, whoever the client is (llm-jp-judge's parity recording).
- `latency_s` and `max_concurrency` model a GPU server's fixed service time and batch limit;
  `requests` counts chat requests, and `log` records each one with its `X-Shinsa-Item` and
  `Authorization` headers (any API key is accepted).

Run standalone: `python -m shinsa.devcluster.openai_double --port 8000 --latency 0.05`
(or `python tests/support/openai_server.py`, which re-exports this module for the tests).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET_REASONING = "SECRET-REASONING: weighing the options before answering."
_SCALE = re.compile(r"scale of 1 to (\d+)")
_CRITERION_LINE = re.compile(r"^- ([\w-]+)", re.MULTILINE)
_NEEDLE = re.compile(r"The access code for the (\S+) archive is (\d+)\.")
_NEEDLE_QUESTION = re.compile(r"what is the access code for the (\S+) archive\?")
# The long-context benchmark's Japanese wording, and the passage id that opens the needle's passage.
_NEEDLE_JA = re.compile(r"(\S+) アーカイブのアクセスコードは (\d+) です。")
_NEEDLE_QUESTION_JA = re.compile(r"(\S+) アーカイブのアクセスコードは何ですか")
_PASSAGE_ID = re.compile(r"\[(P\d+)\] $")
_QUALITY = re.compile(r" \[quality ([+-]\d+)\]")


def judge_rating(prompt: str, scale: int, salt: str = "") -> int:
    """The rating the double's judge gives a prompt: stable, spread over 1..scale."""
    digest = hashlib.sha256((salt + prompt).encode()).digest()
    return 1 + int.from_bytes(digest[:4], "big") % scale


def count_tokens(messages: list[dict[str, Any]]) -> int:
    """The double's tokenizer: 4 characters a token (rounded up) per message, 3 tokens of template per
    message and 1 of generation prompt. `/tokenize` and the reported `prompt_tokens` both use it."""
    return sum(-(-len(str(m.get("content", ""))) // 4) + 3 for m in messages) + 1


def model_answer(user_text: str) -> str:
    digest = hashlib.sha256(user_text.encode()).hexdigest()[:8]
    return f"Answer {digest}: a considered reply to '{user_text[:40]}'."


@dataclass
class Fault:
    """Applied to the next `count` requests whose target and item match."""

    kind: str  # "status" | "delay" | "malformed" | "drop" | "length"
    count: int = 1
    target: str = "any"  # "model" | "judge" | "any"
    item: str | None = None  # substring of the X-Shinsa-Item header
    status: int = 500
    retry_after: str | None = None
    delay_s: float = 0.0
    text: str = "I am unsure how to rate this. Rating: [[eleven]]"


@dataclass
class Script:
    """Replies for the requests whose messages contain `contains`, one per request in turn (the last
    repeats): a string is the reply's content, an int an HTTP status (400: a content filter's refusal).
    Keyed by prompt content, not by header, so that clients other than Shinsa (llm-jp-judge) can be
    scripted: the first script whose text occurs anywhere in the messages applies."""

    contains: str
    replies: list[str | int]
    taken: int = 0


@dataclass
class Logged:
    model: str
    target: str
    item: str | None
    stream: bool
    outcome: str
    time: float
    messages: list[dict[str, Any]] = field(default_factory=list)
    authorization: str | None = None
    """The request's Authorization header: which API key the client sent. Never checked, so any key
    (or none) is accepted."""
    params: dict[str, Any] = field(default_factory=dict)
    """The request's other fields (temperature, top_p, seed, max_tokens, ...)."""


class FakeOpenAI:
    def __init__(
        self,
        *,
        model: str = "test-model",
        judge_models: tuple[str, ...] = ("judge-a", "judge-b"),
        latency_s: float = 0.0,
        ttft_s: float = 0.0,
        max_concurrency: int | None = None,
        reasoning: str | None = None,  # None | "field" | "think" | "harmony"
        context_limit_chars: int | None = None,
        judge_salts: dict[str, str] | None = None,
        port: int = 0,
        keep_messages: bool = True,
        answer_quality: dict[str, int] | None = None,
        serve_tokenize: bool = True,
        serve_metrics: bool = True,
        kv_capacity_tokens: int = 100_000,
        max_model_len: int = 131072,
    ) -> None:
        self.model = model
        self.serve_tokenize = serve_tokenize
        self.serve_metrics = serve_metrics
        self.kv_capacity_tokens = kv_capacity_tokens
        self.max_model_len = max_model_len
        self.kv_tokens = 0
        self.tokenize_requests = 0
        self.answer_quality = answer_quality or {}
        self.judge_models = judge_models
        self.latency_s = latency_s
        self.ttft_s = ttft_s
        self.reasoning = reasoning
        self.context_limit_chars = context_limit_chars
        self.judge_salts = judge_salts or {}
        self.keep_messages = keep_messages
        self.faults: list[Fault] = []
        self.scripts: list[Script] = []
        self.log: list[Logged] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.double = self
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------------
    def add_fault(self, kind: str, **options: Any) -> Fault:
        fault = Fault(kind=kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def add_script(self, contains: str, replies: list[str | int]) -> Script:
        script = Script(contains, list(replies))
        with self._lock:
            self.scripts.append(script)
        return script

    @property
    def requests(self) -> int:
        with self._lock:
            return len(self.log)

    def count(self, target: str | None = None, outcome: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for r in self.log
                if (target is None or r.target == target) and (outcome is None or r.outcome == outcome)
            )

    def items_requested(self, target: str | None = None) -> list[str]:
        with self._lock:
            return [r.item for r in self.log if r.item and (target is None or r.target == target)]

    def reset(self) -> None:
        with self._lock:
            self.log.clear()
            self.faults.clear()
            self.scripts.clear()

    # -- behaviour -------------------------------------------------------------------------------
    def _take_script(self, messages: list[dict[str, Any]]) -> str | int | None:
        text = "\n".join(str(m.get("content")) for m in messages)
        with self._lock:
            for script in self.scripts:
                if script.contains in text:
                    reply = script.replies[min(script.taken, len(script.replies) - 1)]
                    script.taken += 1
                    return reply
        return None

    def _take_fault(self, target: str, item: str | None) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.count <= 0 or fault.target not in ("any", target):
                    continue
                if fault.item is not None and (item is None or fault.item not in item):
                    continue
                fault.count -= 1
                return fault
        return None

    @property
    def served_models(self) -> tuple[str, ...]:
        return (self.model, *self.answer_quality, *self.judge_models)

    def target_of(self, model: str) -> str:
        return "judge" if model in self.judge_models else "model"

    def answer(self, model: str, messages: list[dict[str, Any]], seed: int | None = None) -> tuple[str, str]:
        """(content, reasoning) for a request, before faults. A seed varies the answer, as sampling would."""
        user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        if self.target_of(model) == "judge":
            return self._judge_reply(model, user), ""
        question = _NEEDLE_QUESTION.search(user) or _NEEDLE_QUESTION_JA.search(user)
        if question:
            needle = _NEEDLE.search(user) or _NEEDLE_JA.search(user)
            too_long = self.context_limit_chars is not None and len(user) > self.context_limit_chars
            if needle and needle.group(1) == question.group(1) and not too_long:
                cited = _PASSAGE_ID.search(user[max(0, needle.start() - 16) : needle.start()])
                answer = needle.group(2) + (f" [{cited.group(1)}]" if cited else "")
                return answer, SECRET_REASONING if self.reasoning else ""
            return "I could not find it.", ""
        varied = user if seed is None else f"{user}#seed{seed}"
        answer = model_answer(varied)
        if model in self.answer_quality:
            answer += f" [quality {self.answer_quality[model]:+d}]"
        return answer, SECRET_REASONING if self.reasoning else ""

    def metrics_text(self) -> str:
        """Prometheus text as vLLM's `/metrics` has the gauge (names and labels of vLLM v0.33.0's
        vllm/v1/metrics/loggers.py)."""
        with self._lock:
            usage = min(1.0, self.kv_tokens / max(1, self.kv_capacity_tokens))
        return (
            "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n"
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{engine="0",model_name="{self.model}"}} {usage}\n'
        )

    @contextmanager
    def holding_kv(self, tokens: int) -> Iterator[None]:
        with self._lock:
            self.kv_tokens += tokens
        try:
            yield
        finally:
            with self._lock:
                self.kv_tokens -= tokens

    def _judge_reply(self, model: str, prompt: str) -> str:
        # Salted by judge model by default, so that two judges disagree now and then.
        salt = self.judge_salts.get(model, model)
        scale_match = _SCALE.search(prompt)
        scale = int(scale_match.group(1)) if scale_match else 10
        # The marker is rated, not hashed: the same answer with and without it gets the same base
        # rating, so a quality bonus is the only difference between two models' scores.
        marker = _QUALITY.search(prompt)
        bonus = int(marker.group(1)) if marker else 0
        prompt = _QUALITY.sub("", prompt)

        def rating(key_salt: str) -> int:
            return min(scale, max(1, judge_rating(prompt, scale, key_salt) + bonus))

        if "criterion: [[rating]]" in prompt:
            names = _CRITERION_LINE.findall(prompt)
            lines = [f"{name}: [[{rating(salt + name)}]]" for name in names]
            return "Assessment: mostly fine.\n" + "\n".join(lines)
        return f"The answer addresses the question. Rating: [[{rating(salt)}]]"

    def render(self, content: str, reasoning: str) -> tuple[str, str | None]:
        """Put reasoning where a reasoning model of the configured kind would."""
        if not reasoning or self.reasoning is None:
            return content, None
        if self.reasoning == "think":
            return f"<think>{reasoning}</think>\n{content}", None
        if self.reasoning == "harmony":
            return (
                f"<|channel|>analysis<|message|>{reasoning}<|end|>"
                f"<|start|>assistant<|channel|>final<|message|>{content}<|return|>"
            ), None
        return content, reasoning

    @contextmanager
    def slot(self) -> Iterator[None]:
        if self._slots:
            self._slots.acquire()
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
            if self._slots:
                self._slots.release()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    double: FakeOpenAI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up mid-response are expected here; keep test output clean.
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _json(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        double = self.server.double
        if self.path.rstrip("/") == "/v1/models":
            ids = list(double.served_models)
            self._json(200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]})
        elif self.path.rstrip("/") == "/metrics" and double.serve_metrics:
            data = double.metrics_text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        double = self.server.double
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        if self.path.rstrip("/") == "/tokenize" and double.serve_tokenize:
            self._tokenize(body)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        model = str(body.get("model", ""))
        messages = body.get("messages") or []
        item = self.headers.get("X-Shinsa-Item")
        stream = bool(body.get("stream"))
        target = double.target_of(model)
        record = Logged(
            model,
            target,
            item,
            stream,
            "ok",
            time.time(),
            messages if double.keep_messages else [],
            self.headers.get("Authorization"),
            {k: v for k, v in body.items() if k not in ("model", "messages")},
        )
        with double._lock:
            double.log.append(record)

        if model not in double.served_models:
            record.outcome = "404"
            self._json(404, {"error": {"message": f"model {model} not found"}})
            return

        fault = double._take_fault(target, item)
        prompt_tokens = count_tokens(messages)
        held = prompt_tokens if target == "model" else 0
        with double.slot(), double.holding_kv(held):
            if fault and fault.kind == "delay":
                time.sleep(fault.delay_s)
            if double.latency_s:
                time.sleep(double.latency_s)
            if fault and fault.kind == "status":
                record.outcome = str(fault.status)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                self._json(fault.status, {"error": {"message": "injected failure"}}, headers)
                return
            if fault and fault.kind == "drop":
                record.outcome = "dropped"
                self.close_connection = True
                self.wfile.flush()
                self.connection.close()
                return
            scripted = double._take_script(messages)
            if isinstance(scripted, int):
                record.outcome = str(scripted)
                error = {"message": "scripted refusal", "type": "invalid_request_error"}
                self._json(scripted, {"error": {**error, "code": "content_filter"}})
                return
            content, reasoning = double.answer(model, messages, body.get("seed"))
            if scripted is not None:
                record.outcome, content, reasoning = "scripted", scripted, ""
            if fault and fault.kind == "malformed":
                record.outcome = "malformed"
                content = fault.text
            finish_reason = "stop"
            if fault and fault.kind == "length":
                record.outcome = "length"
                content, finish_reason = content[: max(1, len(content) // 2)], "length"
            content, reasoning_field = double.render(content, reasoning)
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(content) // 4 + 1,
                "total_tokens": prompt_tokens + len(content) // 4 + 1,
            }
            if stream:
                self._stream(model, content, reasoning_field, usage, double.ttft_s, finish_reason)
                return
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if reasoning_field:
                message["reasoning_content"] = reasoning_field
            self._json(
                200,
                {
                    "id": "chatcmpl-test",
                    "object": "chat.completion",
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
                    "usage": usage,
                },
            )

    def _tokenize(self, body: dict[str, Any]) -> None:
        """vLLM's chat form of `/tokenize`: `count`, `max_model_len`, `tokens` (here stand-in ids)."""
        double = self.server.double
        with double._lock:
            double.tokenize_requests += 1
        messages = body.get("messages")
        if not isinstance(messages, list):
            self._json(400, {"error": {"message": "messages: a list is required", "code": 400}})
            return
        count = count_tokens(messages)
        self._json(200, {"count": count, "max_model_len": double.max_model_len, "tokens": [0] * count})

    def _stream(
        self,
        model: str,
        content: str,
        reasoning: str | None,
        usage: dict[str, int],
        ttft_s: float,
        finish_reason: str = "stop",
    ) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if ttft_s:
            time.sleep(ttft_s)

        def send(chunk: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()

        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "model": model}
        if reasoning:
            send({**base, "choices": [{"index": 0, "delta": {"reasoning_content": reasoning}}]})
        for start in range(0, max(1, len(content)), 16):
            delta = {"content": content[start : start + 16]}
            send({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
        send({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish_reason}]})
        send({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--max-concurrency", type=int, default=None)
    parser.add_argument("--model", default="test-model")
    args = parser.parse_args()
    double = FakeOpenAI(
        model=args.model, latency_s=args.latency, max_concurrency=args.max_concurrency, port=args.port
    )
    print(f"serving {double.url} (model {args.model}, judges {', '.join(double.judge_models)})", flush=True)
    double._server.serve_forever()


if __name__ == "__main__":
    main()
