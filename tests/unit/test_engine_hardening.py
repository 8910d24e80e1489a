"""The evaluation engine's defences against hostile input (issue 12, the evaluation engine): secrets
masked, URLs with keys refused, bad bytes in datasets, markup and escape sequences in user data,
oversized replies."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from rich.console import Console

from shinsa.api.eval_run import NO_URI_CREDENTIALS
from shinsa.commands.eval import run_command, summary_table
from shinsa.evaluation.client import ChatClient, RequestFailed
from shinsa.evaluation.config import (
    ConfigError,
    DatasetSource,
    Sampling,
    load_config,
    parse_config,
    redact_userinfo,
)
from shinsa.evaluation.datasets import DatasetError, load_corpus, load_questions
from shinsa.evaluation.masking import MASK, MaskedReporter, SecretMask, masked
from shinsa.evaluation.progress import JsonLinesReporter, RichReporter
from shinsa.evaluation.results import ExitCode
from tests.support.results import items_of, results_of

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


# -- URLs -------------------------------------------------------------------------------------------

KEY = "sk-in-the-url-0123456789"


def _refusal(changes: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as raised:
        parse_config(spec(**changes))
    return str(raised.value)


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        ({"model": {"endpoint": f"http://model:8000/v1?api_key={KEY}", "servedName": "m"}},
         "model.endpoint", "query string"),
        ({"model": {"endpoint": f"http://model:8000/v1#{KEY}", "servedName": "m"}},
         "model.endpoint", "query string"),
        ({"judges": [{"name": "a", "endpoint": f"https://j/v1?key={KEY}", "model": "m"}]},
         "judges[0].endpoint", "query string"),
        ({"mlflow": {"trackingUri": f"https://mlflow.example/?token={KEY}"}}, "mlflow.trackingUri",
         "query string"),
        # A `/` in the password ends the authority early: the host is "u", the "port" the password's
        # first half, and the `@` lands in the path.
        ({"model": {"endpoint": f"http://u:{KEY[:6]}/{KEY[6:]}@model:8000/v1", "servedName": "m"}},
         "model.endpoint", "credentials"),
        ({"judges": [{"name": "a", "endpoint": f"https://{KEY[:6]}/{KEY[6:]}@j/v1", "model": "m"}]},
         "judges[0].endpoint", "credentials"),
        ({"mlflow": {"trackingUri": f"https://u:{KEY[:6]}/{KEY[6:]}@mlflow.example"}},
         "mlflow.trackingUri", "credentials"),
        ({"mlflow": {"trackingUri": f"postgresql://u:{KEY[:6]}/{KEY[6:]}@db/mlflow"}},
         "mlflow.trackingUri", "credentials"),
        ({"mlflow": {"trackingUri": f"https://@mlflow.example/{KEY}"}}, "mlflow.trackingUri", "credentials"),
        ({"model": {"endpoint": f"http://model:{KEY}/v1", "servedName": "m"}}, "model.endpoint", "port"),
    ],
)  # fmt: skip
def test_keys_in_urls_are_config_errors_naming_the_field_without_echoing_them(
    changes: dict[str, Any], field: str, says: str
) -> None:
    message = _refusal(changes)
    assert message.startswith(field + ":") and says in message
    assert KEY not in message and KEY[6:] not in message and KEY[:6] not in message


def test_urls_are_checked_by_parsing_not_by_pattern() -> None:
    accepted = parse_config(
        spec(
            model={"endpoint": "http://[::1]:8000/v1", "servedName": "m"},
            mlflow={"trackingUri": "databricks://scope:prefix"},
        )
    )
    assert accepted.spec.model.endpoint == "http://[::1]:8000/v1"
    assert parse_config(spec(mlflow={"trackingUri": "sqlite:///tmp/a@b/mlflow.db"})).spec.mlflow.tracking_uri
    assert redact_userinfo("https://u:pa/ss@host:5000/x") == "https://***@host:5000/x"
    assert redact_userinfo("postgresql://u:p@db/mlflow") == "postgresql://***@db/mlflow"


@pytest.mark.parametrize(
    "uri",
    [
        "https://u:p@mlflow/x",
        "https://u:p/w@mlflow/x",
        "https://@mlflow",
        "databricks://scope:prefix",
        "file:///tmp/a@b/mlruns",
        "sqlite:///a@b.db",
        "http://mlflow:5000/x?q=@",
        "//u:p@host/x",
    ],
)
def test_the_tracking_uri_userinfo_rule_of_the_crd_agrees_with_urllib(uri: str) -> None:
    # Python parses with urlsplit; the API server has only the CEL regex (RE2, which agrees with
    # Python's re on this one).
    import re

    pattern = NO_URI_CREDENTIALS.rule.removeprefix("!self.matches('").removesuffix("')")
    assert bool(re.search(pattern, uri)) == (not NO_URI_CREDENTIALS.holds(uri))


# -- datasets ---------------------------------------------------------------------------------------

LICENSED = "Licensed question text that must not be printed"


def _bad_dataset(root: Path) -> Path:
    lines = [
        json.dumps({"question_id": "q1", "category": "writing", "turns": [LICENSED + " one"]}),
        json.dumps({"question_id": "q2", "category": "writing", "turns": [LICENSED + " two"]}),
    ]
    data = (lines[0] + "\n").encode() + lines[1].encode().replace(b"two", b"tw\xff") + b"\n"
    root.mkdir(parents=True, exist_ok=True)
    (root / "question.jsonl").write_bytes(data)
    return root


def test_a_byte_that_is_not_utf8_is_a_dataset_error_naming_file_line_and_offset(tmp_path: Path) -> None:
    root = _bad_dataset(tmp_path / "mt-bench")
    offset = (root / "question.jsonl").read_bytes().index(b"\xff")
    with pytest.raises(DatasetError) as raised:
        load_questions(str(root), DatasetSource(uri=str(root)), tmp_path / "cache")
    assert str(raised.value) == f"{root / 'question.jsonl'}:2: not UTF-8 (byte 0xff at byte offset {offset})"


def test_a_json_array_or_corpus_that_is_not_utf8_is_a_dataset_error(tmp_path: Path) -> None:
    (tmp_path / "test.json").write_bytes(b'[{"ID": "1",\n "text": "caf\xe9"}]')
    with pytest.raises(DatasetError, match=r"test\.json:2: not UTF-8 \(byte 0xe9 at byte offset 26\)"):
        load_questions(str(tmp_path), DatasetSource(uri=str(tmp_path), questionFile="test.json"), tmp_path)
    (tmp_path / "corpus.txt").write_bytes(b"ok\n\x80")
    with pytest.raises(DatasetError, match=r"corpus\.txt:2: not UTF-8 \(byte 0x80 at byte offset 3\)"):
        load_corpus(str(tmp_path), DatasetSource(uri=str(tmp_path)), tmp_path)


def test_the_cli_exits_2_without_traceback_or_dataset_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _bad_dataset(tmp_path / "mt-bench")
    config = tmp_path / "eval.yaml"
    # Nothing listens on the endpoints: datasets are read before any request.
    unreachable = "http://127.0.0.1:9/v1"
    run_spec = spec(
        model={"endpoint": unreachable, "servedName": "m"},
        judges=[{"name": "judge-a", "endpoint": unreachable, "model": "gpt"}],
        benchmarks=[{"name": "mt-bench", "dataset": {"uri": str(root)}}],
    )
    config.write_text(yaml.safe_dump({**run_spec, "engine": {"outputDir": str(tmp_path / "out")}}))
    assert run_command(config, None, True, json_logs=True) == ExitCode.CONFIG
    captured = capsys.readouterr()
    events = [json.loads(line) for line in captured.err.splitlines()]
    assert [e["event"] for e in events] == ["config error"]
    assert "question.jsonl:2: not UTF-8" in events[0]["error"]
    assert LICENSED not in captured.out + captured.err and "Traceback" not in captured.err


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_bytes(b"model:\n  endpoint: http://m/v1\xff\n")
    with pytest.raises(ConfigError, match=r"--config: .*eval\.yaml is not UTF-8 \(byte offset 30\)"):
        load_config(path)


# -- terminal output --------------------------------------------------------------------------------

HOSTILE_ID = "[/x] [bold red]boom"
ESCAPE_ID = "q\x1b[2J\x1b]0;pwned\x07\rok"


def _terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    # No colours of its own, so that any escape sequence in the output came from the data.
    return Console(file=out, force_terminal=True, color_system=None, width=300, log_path=False), out


def test_user_data_in_log_lines_prints_as_is_and_controls_do_not_reach_the_terminal() -> None:
    console, out = _terminal()
    reporter = RichReporter(console)
    try:
        reporter.event(
            "config error", error=f"data/[draft]/question.jsonl:3: duplicate question_id {HOSTILE_ID}"
        )
        reporter.event("config error", error=f"duplicate question_id {ESCAPE_ID}")
        reporter.event(":warning: [bold]not markup[/bold]", benchmark="mt-bench")
    finally:
        reporter.close()
    text = out.getvalue()
    assert f"data/[draft]/question.jsonl:3: duplicate question_id {HOSTILE_ID}" in text
    assert "duplicate question_id q\\x1b[2J\\x1b]0;pwned\\x07\\rok" in text
    # The progress bar's own line redraws use CR and cursor codes; the data's must not.
    assert "\x1b[2J" not in text and "\x1b]0;" not in text and "\x07" not in text and "\rok" not in text
    assert ":warning: [bold]not markup[/bold]" in text


def test_the_summary_table_prints_a_hostile_model_name_as_is() -> None:
    scores = {"q0": [[7.0]], "q1": [[6.0]]}
    results = results_of(items_of("mt-bench", scores), served_name=HOSTILE_ID + ESCAPE_ID)
    console, out = _terminal()
    console.print(summary_table(results))
    assert HOSTILE_ID in out.getvalue() and "\\x1b[2J" in out.getvalue() and "\x1b[2J" not in out.getvalue()


# -- reply size -------------------------------------------------------------------------------------


def _client(response: httpx.Response, cap: int) -> tuple[ChatClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return response

    chat = ChatClient(
        "http://model.test/v1",
        "m",
        transport=httpx.MockTransport(handler),
        retries=3,
        backoff_s=0.01,
        max_response_bytes=cap,
    )
    return chat, seen


def _reply(content: str, reasoning: str = "") -> httpx.Response:
    message = {"role": "assistant", "content": content, "reasoning_content": reasoning}
    return httpx.Response(200, json={"choices": [{"message": message, "finish_reason": "stop"}]})


def _streamed(content: str) -> httpx.Response:
    chunks = [
        {"choices": [{"delta": {"content": content[i : i + 100]}}]} for i in range(0, len(content), 100)
    ]
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})


@pytest.mark.parametrize(
    "response",
    [
        _reply("x" * 5000),
        _reply("x" * 3000, reasoning="y" * 2000),
        _reply("あ" * 1500),  # 4,500 bytes of UTF-8 in 1,500 characters
        _streamed("x" * 5000),
        # A body far past the cap is not even read whole.
        httpx.Response(200, content=b"{" + b" " * 10_000_000 + b"}"),
    ],
    ids=["answer", "answer-and-reasoning", "multibyte", "streamed", "huge-body"],
)
def test_a_reply_over_the_cap_fails_the_request_without_retrying(response: httpx.Response) -> None:
    chat, seen = _client(response, cap=4096)
    stream = response.headers.get("content-type") == "text/event-stream"
    with pytest.raises(RequestFailed) as raised:
        asyncio.run(chat.chat([{"role": "user", "content": "hi"}], Sampling(), stream=stream))
    assert "reply larger than maxResponseBytes (4096 bytes)" in str(raised.value) and len(seen) == 1


def test_a_reply_within_the_cap_is_kept_whole() -> None:
    chat, _ = _client(_reply("x" * 4000), cap=4096)
    assert asyncio.run(chat.chat([{"role": "user", "content": "hi"}], Sampling())).answer == "x" * 4000


def test_the_cap_is_a_spec_option_with_a_default() -> None:
    assert parse_config(spec()).spec.max_response_bytes == 256 * 1024
    assert parse_config(spec(maxResponseBytes=4096)).spec.max_response_bytes == 4096
    with pytest.raises(ConfigError, match="maxResponseBytes"):
        parse_config(spec(maxResponseBytes=10))
