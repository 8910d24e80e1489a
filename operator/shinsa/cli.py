"""`shinsa`: the command line. Each command group lives in `shinsa.commands.<name>`."""

from __future__ import annotations

import typer

from shinsa.commands import crds, demo, dev, gate, operator, pipeline, plan, promote
from shinsa.commands import eval as eval_cmd

app = typer.Typer(
    name="shinsa",
    help="Shinsa: GPU-planned vLLM serving, judge-scored evaluation and gated promotion of open LLMs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(dev.app, name="dev")
app.add_typer(operator.app, name="operator")
app.add_typer(demo.app, name="demo")
app.add_typer(eval_cmd.app, name="eval")
app.add_typer(promote.app, name="promote")
app.add_typer(pipeline.app, name="pipeline")
app.command("crds")(crds.crds)
app.command("plan")(plan.plan)
app.command("gate", help=gate.HELP)(gate.gate)


if __name__ == "__main__":
    app()
