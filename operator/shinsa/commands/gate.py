"""`shinsa gate`: apply regression gates to a candidate's results, against a baseline's.

Exit codes: 0 Passed; 1 Failed; 3 Inconclusive; 2 bad input (unreadable results or policy).
"""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shinsa.api import GateVerdict
from shinsa.api.gates import GatePolicy
from shinsa.evaluation.outputs import load_results
from shinsa.evaluation.results import ITEMS_FILE, SCORES_FILE, ResultsError, RunResults
from shinsa.gates import DEFAULT_DRAWS, GateDecision, evaluate_gates


class GateExitCode(enum.IntEnum):
    """The exit status of `shinsa gate`, one per decision, so a pipeline step can branch on it."""

    PASSED = 0
    FAILED = 1
    BAD_INPUT = 2
    """Unreadable results or an invalid policy; nothing was decided. (Also click's usage errors.)"""
    INCONCLUSIVE = 3


EXIT_CODES = {
    GateVerdict.PASSED: GateExitCode.PASSED,
    GateVerdict.FAILED: GateExitCode.FAILED,
    GateVerdict.INCONCLUSIVE: GateExitCode.INCONCLUSIVE,
}


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


class InputError(Exception):
    """A results file or policy that cannot be used; the message names the file and the field."""


HELP = "\n\n".join(
    (
        "Apply regression gates: may CANDIDATE's results replace BASELINE's?",
        "CANDIDATE and BASELINE are results of `shinsa eval run`: a results directory, its "
        "scores.json, or an items.jsonl (which does not record the dataset and judge, so "
        "comparability cannot be checked). POLICY is a YAML file with what an EvalRun's spec.gates "
        "holds (or a whole EvalRun manifest): confidence (0.95), minPairs (20) and rules. Each rule "
        "names a benchmark and optionally a metric: score (the default), category/<c>, turn/<t>, "
        "judge/<name>, criterion/<name>, <length>/accuracy.",
        "\n".join(
            (
                "minimum {threshold}: mean >= threshold passes, else fails.",
                "nonInferiority {margin}: interval of candidate - baseline with",
                "    low >= -margin passes, high < -margin fails, else inconclusive.",
                "superiority: interval low > 0 passes, high <= 0 fails, else inconclusive.",
                "maxErrorRate {limit}, benchmark optional (else the whole run):",
                "    rate <= limit passes, else inconclusive (not evidence either way).",
                "maxViolationRate {limit}, benchmark answer-carefully:",
                "    rate <= limit passes, else fails.",
            )
        ),
        "Comparisons pair the runs by question and turn, averaged over repeats, and bootstrap whole "
        "questions. A missing benchmark, metric or baseline, fewer than minPairs paired questions, a "
        "different dataset, judge model or judge prompts, or an Incomplete run make a rule "
        "inconclusive. The decision is Failed if any rule failed, else Inconclusive if any rule was, "
        "else Passed.",
        "Exit codes: 0 Passed, 1 Failed, 3 Inconclusive, 2 bad input (unreadable results or policy).",
    )
)


def _field_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(policy)"


def load_policy(path: Path) -> GatePolicy:
    """A GatePolicy from YAML: the spec.gates object itself, or an EvalRun manifest holding one."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not YAML: {exc}") from None
    prefix = ""
    if isinstance(data, dict) and data.get("kind") == "EvalRun":
        gates = (data.get("spec") or {}).get("gates")
        if gates is None:
            raise InputError(f"{path}: the EvalRun has no spec.gates")
        data, prefix = gates, "spec.gates."
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping with rules (what spec.gates holds)")
    try:
        return GatePolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{prefix}{_field_path(err['loc'])}: {err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise InputError(f"{path}: {problems}") from None


def load_run(path: Path) -> RunResults:
    """Results from a directory (its scores.json, else its items.jsonl), a scores.json or an items.jsonl."""
    if path.is_dir() and not (path / SCORES_FILE).exists() and (path / ITEMS_FILE).exists():
        path = path / ITEMS_FILE
    try:
        return load_results(path)
    except ResultsError as exc:
        raise InputError(str(exc)) from None


def _fmt(value: float | None) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "-"


_STYLE = {GateVerdict.PASSED: "green", GateVerdict.FAILED: "red", GateVerdict.INCONCLUSIVE: "yellow"}


def decision_table(decision: GateDecision, candidate: str, baseline: str | None) -> Table:
    title = f"Gates: {candidate}" + (f" vs {baseline}" if baseline else " (no baseline)")
    table = Table(title=title, caption=decision.summary(), show_lines=False)
    for column in ("#", "rule", "benchmark / metric", "verdict", "observed", "bound", "interval", "pairs"):
        table.add_column(column, justify="right" if column in ("#", "observed", "bound", "pairs") else "left")
    table.add_column("why", overflow="fold")
    for r in decision.rules:
        target = " / ".join(x for x in (r.benchmark or "(run)", r.metric) if x)
        interval = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if r.ci_low is not None else "-"
        table.add_row(
            str(r.rule),
            r.type.value,
            target,
            Text(r.verdict.value, style=_STYLE[r.verdict]),
            _fmt(r.observed),
            _fmt(r.bound),
            interval,
            str(r.n_pairs) if r.n_pairs is not None else "-",
            r.explanation,
        )
    return table


def decision_json(decision: GateDecision) -> dict[str, Any]:
    data: dict[str, Any] = decision.model_dump(mode="json")
    return data


def gate(
    candidate: Annotated[
        Path,
        typer.Option(
            "--candidate", "-c", help="The candidate's results (directory, scores.json, items.jsonl)."
        ),
    ],
    policy: Annotated[Path, typer.Option("--policy", "-p", help="YAML with what spec.gates holds.")],
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline", "-b", help="The baseline's results; without it comparative rules are inconclusive."
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the bootstrap: the same inputs and seed, the same decision.")
    ] = 0,
    draws: Annotated[int, typer.Option(min=100, help="Bootstrap draws per interval.")] = DEFAULT_DRAWS,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="table or json.")
    ] = OutputFormat.TABLE,
) -> None:
    stderr = Console(stderr=True)
    try:
        gate_policy = load_policy(policy)
        candidate_run = load_run(candidate)
        baseline_run = load_run(baseline) if baseline is not None else None
    except InputError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(GateExitCode.BAD_INPUT) from None

    decision = evaluate_gates(gate_policy, candidate_run, baseline_run, seed=seed, draws=draws)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(decision_json(decision), indent=2))
    else:
        console = Console()
        console.print(
            decision_table(
                decision,
                candidate_run.model.served_name,
                baseline_run.model.served_name if baseline_run else None,
            )
        )
        style = _STYLE[decision.decision]
        console.print(Text(f"Decision: {decision.decision.value}", style=f"bold {style}"))
    raise typer.Exit(EXIT_CODES[decision.decision])
