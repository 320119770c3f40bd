"""The escalation sweep: policy + calendar -> cutoff instants -> one set-based pass per rung.

For every stored policy snapshot, priority and rung, the calendar turns the rung's threshold
into one cutoff instant: an issue idle (no activity, no acknowledgement) since at or before
the cutoff has been idle at least the threshold in business time. Per rung, one range scan
of the partial index ``ix_issues_due`` per cutoff finds the due set; the same transaction
moves each due issue one rung up, records its escalation (unique per issue, rung and cycle),
its audit row and its outbox message (unique idempotency key). Rungs are swept in order, so
an issue idle long enough climbs several rungs in one sweep, each exactly once. On
PostgreSQL the due rows are locked with ``FOR UPDATE SKIP LOCKED``: two sweeps at once never
escalate the same (issue, rung) twice.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    and_,
    any_,
    cast,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    true,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from cep_engine.clock import BusinessCalendar
from cep_engine.notify.outbox import Kind, Status
from cep_engine.states.issue import LADDER, LADDER_MACHINE
from cep_engine.store import tables
from cep_engine.store.db import Store
from cep_engine.store.models import (
    AuditEntry,
    Escalation,
    EscalationPolicySnapshot,
    Issue,
    OutboxMessage,
    Project,
)
from cep_engine.store.types import UTCDateTime

ENGINE_ACTOR = "cep-engine"
ESCALATE = {src: dest for src, dest, t in LADDER_MACHINE.edges() if t.trigger == "escalate"}
"""The escalate edges of the ladder table: the sweep moves issues only along these."""

_temp = MetaData()
DUE = Table(
    "sweep_due", _temp,
    Column("issue_id", Integer, primary_key=True, autoincrement=False),
    Column("project_id", Integer), Column("number", Integer),
    Column("stale_since", UTCDateTime()), Column("cycle", Integer),
    Column("policy_id", Integer), Column("priority", String(10)),
    prefixes=["TEMPORARY"],
)
"""SQLite only: the due set of one rung, so that its writes need not find it again."""


@dataclass(frozen=True)
class Cutoff:
    """Issues of ``policy_id``/``priority`` at ``from_level`` idle since at or before
    ``cutoff`` are due for ``to_level``."""

    rung: int
    policy_id: int
    priority: str
    from_level: str
    to_level: str
    cutoff: datetime
    after: str
    to_roles: tuple[str, ...]
    cc_roles: tuple[str, ...]

    @property
    def guards(self) -> list[dict[str, Any]]:
        """The guard results every issue due at this cutoff shares, for its audit row."""
        detail = f"idle since {self.cutoff.isoformat()} or earlier: {self.after} of business time"
        return [{"guard": "stale_past_threshold", "passed": True, "detail": detail},
                {"guard": "not_snoozed", "passed": True, "detail": None}]

    @property
    def reason(self) -> str:
        """The audit row's reason."""
        return f"escalated by the sweep: no activity for {self.after} of business time"


@dataclass
class SweepReport:
    """What one sweep did (or, with ``dry_run``, would do)."""

    as_of: datetime
    dry_run: bool
    cutoffs: int = 0
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalated: list[dict[str, Any]] = field(default_factory=list)
    """The first escalations one by one (project, issue number, from and to level): at most
    ``run_sweep``'s ``detail`` per project and level, lowest issue numbers first."""

    @property
    def total(self) -> int:
        """Escalations applied (or due, in a dry run)."""
        return sum(self.escalations.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form: totals and escalations by project and level."""
        return {
            "as_of": self.as_of.isoformat(), "dry_run": self.dry_run, "cutoffs": self.cutoffs,
            "total": self.total,
            "by_project_level": [
                {"project": p, "level": lv, "count": n}
                for (p, lv), n in sorted(self.escalations.items())
            ],
        }


def plan_cutoffs(
    snapshots: Mapping[int, Mapping[str, Any]], calendar: BusinessCalendar, as_of: datetime
) -> list[Cutoff]:
    """One cutoff per (snapshot, priority, rung): a pure function of policy, calendar, time."""
    cache: dict[int, datetime] = {}
    out: list[Cutoff] = []
    for policy_id, ladders in sorted(snapshots.items()):
        for priority, steps in sorted(ladders.items()):
            for rung, step in enumerate(steps):
                seconds = int(step["after_seconds"])
                if seconds not in cache:
                    cache[seconds] = calendar.subtract(as_of, seconds).astimezone(UTC)
                from_level = LADDER[rung].value
                if ESCALATE.get(from_level) != step["level"]:
                    raise ValueError(f"policy {policy_id} {priority}: {from_level} -> "
                                     f"{step['level']} is not an escalate edge of the ladder")
                out.append(Cutoff(rung, policy_id, priority, from_level, step["level"],
                                  cache[seconds], step["after"], tuple(step["to"]),
                                  tuple(step["cc"])))
    return out


def run_sweep(
    store: Store, *, as_of: datetime, calendar: BusinessCalendar, dry_run: bool = False,
    detail: int = 0,
) -> SweepReport:
    """Escalate every due issue once per rung, in one transaction (rolled back if dry).

    The report counts escalations by project and level, and lists the first ``detail`` of
    each (project, level) one by one (for events naming the issues; a bounded read however
    many are due).
    """
    report = SweepReport(as_of=as_of, dry_run=dry_run)
    with store.engine.connect() as conn:
        trans = conn.begin()
        try:
            cutoffs = plan_cutoffs(_snapshots_in_use(conn), calendar, as_of)
            report.cutoffs = len(cutoffs)
            if cutoffs:
                _apply(conn, cutoffs, as_of, report, detail)
        except BaseException:
            trans.rollback()
            raise
        if dry_run:
            trans.rollback()
        else:
            trans.commit()
    return report


def _snapshots_in_use(conn: Connection) -> dict[int, Mapping[str, Any]]:
    in_use = exists().where(Issue.policy_id == EscalationPolicySnapshot.id,
                            text(f"issues.{tables.OPEN_ISSUE_SQL}"))
    rows = conn.execute(
        select(EscalationPolicySnapshot.id, EscalationPolicySnapshot.body).where(in_use)
    )
    return {pid: body for pid, body in rows}


def _apply(conn: Connection, cutoffs: list[Cutoff], as_of: datetime,
           report: SweepReport, detail: int) -> None:
    """Climb rung by rung, in order, so that an issue idle long enough climbs several."""
    postgres = conn.dialect.name == "postgresql"
    if not postgres:
        DUE.create(conn)
    for rung in sorted({c.rung for c in cutoffs}):
        counts, first = _climb(conn, [c for c in cutoffs if c.rung == rung], as_of, detail)
        report.escalations.update(counts)
        report.escalated += first
    if not postgres:
        DUE.drop(conn)


def _climb(
    conn: Connection, cutoffs: list[Cutoff], as_of: datetime, room: int
) -> tuple[Counter[tuple[str, str]], list[dict[str, Any]]]:
    """Move the due issues of one rung one level up, with their escalation, audit and outbox
    rows; return the count per (project key, new level) and the first ``room`` of each.

    PostgreSQL does it in one statement: a CTE locks the due rows ``FOR UPDATE SKIP LOCKED``
    and the UPDATE and the three INSERTs read that locked set. SQLite (one writer at a time,
    ``BEGIN IMMEDIATE``) has no data-modifying CTEs: the due set goes to a temporary table
    first. Every cutoff of a rung leads from the same level to the same next one
    (:func:`plan_cutoffs` checks the edges).
    """
    to_level = cutoffs[0].to_level
    due_query = _select_due(cutoffs, as_of)
    if conn.dialect.name == "postgresql":
        if not conn.execute(select(exists(due_query))).scalar():
            return Counter(), []
        due = due_query.with_for_update(of=tables.issues, skip_locked=True).cte("due")
        locked_ids = func.array(select(due.c.issue_id).scalar_subquery())
        climbed = (update(Issue).where(Issue.id == any_(locked_ids))
                   .values(level=to_level, version=Issue.version + 1))
        writes = [climbed, *_inserts(conn, due, cutoffs, as_of)]
        parts = _tally(due, room)
        tally = (union_all(*parts) if len(parts) > 1 else parts[0]).add_cte(
            *(w.cte(f"w{i}") for i, w in enumerate(writes)))
        rows = conn.execute(tally).all()
    else:
        conn.execute(DUE.delete())
        found = conn.execute(
            insert(DUE).from_select(list(due_query.selected_columns.keys()), due_query))
        if not found.rowcount:
            return Counter(), []
        conn.execute(update(Issue).where(Issue.id.in_(select(DUE.c.issue_id)))
                     .values(level=to_level, version=Issue.version + 1))
        for statement in _inserts(conn, DUE, cutoffs, as_of):
            conn.execute(statement)
        rows = [row for query in _tally(DUE, room) for row in conn.execute(query)]
    counts: Counter[tuple[str, str]] = Counter()
    first = []
    for key, n, number, priority in rows:
        if number is None:
            counts[(key, to_level)] = n
        else:
            first.append({"project": key, "issue": number, "from_level": cutoffs[0].from_level,
                          "level": to_level, "priority": priority})
    first.sort(key=lambda e: (e["project"], e["issue"]))
    return counts, first


def _cutoff_rows(cutoffs: list[Cutoff]) -> Any:
    """What the writes need per (policy, priority) of one rung, as a derived table."""
    json_list = JSON(none_as_null=True)
    rows = [
        select(literal(c.policy_id, Integer).label("policy_id"),
               literal(c.priority, String).label("priority"),
               literal(list(c.to_roles), json_list).label("to_roles"),
               literal(list(c.cc_roles), json_list).label("cc_roles"),
               literal(c.guards, json_list).label("guards"),
               literal(c.reason, String).label("reason"))
        for c in cutoffs
    ]
    return (rows[0] if len(rows) == 1 else union_all(*rows)).subquery("cutoffs")


def _select_due(
    cutoffs: list[Cutoff], as_of: datetime
) -> Select[int, int, int, datetime, int, int, str]:
    """The open, unsnoozed issues of one rung idle since their cutoff: one indexed range per
    cutoff, OR-ed, so that each is a range scan of the partial index ``ix_issues_due`` with
    constants the planner can estimate. Narrow rows: the due set of a million issues must
    stay in memory (PostgreSQL's ``work_mem``)."""
    idle = [and_(Issue.policy_id == c.policy_id, Issue.priority == c.priority,
                 Issue.level == c.from_level, Issue.stale_since <= c.cutoff) for c in cutoffs]
    return (
        select(Issue.id.label("issue_id"), Issue.project_id, Issue.number, Issue.stale_since,
               Issue.cycle, Issue.policy_id, Issue.priority)
        .where(text(f"issues.{tables.OPEN_ISSUE_SQL}"), or_(*idle),
               or_(Issue.snoozed_until.is_(None), Issue.snoozed_until <= as_of))
    )


def _inserts(conn: Connection, due: Any, cutoffs: list[Cutoff], as_of: datetime) -> list[Any]:
    """INSERT ... SELECT from the due set ``due``: escalations, audit rows, outbox messages."""
    d = due.c
    at = literal(as_of, UTCDateTime())
    from_level = literal(cutoffs[0].from_level, String)
    to_level = literal(cutoffs[0].to_level, String)
    cut = _cutoff_rows(cutoffs)
    with_cutoff = and_(cut.c.policy_id == d.policy_id, cut.c.priority == d.priority)
    escalations = insert(Escalation).from_select(
        ["issue_id", "level", "cycle", "escalated_at", "stale_since"],
        select(d.issue_id, to_level, d.cycle, at, d.stale_since))
    entity = Project.key + literal("#") + cast(d.number, String)
    audit = insert(AuditEntry).from_select(
        ["at", "actor", "actor_roles", "project_id", "entity_type", "entity", "trigger",
         "from_state", "to_state", "accepted", "guards", "reason"],
        select(at, literal(ENGINE_ACTOR), literal("engine"), d.project_id, literal("issue"),
               entity, literal("escalate"), from_level, to_level, literal(True),
               cut.c.guards, cut.c.reason)
        .join_from(due, Project, Project.id == d.project_id).join(cut, with_cutoff))
    key = (literal("escalation:") + cast(d.issue_id, String) + literal(":") + to_level
           + literal(":") + cast(d.cycle, String))
    build = func.json_build_object if conn.dialect.name == "postgresql" else func.json_object
    context = build(literal("issue_id"), d.issue_id, literal("level"), to_level,
                    literal("from_level"), from_level, literal("cycle"), d.cycle)
    outbox = (select(key, literal(Kind.ESCALATION.value), d.project_id, cut.c.to_roles,
                     cut.c.cc_roles, _json_literal(conn, []), context,
                     literal(Status.PENDING.value), literal(0), at, at)
              .join_from(due, cut, with_cutoff)
              .where(true()))  # SQLite needs a WHERE before ON CONFLICT
    return [escalations, audit, _outbox_insert(conn, outbox)]


def _tally(due: Any, room: int) -> list[Select[*tuple[Any, ...]]]:
    """Escalations per project key in the due set (``number`` NULL), and, if ``room``, the
    first ``room`` issues of each project by number, as rows of the same shape."""
    to_project = Project.id == due.c.project_id
    counts = (select(Project.key, func.count(), cast(null(), Integer), cast(null(), String))
              .join_from(due, Project, to_project).group_by(Project.key))
    if room <= 0:
        return [counts]
    place = func.row_number().over(partition_by=due.c.project_id, order_by=due.c.number)
    ranked = (select(Project.key, due.c.number, due.c.priority, place.label("place"))
              .join_from(due, Project, to_project).subquery("ranked"))
    first = (select(ranked.c.key, literal(1), ranked.c.number, ranked.c.priority)
             .where(ranked.c.place <= room))
    return [counts, first]


def _outbox_insert(conn: Connection, rows: Select[Any]) -> Any:
    cols = ["idempotency_key", "kind", "project_id", "to_roles", "cc_roles", "to_addresses",
            "context", "status", "attempts", "next_attempt_at", "created_at"]
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(OutboxMessage).from_select(cols, rows).on_conflict_do_nothing(
        index_elements=["idempotency_key"])


def _json_literal(conn: Connection, value: Any) -> ColumnElement[Any]:
    text = json.dumps(value)
    if conn.dialect.name == "postgresql":
        return cast(literal(text), JSON)
    return literal(text)
