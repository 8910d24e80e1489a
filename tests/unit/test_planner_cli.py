"""`shinsa plan` prints a plan as a table or JSON, and fails with a one-line error naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shinsa.commands.plan import plan

pytestmark = pytest.mark.unit

CONFIGS = Path(__file__).parent / "fixtures" / "configs"

app = typer.Typer()
app.command()(plan)
runner = CliRunner()


def test_table_output_shows_layout_command_and_reasons() -> None:
    result = runner.invoke(app, ["llm-jp-4-8b", "--gpu", "H100-80GB", "--max-model-len", "65536"])
    assert result.exit_code == 0, result.output
    assert "TP1" in result.stdout
    assert "vllm serve" in result.stdout
    assert "Why:" in result.stdout


def test_json_output_is_the_camel_case_plan() -> None:
    args = ["llm-jp-4-32b-a3b", "--gpu", "H100-80GB", "--target-concurrency", "4", "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["gpusPerReplica"] >= 2
    assert "--enable-expert-parallel" in document["vllmArgs"]


def test_a_config_json_path_is_a_model() -> None:
    result = runner.invoke(app, [str(CONFIGS / "mistral-7b" / "config.json"), "--gpu", "H100", "-o", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["layout"] == "TP1"
    model = document["vllmArgs"][0]  # vllm serve's positional model argument
    assert model == str(CONFIGS / "mistral-7b")


def test_pinning_and_backend_options_reach_the_planner() -> None:
    args = [
        "llm-jp-4-32b-a3b",
        "--gpu",
        "L4",
        "--gpus-per-node",
        "2",
        "--backend",
        "leaderworkerset",
        "-o",
        "json",
    ]
    document = json.loads(runner.invoke(app, args).stdout)
    assert document["nodesPerReplica"] > 1
    assert "--headless" in document["workerArgs"]


def test_yarn_factor_option() -> None:
    args = ["qwen3-8b", "--gpu", "H100", "--max-model-len", "131072", "--yarn-factor", "4", "-o", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "--hf-overrides" in json.loads(result.stdout)["vllmArgs"]


@pytest.mark.parametrize(
    ("args", "option", "code"),
    [
        (["no-such-model", "--gpu", "H100"], "MODEL", 2),
        (["qwen3-8b", "--gpu", "B9000"], "--gpu", 2),
        (["qwen3-8b", "--gpu", "H100", "--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization", 2),
        (["qwen3-8b", "--gpu", "H100", "--backend", "statefulset"], "--backend", 2),
        (["qwen3-8b", "--gpu", "H100", "--max-model-len", "65536"], "--max-model-len", 1),
        (["qwen3-8b", "--gpu", "H100", "--yarn-factor", "0.5"], "--yarn-factor", 2),
        (["qwen3-8b", "--gpu", "H100", "--tensor", "3"], "--tensor", 1),
        (["qwen3-8b", "--gpu", "H100", "-o", "yaml"], "--output", 2),
        (["llm-jp-4-32b-a3b", "--gpu", "24GiB", "--gpus-per-node", "1"], "--backend", 1),
    ],
)
def test_errors_name_the_option_and_show_no_traceback(args: list[str], option: str, code: int) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert f"Error: {option}:" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_an_impossible_request_prints_what_would_fit() -> None:
    result = runner.invoke(app, ["llm-jp-4-32b-a3b", "--gpu", "L4", "--gpus-per-node", "1"])
    assert result.exit_code == 1
    assert "What would fit" in result.stderr


def test_thinking_models_are_planned_only_with_remote_code_opted_into_at_a_pinned_commit() -> None:
    refused = runner.invoke(app, ["llm-jp-4-8b-thinking", "--gpu", "H100", "-o", "json"])
    assert refused.exit_code == 1
    assert "--trust-remote-code" in refused.stderr and "ships its own tokenizer code" in refused.stderr
    commit = "0123456789abcdef0123456789abcdef01234567"
    result = runner.invoke(
        app,
        ["llm-jp-4-8b-thinking", "--gpu", "H100", "--trust-remote-code", "--revision", commit, "-o", "json"],
    )
    assert result.exit_code == 0, result.output
    assert "--trust-remote-code" in json.loads(result.stdout)["vllmArgs"]


def test_a_gpu_count_fills_the_sizes_left_unpinned_and_a_contradiction_names_every_option() -> None:
    result = runner.invoke(app, ["qwen3-8b", "--gpu", "H100", "--gpus", "4", "--tensor", "1", "-o", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["gpusPerReplica"], document["dataParallel"]) == (4, 4)

    result = runner.invoke(app, ["qwen3-8b", "--gpu", "H100", "--gpus", "4", "--tensor", "1", "--data", "1"])
    assert result.exit_code == 1
    assert "--gpus, --tensor, --data:" in result.stderr
