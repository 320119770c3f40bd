"""What the log commands share: times and dates from the command line, the escalation
policy, and CSV imports with their row report."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cep_engine.cli._common import rt
from cep_engine.errors import InvalidInput

Number = Annotated[int, typer.Argument(help="Number of the entry in the project's log.")]
Note = Annotated[str, typer.Option("--note", help="Why; kept in the history.")]
Status = Annotated[str | None, typer.Option("--status", help="Only entries in this status.")]
CsvFile = Annotated[Path, typer.Argument(help="CSV export; see the README for its columns.")]
Owner = Annotated[str | None, typer.Option(help="Email of the owner.")]


if TYPE_CHECKING:
    from cep_engine.cli._runtime import Runtime
    from cep_engine.escalation.policy import EscalationPolicy


def instant(text: str, option: str) -> datetime:
    """An ISO 8601 instant with a time zone, e.g. ``2026-12-01T10:00-08:00``; naive refused."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not an ISO 8601 time such as "
                           "2026-12-01T10:00-08:00") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{option} {text!r} has no time zone; add an offset such as -08:00 "
                           "or Z")
    return value


def day(text: str, option: str) -> date:
    """A date ``YYYY-MM-DD``."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(f"{option} {text!r} is not a date YYYY-MM-DD") from None


def policy(runtime: Runtime) -> EscalationPolicy:
    """The escalation policy in force: ``escalation.yaml`` in the config folder."""
    from cep_engine.services import jobs

    return jobs.policy(runtime.settings)


def done(message: str) -> None:
    """One line saying what the command did."""
    from cep_engine.cli._runtime import done as say

    say(message)


def run_import(ctx: typer.Context, kind: str, key: str, path: Path, actor: str) -> None:
    """Import a CSV file; a rejected file prints ``error: FILE: N bad rows; nothing
    imported`` and then one line per bad row and field, all on stderr."""
    from cep_engine.cli._runtime import now
    from cep_engine.services import imports

    runtime = rt(ctx)
    try:
        if kind == "issue":
            result = imports.import_issues(runtime.store(), key, path, actor=actor, now=now(),
                                           policy=policy(runtime))
        elif kind == "risk":
            result = imports.import_risks(runtime.store(), key, path, actor=actor, now=now())
        else:
            result = imports.import_actions(runtime.store(), key, path, actor=actor, now=now())
    except imports.ImportRejected as exc:
        print(f"error: {exc.report}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    done(f"{key.upper()}: imported {len(result.numbers)} {kind}(s) from {path.name}")
