"""`shinsa promote`: move a registry alias back on purpose, and read every move it made.

EvalRuns promote (`spec.promote`); people roll back. Both moves are recorded on the registered
model in MLflow (`shinsa.registry.promotion`), so `history` reads from MLflow alone what moved the
alias, when, who or which EvalRun, and why.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shinsa.registry.promotion import Move, PromotionRefused, RegistryError, history, rollback

app = typer.Typer(
    help=(
        "Roll a registry alias back and read its history. Promotion itself is an EvalRun's "
        "spec.promote; every move, promotions and rollbacks, is recorded on the registered model in MLflow."
    ),
    no_args_is_help=True,
)

TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar="MLFLOW_TRACKING_URI",
        help="The MLflow server holding the registry (default: $MLFLOW_TRACKING_URI).",
    ),
]
Alias = Annotated[str, typer.Option("--alias", "-a", help="The alias, for example champion.")]


def _tracking(uri: str | None) -> str:
    if not uri:
        Console(stderr=True).print(
            "[red]error:[/red] no MLflow server: pass --tracking-uri or set MLFLOW_TRACKING_URI"
        )
        raise typer.Exit(2)
    return uri


def _fail(exc: Exception) -> typer.Exit:
    Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
    retryable = isinstance(exc, RegistryError) and exc.retryable
    return typer.Exit(1 if retryable else 2)


@app.command("rollback")
def rollback_command(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    alias: Alias = "champion",
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="The version to point the alias at (default: the one its current version replaced)."
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", "-r", help="Why, recorded with the move.")] = "",
    by: Annotated[
        str | None, typer.Option("--by", help="Who, recorded with the move (default: $USER).")
    ] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Point ALIAS of NAME back at the version its current one replaced, or at --to VERSION.

    The ModelDeployments serving models:/NAME@ALIAS roll to it on their next registry lookup. Exit 0
    moved, 1 MLflow unreachable, 2 nothing to roll back to or no such version.
    """
    who = by or os.environ.get("USER") or getpass.getuser()
    try:
        move = rollback(_tracking(tracking_uri), model=name, alias=alias, to=to, by=who, reason=reason)
    except (PromotionRefused, RegistryError) as exc:
        raise _fail(exc) from None
    typer.echo(f"{name}@{alias}: version {move.previous} -> {move.version} (rollback by {move.by})")


def history_table(title: str, moves: Sequence[Move]) -> Table:
    """An alias' moves as `shinsa promote history` and the demo print them, oldest first."""
    table = Table(title=escape(title))
    for column in ("when (UTC)", "move", "from", "to", "by", "why"):
        table.add_column(column, overflow="fold")
    for move in moves:
        behind = f"EvalRun {move.by}" if move.kind == "promote" else move.by
        why = move.reason or (f"gates {move.decision}" if move.decision else "")
        cells = [move.at[:19].replace("T", " "), move.kind, move.previous or "-", move.version, behind, why]
        table.add_row(*(escape(cell) for cell in cells))
    return table


@app.command("history")
def history_command(
    name: Annotated[str, typer.Argument(help="The registered model.")],
    alias: Alias = "champion",
    output: Annotated[str, typer.Option("--output", "-o", help="table or json.")] = "table",
    tracking_uri: TrackingUri = None,
) -> None:
    """Every move of ALIAS of NAME, oldest first.

    For each: when, promotion or rollback, from and to which version, the EvalRun or person behind
    it, and why.
    """
    try:
        moves = history(_tracking(tracking_uri), model=name, alias=alias)
    except (PromotionRefused, RegistryError) as exc:
        raise _fail(exc) from None
    if output == "json":
        typer.echo(json.dumps([json.loads(m.to_json()) for m in moves], indent=2))
        return
    Console().print(history_table(f"{name}@{alias}", moves))
    if not moves:
        typer.echo("no recorded moves")
