"""Reading a `vllm serve` command line as vLLM's parser does, for tests of what the operator runs."""

from __future__ import annotations

from collections.abc import Sequence


def flag_value(args: Sequence[str], flag: str) -> str:
    """The value after `flag`."""
    return args[list(args).index(flag) + 1]


def served_model(args: Sequence[str]) -> str:
    """`vllm serve`'s positional model argument: the first argument after `serve` when the command
    is included, else the first argument."""
    listed = list(args)
    start = listed.index("serve") + 1 if "serve" in listed else 0
    model = listed[start]
    assert not model.startswith("-"), f"no positional model argument in {listed}"
    return model
