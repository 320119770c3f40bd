"""Import an Issues Log, Risk Log or Action Items Log from a spreadsheet's CSV export.

Every row is validated first (pydantic, then the owners against the people on record). One
bad row rejects the whole file: :class:`ImportRejected` reports each bad row and field, and
nothing is imported. Row numbers are the spreadsheet's: the header is row 1. Columns the
importer does not know are ignored; empty cells are blank optional fields.

Imported issues keep their ``opened_at`` and ``last_activity_at``, so the escalation clock
runs from where the spreadsheet left off (the next sweep may climb several rungs at once).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy import select

from cep_engine.errors import CepError, InvalidInput
from cep_engine.escalation.policy import EscalationPolicy
from cep_engine.roles import Role
from cep_engine.services import _load, _validate, actions, issues, risks
from cep_engine.services._unit import Attempt, attempt
from cep_engine.states import IssueStatus, Level, Priority
from cep_engine.states.action import ACTION_KEEPERS, Source
from cep_engine.states.risk import RISK_KEEPERS
from cep_engine.store.db import Store
from cep_engine.store.models import Issue, IssueActivity, Person, Project

ISSUE_KEEPERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM})
LEVEL_FOR_STATUS = {"open": Level.TEAM, "in_progress": Level.TEAM,
                    "resolved": Level.OFF_LADDER, "closed": Level.RETIRED}
MAX_SHOWN = 50


class ImportRejected(InvalidInput):
    """A file with bad rows: ``message`` is one line, ``problems`` one line per bad field."""

    def __init__(self, path: Path, problems: Sequence[str], bad_rows: int) -> None:
        super().__init__(f"{path}: {bad_rows} bad row{'s' if bad_rows != 1 else ''}; "
                         "nothing imported")
        self.problems = tuple(problems)

    @property
    def report(self) -> str:
        """The one-line message followed by the per-row lines (at most 50 shown)."""
        shown = list(self.problems[:MAX_SHOWN])
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"... and {len(self.problems) - MAX_SHOWN} more")
        return "\n".join([self.message, *(f"  {p}" for p in shown)])


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


class _Row(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        """Empty cells are absent fields: optional ones take their default."""
        return {k: v for k, v in data.items() if not _blank(v)} if isinstance(data, dict) else data

    @field_validator("title", check_fields=False)
    @classmethod
    def _one_line(cls, value: str) -> str:
        if "\n" in value or "\r" in value or "\x00" in value:
            raise ValueError("must be one line of text")
        return value

    @field_validator("owner", check_fields=False)
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        try:
            return _validate.email(value) if value else None
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None


class IssueRow(_Row):
    """Columns of an Issues Log export."""

    title: str = Field(min_length=1, max_length=200)
    priority: Priority
    owner: str
    opened_at: AwareDatetime
    last_activity_at: AwareDatetime
    description: str = Field(default="", max_length=4000)
    status: IssueStatus = IssueStatus.OPEN

    @field_validator("priority", "status", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value

    @field_validator("description", mode="before")
    @classmethod
    def _empty(cls, value: Any) -> Any:
        return "" if value is None else value

    @model_validator(mode="after")
    def _in_order(self) -> IssueRow:
        if self.last_activity_at < self.opened_at:
            raise ValueError("last_activity_at is before opened_at")
        return self


class RiskRow(_Row):
    """Columns of a Risk Log export."""

    title: str = Field(min_length=1, max_length=200)
    probability: int = Field(ge=1, le=5)
    impact: int = Field(ge=1, le=5)
    trigger: str | None = Field(default=None, max_length=4000)
    trigger_date: date | None = None
    owner: str | None = None
    mitigation: str | None = Field(default=None, max_length=4000)


class ActionRow(_Row):
    """Columns of an Action Items Log export."""

    title: str = Field(min_length=1, max_length=200)
    owner: str | None = None
    due_date: date | None = None
    source: Source = Source.MANUAL
    source_ref: str | None = Field(default=None, max_length=100)

    @field_validator("source", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        if value is None:
            return Source.MANUAL
        return value.strip().lower() if isinstance(value, str) else value


COLUMNS: dict[type[_Row], tuple[tuple[str, ...], tuple[str, ...]]] = {
    IssueRow: (("title", "priority", "owner", "opened_at", "last_activity_at"),
               ("description", "status")),
    RiskRow: (("title", "probability", "impact"),
              ("trigger", "trigger_date", "owner", "mitigation")),
    ActionRow: (("title",), ("owner", "due_date", "source", "source_ref")),
}
"""Required and optional columns of each kind of file."""

R = TypeVar("R", bound=_Row)


@dataclass(frozen=True)
class Imported:
    """What an import added: the kind and the numbers given to the new entries."""

    kind: str
    numbers: tuple[int, ...]


def read_rows(path: Path, model: type[R]) -> list[tuple[int, R]]:
    """Parse and validate every row; raise :class:`ImportRejected` listing every bad one."""
    raw = _read_csv(path, model)
    good: list[tuple[int, R]] = []
    problems: list[str] = []
    bad: set[int] = set()
    for line, data in raw:
        try:
            good.append((line, model.model_validate(data)))
        except ValidationError as exc:
            bad.add(line)
            problems.extend(_describe(line, err) for err in exc.errors())
    if problems:
        raise ImportRejected(path, problems, len(bad))
    return good


def _read_csv(path: Path, model: type[_Row]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(reader.line_num, {k: v for k, v in r.items() if k}) for r in reader]
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path}: not a UTF-8 CSV file ({exc})") from None
    required, optional = COLUMNS[model]
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; required: "
                           f"{', '.join(required)}; optional: {', '.join(optional)}")
    if not rows:
        raise InvalidInput(f"{path}: no rows under the header; nothing imported")
    return _spreadsheet_rows(rows)


def _spreadsheet_rows(rows: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, str]]]:
    """Number rows as a spreadsheet does (header = 1), one per record."""
    return [(i + 2, data) for i, (_, data) in enumerate(rows)]


def _describe(line: int, err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "(row)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    return f"row {line}, field '{field}': {msg}{shown}"


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


def _begin(ctx: Attempt, key: str, kind: str, path: Path,
           allowed: frozenset[Role]) -> Project:
    project = _load.project(ctx.session, key)
    ctx.about(kind, f"{project.key} import", "import")
    _load.require(allowed, _load.actor_on(ctx, project), ctx, what=f"import {kind}s")
    return project


def _finish(ctx: Attempt, project: Project, kind: str, path: Path, numbers: list[int]) -> None:
    ctx.about(kind, f"{project.key} import", "import")
    ctx.record(to_state=None, reason=f"{len(numbers)} {kind}(s) imported from {path.name}")


def import_issues(store: Store, key: str, path: Path, *, actor: str, now: datetime,
                  policy: EscalationPolicy) -> Imported:
    """Import an Issues Log (assigned PM or senior PM), keeping the original dates."""
    rows = read_rows(path, IssueRow)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _begin(ctx, key, "issue", path, ISSUE_KEEPERS)

        def not_future(row: IssueRow) -> str | None:
            return ("field 'last_activity_at': is in the future"
                    if row.last_activity_at > now else None)

        _check_owners(ctx, path, rows, not_future)
        numbers = [_import_issue(ctx, project, row, policy, path).number for _, row in rows]
        _finish(ctx, project, "issue", path, numbers)
    return Imported("issue", tuple(numbers))


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


def import_risks(store: Store, key: str, path: Path, *, actor: str, now: datetime) -> Imported:
    """Import a Risk Log (assigned PM or senior PM)."""
    rows = read_rows(path, RiskRow)
    with attempt(store, actor=actor, now=_validate.aware(now)) as ctx:
        project = _begin(ctx, key, "risk", path, RISK_KEEPERS)
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
        project = _begin(ctx, key, "action", path, ACTION_KEEPERS)
        _check_owners(ctx, path, rows)
        numbers = [
            actions.add_in(ctx, project, row.title, owner=row.owner, due=row.due_date,
                           src=row.source, source_ref=row.source_ref).number
            for _, row in rows
        ]
        _finish(ctx, project, "action", path, numbers)
    return Imported("action", tuple(numbers))


def _risk_input(path: Path, line: int, r: RiskRow) -> risks.RiskInput:
    """Run the Risk Log's own checks on one row, naming the row if they refuse it."""
    try:
        return risks.RiskInput.checked(
            r.title, r.probability, r.impact, trigger_text=r.trigger or "",
            trigger_date=r.trigger_date, owner=r.owner, mitigation=r.mitigation or "")
    except CepError as exc:
        raise ImportRejected(path, [f"row {line}: {exc.message}"], 1) from None
