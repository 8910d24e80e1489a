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
    OWNED_VLLM_FLAGS,
    PlanError,
    PlanRequest,
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
