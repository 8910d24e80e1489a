"""`shinsa eval`: run the evaluation engine locally or inside an EvalRun Job.

Exit codes: 0 succeeded; 1 crashed or an endpoint was unreachable; 2 configuration or dataset error
(nothing was requested); 3 incomplete (error rate above maxErrorRate; results are still written).
"""

from __future__ import annotations

import asyncio
import math
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shinsa.evaluation import EXIT_CONFIG, EXIT_CRASH
from shinsa.evaluation.client import EndpointUnreachable
from shinsa.evaluation.config import ConfigError, load_config
from shinsa.evaluation.datasets import DatasetError
from shinsa.evaluation.progress import Reporter, make_reporter

app = typer.Typer(
    help="Evaluate a served model: generate answers, have judges score them, report means, spread and CIs.",
    no_args_is_help=True,
)


@app.callback()
def _group() -> None:
    """Evaluation commands."""


def _fmt(value: Any, digits: int = 3) -> str:
    if isinstance(value, int | float) and math.isfinite(value):
        return f"{value:.{digits}f}"
    return "-"


def summary_table(scores: dict[str, Any]) -> Table:
    table = Table(title=f"Evaluation: {scores['model']['served_name']} ({scores['status']})")
    for column in ("benchmark", "judge", "mean", "std", "95% CI", "questions", "errors"):
        table.add_column(column, justify="left" if column in ("benchmark", "judge") else "right")
    for name, summary in scores["benchmarks"].items():
        for judge, sub in summary["judges"].items():
            table.add_row(
                name,
                judge + (" *" if judge == summary["primary_judge"] and len(summary["judges"]) > 1 else ""),
                _fmt(sub["mean"]),
                _fmt(sub["std"]),
                f"[{_fmt(sub['ci_low'])}, {_fmt(sub['ci_high'])}]",
                str(sub["n_questions"]),
                f"{sub['n_errors']}/{sub['n_items']}",
            )
    return table


def run_command(config_path: Path, output: Path | None, resume: bool, json_logs: bool | None) -> int:
    # Every message goes through the reporter, so a Job's log stays one JSON object per line.
    reporter = make_reporter(json_logs)
    try:
        return _run(reporter, config_path, output, resume)
    finally:
        reporter.close()


def _run(reporter: Reporter, config_path: Path, output: Path | None, resume: bool) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        reporter.event("config error", level="error", error=str(exc))
        return EXIT_CONFIG

    from shinsa.evaluation.runner import run_evaluation

    for key in config.unknown_keys():
        reporter.event("spec field not used by the evaluation engine", level="warning", field=f"spec.{key}")
    try:
        result = asyncio.run(run_evaluation(config, output_dir=output, resume=resume, reporter=reporter))
    except (ConfigError, DatasetError) as exc:
        reporter.event("config error", level="error", error=str(exc))
        return EXIT_CONFIG
    except EndpointUnreachable as exc:
        reporter.event("endpoint unreachable", level="error", error=str(exc))
        return EXIT_CRASH
    except KeyboardInterrupt:
        reporter.event("interrupted; rerun with --resume to continue from the checkpoint", level="warning")
        return EXIT_CRASH
    except Exception as exc:
        reporter.event("crashed", level="error", error=repr(exc), traceback=traceback.format_exc())
        return EXIT_CRASH
    reporter.close()
    Console(soft_wrap=True).print(summary_table(result.scores))
    print(f"status: {result.status}; results in {result.output_dir}")
    return result.exit_code


@app.command()
def run(
    config: Annotated[Path, typer.Option("--config", "-c", help="EvalRun manifest or its spec (YAML).")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Results directory (overrides output.dir).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Reuse finished work from the checkpoint.")
    ] = True,
    json_logs: Annotated[
        bool | None,
        typer.Option(
            "--json-logs/--no-json-logs",
            help="JSON log lines instead of progress bars (default: when stderr is not a terminal).",
        ),
    ] = None,
) -> None:
    """Run every benchmark of an EvalRun spec against its model and judges.

    Exit codes: 0 succeeded, 1 crashed or endpoint unreachable, 2 config/dataset error, 3 incomplete.
    """
    raise typer.Exit(run_command(config, output, resume, json_logs))


if __name__ == "__main__":
    app()
