"""`shinsa operator run`: the kopf operator, in-cluster or against the current kubeconfig."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(help="Run the Shinsa operator.", no_args_is_help=True)


@app.command()
def run(
    namespace: Annotated[
        list[str] | None, typer.Option("--namespace", "-n", help="Watch only these namespaces (repeatable).")
    ] = None,
    metrics_port: Annotated[
        int, typer.Option(help="Serve Prometheus metrics on this port; 0 disables.")
    ] = 8080,
    liveness_port: Annotated[
        int, typer.Option(help="Serve /healthz for liveness probes; 0 disables.")
    ] = 8081,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log each handler run (INFO, also the default).")
    ] = False,
    debug: Annotated[
        bool, typer.Option(help="Log API requests, watch events and response bodies (DEBUG).")
    ] = False,
    peering: Annotated[
        bool, typer.Option(help="Coordinate with other replicas through kopf peering (needs its CRDs).")
    ] = False,
) -> None:
    """Reconcile ModelDeployments (and later EvalRuns) until interrupted. The environment the
    operator reads is listed in docs/install.md."""
    import os

    import kopf
    from prometheus_client import start_http_server

    import shinsa.controllers.handlers  # noqa: F401  (registers the handlers)
    from shinsa.controllers.settings import (
        OperatorSettings,
        SettingsError,
        configure_logging,
        operator_memo,
    )
    from shinsa.registry import load_mlflow

    # Read once, before anything starts: a bad variable stops the operator with its name.
    try:
        settings = OperatorSettings.from_env(os.environ)
    except SettingsError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None

    # Before kopf starts the threads that would otherwise race to import it.
    load_mlflow()
    # kopf logs nothing until told how; a pod without logs is hard to operate.
    configure_logging(verbose=verbose, debug=debug)
    if metrics_port:
        start_http_server(metrics_port)
    kopf.run(
        standalone=not peering,
        clusterwide=not namespace,
        namespaces=namespace or (),
        memo=operator_memo(settings, tuple(namespace or ())),
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
