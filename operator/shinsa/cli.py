"""`shinsa`: the command line. Each command group lives in `shinsa.commands.<name>`.

The groups are imported only when invoked: between them they pull in the kubernetes client, MLflow,
numpy and the API models, which took `shinsa --help` to two seconds. `COMMANDS` carries each
command's one-line help so that the top-level listing imports none of them; a unit test keeps those
lines equal to the commands' own.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import typer

# Typer vendors its own click: its groups and contexts are `typer._click` types, not the click package's.
from typer import _click as click
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    module: str
    """The module under `shinsa.commands` defining it."""
    attribute: str
    """A `typer.Typer` (a command group) or a function (a single command) in that module."""
    short_help: str
    """The line `shinsa --help` shows for it."""
    help_attribute: str | None = None
    """The module's attribute holding a single command's full help, when its docstring is not it."""


COMMANDS: dict[str, LazyCommand] = {
    "crds": LazyCommand(
        "crds",
        "crds",
        "Print every Shinsa CRD as multi-document YAML (`shinsa crds | kubectl apply --server-side -f -`).",
    ),
    "plan": LazyCommand("plan", "plan", "Plan GPUs, parallelism and vLLM arguments for serving MODEL."),
    "gate": LazyCommand(
        "gate", "gate", "Apply regression gates: may CANDIDATE's results replace BASELINE's?", "HELP"
    ),
    "dev": LazyCommand(
        "dev",
        "app",
        "Run a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, "
        "kube-scheduler) with KWOK-simulated GPU nodes. No Docker engine or GPU is needed.",
    ),
    "operator": LazyCommand("operator", "app", "Run the Shinsa operator."),
    "demo": LazyCommand("demo", "app", "Run the end-to-end demo on a local simulated GPU cluster."),
    "eval": LazyCommand(
        "eval",
        "app",
        "Evaluate a served model: generate answers, have judges score them, report means, spread and CIs.",
    ),
    "promote": LazyCommand(
        "promote",
        "app",
        "Roll a registry alias back and read its history. Promotion itself is an EvalRun's spec.promote; "
        "every move, promotions and rollbacks, is recorded on the registered model in MLflow.",
    ),
    "pipeline": LazyCommand(
        "pipeline",
        "app",
        "Promotion pipelines: deploy a candidate, evaluate it against the champion, promote or tear down.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import the command `name` and build its click command."""
    spec = COMMANDS[name]
    module = importlib.import_module(f"shinsa.commands.{spec.module}")
    target = getattr(module, spec.attribute)
    command: click.Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:
        single = typer.Typer()
        help_text = getattr(module, spec.help_attribute) if spec.help_attribute else None
        single.command(name, help=help_text)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


class _LazyGroup(TyperGroup):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        # Listing the commands in `--help` asks for each one: a stand-in with its line suffices.
        if ctx.resilient_parsing or _listing_help(ctx):
            return TyperCommand(cmd_name, short_help=COMMANDS[cmd_name].short_help, help="")
        return load_command(cmd_name)


def _listing_help(ctx: click.Context) -> bool:
    return bool(ctx.meta.get("shinsa.listing"))


class _HelpListing(_LazyGroup):
    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta["shinsa.listing"] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta.pop("shinsa.listing", None)


app = typer.Typer(
    name="shinsa",
    cls=_HelpListing,
    help="Shinsa: GPU-planned vLLM serving, judge-scored evaluation and gated promotion of open LLMs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)


@app.callback()
def _main() -> None:
    pass


if __name__ == "__main__":
    app()
