"""`shinsa`: the command line. Each command group lives in `shinsa.commands.<name>`."""

from __future__ import annotations

import typer

from shinsa.commands import crds, dev, plan

app = typer.Typer(
    name="shinsa",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(dev.app, name="dev")
app.command("crds")(crds.crds)
app.command("plan")(plan.plan)


if __name__ == "__main__":
    app()
