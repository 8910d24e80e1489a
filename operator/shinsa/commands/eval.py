"""`shinsa eval`: run the evaluation engine locally or inside an EvalRun Job.

Exit codes: 0 succeeded; 1 crashed or an endpoint was unreachable; 2 configuration or dataset error
(nothing was requested); 3 incomplete (error rate above maxErrorRate; results are still written);
143 stopped by SIGTERM (the checkpoint was flushed first; rerun with --resume to continue).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import traceback
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from shinsa.commands import compare
from shinsa.evaluation.phase import Phase

# The engine (the API models, httpx, numpy, matplotlib) is imported when a command runs, not for
# `--help` or shell completion.
if TYPE_CHECKING:
    from rich.table import Table

    from shinsa.evaluation.masking import SecretMask
    from shinsa.evaluation.progress import Reporter
    from shinsa.evaluation.results import ExitCode, RunResults

T = TypeVar("T")

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


def summary_table(results: RunResults) -> Table:
    from rich.table import Table

    from shinsa.evaluation.progress import terminal_safe

    table = Table(title=f"Evaluation: {terminal_safe(results.model.served_name)} ({results.status})")
    for column in ("benchmark", "judge", "mean", "std", "95% CI", "questions", "errors"):
        table.add_column(column, justify="left" if column in ("benchmark", "judge") else "right")
    for name, summary in results.benchmarks.items():
        for judge, sub in summary.judges.items():
            table.add_row(
                terminal_safe(name),
                terminal_safe(judge)
                + (" *" if judge == summary.primary_judge and len(summary.judges) > 1 else ""),
                _fmt(sub.mean),
                _fmt(sub.std),
                f"[{_fmt(sub.ci_low)}, {_fmt(sub.ci_high)}]",
                str(sub.n_questions),
                f"{sub.n_errors}/{sub.n_items}",
            )
    return table


_SUMMARY_KEYS = {"mean", "std", "ci_low", "ci_high", "n_questions", "n_errors", "n_items"}


def summary_fields(results: RunResults) -> dict[str, Any]:
    """The summary table's figures as plain data, for the JSON log."""
    return {
        "model": results.model.served_name,
        "status": results.status.value,
        "benchmarks": {
            name: {
                "primary_judge": summary.primary_judge,
                "judges": {
                    judge: sub.model_dump(include=_SUMMARY_KEYS) for judge, sub in summary.judges.items()
                },
            }
            for name, summary in results.benchmarks.items()
        },
        "warnings": results.warnings,
    }


class Terminated(Exception):
    """The process was asked to stop (SIGTERM) and the run was cancelled cleanly."""


async def _stop_on_sigterm(work: Coroutine[Any, Any, T]) -> T:
    """Await `work`, cancelling it on SIGTERM so that its `finally` blocks run (the checkpoint is
    flushed and closed) before the process exits; Kubernetes sends SIGTERM when it stops a Job."""
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        main.cancel()

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    try:
        return await work
    except asyncio.CancelledError:
        if terminated:
            raise Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


# The kubelet keeps at most 4096 bytes of a termination message.
_TERMINATION_LIMIT = 4096


def run_command(
    config_path: Path,
    output: Path | None,
    resume: bool,
    json_logs: bool | None,
    termination_log: Path | None = None,
    phase: Phase = Phase.ALL,
    answers: str | None = None,
) -> int:
    from shinsa.evaluation.progress import make_reporter

    # Every message goes through the reporter, so a Job's log stays one JSON object per line.
    reporter = make_reporter(json_logs)
    try:
        code, words, mask = _run(reporter, config_path, output, resume, phase, answers)
    finally:
        reporter.close()
    if termination_log is not None:
        _write_termination_log(termination_log, mask.text(words))
    return code


def _write_termination_log(path: Path, line: str) -> None:
    # One line the pod's status carries (`terminated.message`), so `kubectl describe` and the
    # EvalRun's JobComplete condition say why without the log. Best effort: a read-only path must
    # not turn a finished evaluation into a crash.
    with contextlib.suppress(OSError):
        path.write_bytes(line.encode()[:_TERMINATION_LIMIT])


def _run(
    output_to: Reporter,
    config_path: Path,
    output: Path | None,
    resume: bool,
    phase: Phase = Phase.ALL,
    answers: str | None = None,
) -> tuple[ExitCode, str, SecretMask]:
    """The exit code, a one-line account of the run's end, and the run's secret mask."""
    from rich.console import Console

    from shinsa.evaluation.client import EndpointUnreachable
    from shinsa.evaluation.config import ConfigError, load_config
    from shinsa.evaluation.datasets import DatasetError
    from shinsa.evaluation.masking import SecretMask, masked
    from shinsa.evaluation.progress import JsonLinesReporter, neutralised
    from shinsa.evaluation.results import ExitCode, RunStatus

    try:
        if answers is not None:
            from shinsa.evaluation.answers import cli_uri

            answers = cli_uri(answers)
        config = load_config(config_path, phase=phase, answers=answers)
    except (ConfigError, DatasetError) as exc:
        output_to.event("config error", level="error", error=str(exc))
        return ExitCode.CONFIG, f"config error: {exc}", SecretMask()
    # A crash's traceback and an endpoint's error can quote a key as well as the engine's own lines.
    mask = SecretMask.of_config(config)
    reporter = masked(output_to, mask)

    from shinsa.evaluation.runner import run_evaluation

    for key in config.operator_only_fields():
        reporter.event("spec field not used by the evaluation engine", level="warning", field=f"spec.{key}")
    try:
        result = asyncio.run(
            _stop_on_sigterm(
                run_evaluation(config, phase=phase, output_dir=output, resume=resume, reporter=reporter)
            )
        )
    except (ConfigError, DatasetError) as exc:
        reporter.event("config error", level="error", error=str(exc))
        return ExitCode.CONFIG, f"config error: {exc}", mask
    except EndpointUnreachable as exc:
        reporter.event("endpoint unreachable", level="error", error=str(exc))
        return ExitCode.CRASH, f"endpoint unreachable: {exc}", mask
    except Terminated:
        reporter.event(
            "terminated by SIGTERM; checkpoint flushed; rerun with --resume to continue", level="warning"
        )
        return ExitCode.TERMINATED, "terminated by SIGTERM; checkpoint flushed", mask
    except KeyboardInterrupt:
        reporter.event("interrupted; rerun with --resume to continue from the checkpoint", level="warning")
        return ExitCode.CRASH, "interrupted", mask
    except Exception as exc:
        reporter.event("crashed", level="error", error=repr(exc), traceback=traceback.format_exc())
        return ExitCode.CRASH, f"crashed: {exc!r}", mask
    if isinstance(output_to, JsonLinesReporter):
        # A Job's log is one JSON object a line; a table or a bare status line would break parsers.
        reporter.event("summary", **summary_fields(result.results), output_dir=str(result.output_dir))
    else:
        reporter.close()
        if result.results.benchmarks:  # a generate phase may have scored none
            Console(soft_wrap=True, emoji=False).print(summary_table(result.results))
        for warning in result.results.warnings:
            print(neutralised(f"warning: {warning}"))
        print(neutralised(f"status: {result.status}; results in {result.output_dir}"))
        if result.status is RunStatus.GENERATED:
            print(neutralised(f"to judge them: --phase judge --answers {result.output_dir}"))
    return result.exit_code, _ending(result.results), mask


def _ending(results: RunResults) -> str:
    account = f"{results.status.value}: {results.items} items, {results.errors} errors"
    if results.error_rate > results.max_error_rate:
        account += (
            f"; error rate {results.error_rate:.1%} above maxErrorRate {results.max_error_rate:.1%},"
            " too many failed requests for the scores to be trusted"
        )
    return account


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
    termination_log: Annotated[
        Path | None,
        typer.Option(
            "--termination-log",
            help="Write one line saying how the run ended here (a pod's terminationMessagePath).",
        ),
    ] = None,
    phase: Annotated[
        Phase,
        typer.Option(
            "--phase",
            case_sensitive=False,
            help=(
                "generate: ask the model only and write generations.jsonl with status Generated (no "
                "judge is called; the spec still names them); judge: judge the answers of --answers "
                "or spec.answers, never calling the model; all: both."
            ),
        ),
    ] = Phase.ALL,
    answers: Annotated[
        str | None,
        typer.Option(
            "--answers",
            help=(
                "Pre-generated answers to judge (overrides spec.answers): a results directory of "
                "--phase generate (or its generations.jsonl), or llm-jp-judge's generation output "
                "(<benchmark>.jsonl and metadata.json); a path, s3://bucket/prefix or pvc://claim/path."
            ),
        ),
    ] = None,
) -> None:
    """Run every benchmark of an EvalRun spec against its model and judges.

    With answers (--answers or spec.answers) the model is not called: every benchmark's every
    question must have an answer. Exit codes: 0 succeeded (or generated), 1 crashed or endpoint
    unreachable, 2 config/dataset/answers error, 3 incomplete, 143 stopped by SIGTERM (checkpoint
    flushed).
    """
    raise typer.Exit(run_command(config, output, resume, json_logs, termination_log, phase, answers))


app.command("compare", help=compare.HELP)(compare.compare)


if __name__ == "__main__":
    app()
