"""`shinsa crds`: the CustomResourceDefinitions, generated from the pydantic models in `shinsa.api`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shinsa.api.crd import crd_file_name, crd_manifests, render_crd_yaml, render_crds_yaml
from shinsa.api.docs import render_api_markdown


def crds(
    output_dir: Annotated[
        Path | None,
        typer.Option(
            "--output-dir",
            "-o",
            help="Write one <plural>.<group>.yaml file per CRD here instead of printing them.",
            file_okay=False,
        ),
    ] = None,
    api_doc: Annotated[
        Path | None,
        typer.Option("--api-doc", help="Also write the Markdown field reference (docs/api.md) to this file."),
    ] = None,
) -> None:
    """Print every Shinsa CRD as multi-document YAML (`shinsa crds | kubectl apply --server-side -f -`)."""
    if output_dir is None:
        typer.echo(render_crds_yaml(), nl=False)
    else:
        output_dir.mkdir(parents=True, exist_ok=True)
        for crd in crd_manifests():
            path = output_dir / crd_file_name(crd)
            path.write_text(render_crd_yaml(crd), encoding="utf-8")
            typer.echo(f"wrote {path}", err=True)
    if api_doc is not None:
        api_doc.parent.mkdir(parents=True, exist_ok=True)
        api_doc.write_text(render_api_markdown(), encoding="utf-8")
        typer.echo(f"wrote {api_doc}", err=True)
