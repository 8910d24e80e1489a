"""What Shinsa puts on a `vllm serve` command line exists, with that spelling, in the release it pins.

`operator/shinsa/planner/vllm_flags.json` is that release's parser, read from its wheel by
`tools/vllm_flags.py`; these tests fail when the image pin and the file disagree, or when the
planner, render or the owned-flag list name an option the release does not have."""

from __future__ import annotations

import itertools

import pytest

from shinsa.api import DEFAULT_VLLM_IMAGE
from shinsa.planner import (
    GPU_PROFILES,
    MODEL_PRESETS,
    OWNED_VLLM_ENV,
    OWNED_VLLM_FLAGS,
    UNPLANNED_VLLM_FLAGS,
    PlanError,
    PlanRequest,
    extra_args_problem,
    pinned_release,
    plan,
)
from shinsa.render import RENDER_OWNED_FLAGS
from shinsa.render.model_source import resolve_model_source

pytestmark = pytest.mark.unit


def _options(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("-") and not a.lstrip("-").isdigit()}


def test_the_flags_file_is_the_release_the_image_pins() -> None:
    assert DEFAULT_VLLM_IMAGE.rsplit(":v", 1)[1] == pinned_release().version


def test_every_owned_flag_is_an_option_of_the_pinned_release() -> None:
    accepted = pinned_release().flags
    assert sorted(OWNED_VLLM_FLAGS - accepted) == []
    assert sorted(RENDER_OWNED_FLAGS - accepted) == []


def test_every_flag_the_planner_emits_is_an_option_of_the_pinned_release() -> None:
    accepted = pinned_release().flags
    emitted: set[str] = set()
    planned = 0
    for preset, gpu, backend in itertools.product(
        MODEL_PRESETS, GPU_PROFILES, ("deployment", "leaderworkerset")
    ):
        request = PlanRequest(
            architecture=preset.architecture,
            gpu=gpu,
            model=preset.hf_repo_id,
            served_name=preset.name,
            backend=backend,
            reasoning_parser="qwen3",
            tool_call_parser="hermes",
            gpus_per_node=2 if backend == "leaderworkerset" else 8,
        )
        try:
            result = plan(request)
        except PlanError:
            continue  # a model that fits no layout on that GPU
        planned += 1
        for args in (result.vllm_args, result.leader_args, result.worker_args):
            emitted |= _options(list(args))
    assert planned > 10 and "--data-parallel-address" in emitted and "--headless" in emitted
    assert sorted(emitted - accepted) == []


def test_the_loader_flags_of_every_model_source_are_options_of_the_pinned_release() -> None:
    accepted = pinned_release().flags
    for uri in ("hf://org/model", "s3://bucket/model", "pvc://claim/model"):
        assert sorted(_options(list(resolve_model_source(uri).args)) - accepted) == [], uri


def test_the_release_knows_what_only_the_leader_may_get() -> None:
    release = pinned_release()
    # vLLM refuses these with --headless (vllm/entrypoints/cli/serve.py, run_headless).
    assert {"--api-server-count", "--data-parallel-hybrid-lb"} <= release.leader_only
    assert {"--api-key", "--port", "--tool-call-parser"} <= release.leader_only
    # Engine options reach every rank.
    assert not {"--max-num-seqs", "--reasoning-parser", "--enable-prefix-caching"} & release.leader_only


def test_every_unplanned_flag_and_owned_variable_exists_in_the_pinned_release() -> None:
    release = pinned_release()
    assert sorted(set(UNPLANNED_VLLM_FLAGS) - release.flags) == []
    assert sorted(OWNED_VLLM_ENV - release.env) == []


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        # argparse abbreviations, which vLLM's parser keeps: a unique prefix is that option.
        (["--max-model=4096"], "--max-model=4096, which Shinsa sets from the plan"),
        (["--tensor-parallel", "2"], "--tensor-parallel, which Shinsa sets from the plan"),
        # The dotted JSON form of an option is that option.
        (["--hf-overrides.rope_scaling.factor", "4"], "--hf-overrides.rope_scaling.factor, which Shinsa"),
        (["--config", "/etc/vllm.yaml"], "--config, which is not planned: a config file"),
        (["--kv-cache-memory-bytes=8g"], "not planned: the KV cache is planned"),
        (["--enable-eplb"], "not planned: expert load balancing"),
        (["--speculative-config", "{}"], "not planned: a draft model"),
        (["--max-num-seq", "8", "--no-such-option"], "--no-such-option, which this vLLM release does not"),
        # Ambiguous: `--data-parallel-s` starts -size, -size-local and -start-rank.
        (["--data-parallel-s", "2"], "--data-parallel-s, which this vLLM release does not accept"),
    ],
)  # fmt: skip
def test_owned_and_unplanned_options_cannot_be_slipped_in(extra: list[str], says: str) -> None:
    problem = extra_args_problem(extra, [], pinned_release().flags)
    assert problem is not None and says in problem, problem


def test_variables_that_set_the_data_parallel_layout_are_refused() -> None:
    problem = extra_args_problem([], ["VLLM_DP_SIZE", "HF_TOKEN"], pinned_release().flags)
    assert problem == (
        "spec.serving.env sets VLLM_DP_SIZE, which would override the data-parallel layout Shinsa plans"
    )


def test_the_options_users_tune_pass() -> None:
    allowed = [
        "--enable-prefix-caching",
        "--max-num-seqs",
        "64",
        "--max_num_batched_tokens=8192",
        "--api-key",
        "k",
    ]
    assert extra_args_problem(allowed, ["HF_TOKEN"], pinned_release().flags) is None
    # An image Shinsa has no option list of: only the owned spellings are checked.
    assert extra_args_problem(["--some-future-option"], [], frozenset()) is None
