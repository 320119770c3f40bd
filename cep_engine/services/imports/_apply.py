"""Writing validated rows: owners checked against the people on record, then one transaction
per file that adds every entry and one audit row."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cep_engine.errors import CepError
from cep_engine.escalation.policy import EscalationPolicy
from cep_engine.roles import Role
from cep_engine.services import _load, _validate, actions, issues, risks
from cep_engine.services._unit import Attempt, attempt
from cep_engine.services.imports._read import ImportRejected, read_rows
from cep_engine.services.imports._rows import ActionRow, IssueRow, RiskRow
from cep_engine.states import Level
from cep_engine.states.action import ACTION_KEEPERS
from cep_engine.states.risk import RISK_KEEPERS
from cep_engine.store.db import Store
from cep_engine.store.models import Issue, IssueActivity, Person, Project

ISSUE_KEEPERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM})
LEVEL_FOR_STATUS = {"open": Level.TEAM, "in_progress": Level.TEAM,
                    "resolved": Level.OFF_LADDER, "closed": Level.RETIRED}


@dataclass(frozen=True)
class Imported:
    """What an import added: the kind and the numbers given to the new entries."""

    kind: str
    numbers: tuple[int, ...]


def import_issues(store: Store, key: str, path: Path, *, actor: str, now: datetime,
                  policy: EscalationPolicy) -> Imported:
    """Import an Issues Log (assigned PM or senior PM), keeping the original dates."""
    rows = read_rows(path, IssueRow)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _begin(ctx, key, "issue", ISSUE_KEEPERS)

        def not_future(row: IssueRow) -> str | None:
            return ("field 'last_activity_at': is in the future"
                    if row.last_activity_at > now else None)

        _check_owners(ctx, path, rows, not_future)
        numbers = [_import_issue(ctx, project, row, policy, path).number for _, row in rows]
        _finish(ctx, project, "issue", path, numbers)
    return Imported("issue", tuple(numbers))


def import_risks(store: Store, key: str, path: Path, *, actor: str, now: datetime) -> Imported:
    """Import a Risk Log (assigned PM or senior PM)."""
    rows = read_rows(path, RiskRow)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _begin(ctx, key, "risk", RISK_KEEPERS)
        _check_owners(ctx, path, rows)
        numbers = [risks.add_in(ctx, project, _risk_input(path, line, row)).number
                   for line, row in rows]
        _finish(ctx, project, "risk", path, numbers)
    return Imported("risk", tuple(numbers))


def import_actions(store: Store, key: str, path: Path, *, actor: str,
                   now: datetime) -> Imported:
    """Import an Action Items Log (client liaison or assigned PM)."""
    rows = read_rows(path, ActionRow)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _begin(ctx, key, "action", ACTION_KEEPERS)
        _check_owners(ctx, path, rows)
        numbers = [
            actions.add_in(ctx, project, row.title, owner=row.owner, due=row.due_date,
                           src=row.source, source_ref=row.source_ref).number
            for _, row in rows
        ]
        _finish(ctx, project, "action", path, numbers)
    return Imported("action", tuple(numbers))


def _begin(ctx: Attempt, key: str, kind: str, allowed: frozenset[Role]) -> Project:
    project = _load.project(ctx.session, key)
    ctx.about(kind, f"{project.key} import", "import")
    _load.require(allowed, _load.actor_on(ctx, project), ctx, what=f"import {kind}s")
    return project


def _finish(ctx: Attempt, project: Project, kind: str, path: Path, numbers: list[int]) -> None:
    ctx.about(kind, f"{project.key} import", "import")
    ctx.record(to_state=None, reason=f"{len(numbers)} {kind}(s) imported from {path.name}")


def _check_owners(ctx: Attempt, path: Path, rows: Sequence[tuple[int, Any]],
                  check: Callable[[Any], str | None] | None = None) -> None:
    """Reject the file if an owner is not on record, or a row fails ``check``."""
    emails = {r.owner for _, r in rows if r.owner}
    known = set(ctx.session.scalars(select(Person.email).where(Person.email.in_(emails))))
    problems: list[str] = []
    bad: set[int] = set()
    for line, row in rows:
        if row.owner and row.owner not in known:
            problems.append(f"row {line}, field 'owner': no person {row.owner}; add them with "
                            f"`cep person add {row.owner} --name NAME`")
            bad.add(line)
        detail = check(row) if check else None
        if detail:
            problems.append(f"row {line}, {detail}")
            bad.add(line)
    if problems:
        raise ImportRejected(path, sorted(problems, key=_row_number), len(bad))


def _row_number(problem: str) -> int:
    return int(problem.split(",", 1)[0].removeprefix("row "))


def _import_issue(ctx: Attempt, project: Project, row: IssueRow, policy: EscalationPolicy,
                  path: Path) -> Issue:
    issue = issues.open_in(ctx, project, row.title, row.priority,
                           policy=policy, owner=row.owner, description=row.description,
                           opened_at=row.opened_at, last_activity_at=row.last_activity_at)
    issue.status = row.status.value
    issue.level = LEVEL_FOR_STATUS[row.status.value].value
    if row.status.value in ("resolved", "closed"):
        issue.resolved_at = row.last_activity_at
    ctx.session.add(IssueActivity(
        issue_id=issue.id, at=ctx.now, actor=ctx.actor, kind="imported",
        text=f"imported from {path.name}: opened {row.opened_at.isoformat()}, last activity "
             f"{row.last_activity_at.isoformat()}", to_value=row.status.value))
    return issue


def _risk_input(path: Path, line: int, r: RiskRow) -> risks.RiskInput:
    """Run the Risk Log's own checks on one row, naming the row if they refuse it."""
    try:
        return risks.RiskInput.checked(
            r.title, r.probability, r.impact, trigger_text=r.trigger or "",
            trigger_date=r.trigger_date, owner=r.owner, mitigation=r.mitigation or "")
    except CepError as exc:
        raise ImportRejected(path, [f"row {line}: {exc.message}"], 1) from None
