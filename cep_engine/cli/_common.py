"""Argument types shared by the command modules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from cep_engine.cli._runtime import Runtime

Key = Annotated[str, typer.Argument(help="Project key, e.g. SDC-042.")]
Actor = Annotated[
    str, typer.Option("--actor", help="Email of the person acting.", envvar="CEP_ACTOR")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
Stage = Annotated[str, typer.Argument(help="pre_cutover, cutover or post_cutover.")]
Local = Annotated[bool, typer.Option(
    "--local", help="Run in this process even when PREFECT_API_URL names a Prefect API.")]


def rt(ctx: typer.Context) -> Runtime:
    """The invocation's runtime, set by the root callback."""
    runtime: Runtime = ctx.find_root().obj
    return runtime
