"""`shinsa --help` as a process: the top-level listing imports none of the command groups, so it
costs what any Typer CLI's help does (timed in benchmarks/bench_eval_wall.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e

_PROBE = """
import json, sys
import shinsa.cli
try:
    shinsa.cli.app(sys.argv[1:])
except SystemExit:
    pass
heavy = ("shinsa.commands", "shinsa.api", "shinsa.evaluation", "kubernetes", "mlflow", "numpy", "pydantic")
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith(heavy))))
"""


def _imported(*argv: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_the_top_level_help_imports_no_command() -> None:
    assert _imported("--help") == []


def test_a_groups_help_imports_that_group_only() -> None:
    imported = _imported("promote", "--help")
    assert "shinsa.commands.promote" in imported
    assert not [m for m in imported if m.startswith("shinsa.commands.") and m != "shinsa.commands.promote"]


def test_the_evaluators_help_imports_no_engine() -> None:
    # `shinsa eval run --help` runs in every evaluation image's smoke test: the engine stays unloaded.
    # (Typer itself imports pydantic to type the options.)
    assert [m for m in _imported("eval", "run", "--help") if m.startswith("shinsa")] == [
        "shinsa.commands",
        "shinsa.commands.compare",  # `eval compare`'s options: typer only, its core loads when it runs
        "shinsa.commands.eval",
        "shinsa.evaluation",
        "shinsa.evaluation.phase",
    ]
