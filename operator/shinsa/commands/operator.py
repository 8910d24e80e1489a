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
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log each handler run (INFO).")] = False,
    debug: Annotated[bool, typer.Option(help="Log API requests and watch events (DEBUG).")] = False,
    peering: Annotated[
        bool, typer.Option(help="Coordinate with other replicas through kopf peering (needs its CRDs).")
    ] = False,
) -> None:
    """Reconcile ModelDeployments (and later EvalRuns) until interrupted."""
    import kopf
    from prometheus_client import start_http_server

    import shinsa.controllers.handlers  # noqa: F401  (registers the handlers)

    # kopf logs nothing until told how; a pod without logs is hard to operate.
    kopf.configure(verbose=verbose, debug=debug)
    if metrics_port:
        start_http_server(metrics_port)
    kopf.run(
        standalone=not peering,
        clusterwide=not namespace,
        namespaces=namespace or (),
        # What handlers that list objects themselves (the registry follower) may read.
        memo=kopf.Memo(namespaces=tuple(namespace or ())),
        liveness_endpoint=f"http://0.0.0.0:{liveness_port}/healthz" if liveness_port else None,
    )
