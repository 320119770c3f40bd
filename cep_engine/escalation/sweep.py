"""The escalation sweep: policy + calendar -> cutoff instants -> one set-based pass per rung.

For every stored policy snapshot, priority and rung, the calendar turns the rung's threshold
into one cutoff instant: an issue idle (no activity, no acknowledgement) since at or before
the cutoff has been idle at least the threshold in business time. An indexed join of the
open issues with those cutoffs finds the due set; the same transaction moves each due issue
one rung up, records its escalation (unique per issue, rung and cycle), its audit row and
its outbox message. Rungs are swept in order, so an issue idle long enough climbs several
rungs in one sweep, each exactly once. On PostgreSQL the due rows are locked with
``FOR UPDATE SKIP LOCKED``: two sweeps at once never escalate the same (issue, rung) twice.
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
    String,
    Table,
    and_,
    cast,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql.elements import ColumnElement

from cep_engine.clock import BusinessCalendar
from cep_engine.notify.outbox import Kind, Status
from cep_engine.states.issue import LADDER, LADDER_MACHINE
from cep_engine.store.db import Store
from cep_engine.store.models import (
    OPEN_ISSUE_SQL,
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
CUTOFFS = Table(
    "sweep_cutoffs", _temp,
    Column("rung", Integer), Column("policy_id", Integer), Column("priority", String(10)),
    Column("from_level", String(20)), Column("to_level", String(20)),
    Column("cutoff", UTCDateTime()), Column("to_roles", JSON), Column("cc_roles", JSON),
    Column("guards", JSON), Column("reason", String(400)),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)
DUE = Table(
    "sweep_due", _temp,
    Column("issue_id", Integer, primary_key=True), Column("project_id", Integer),
    Column("rung", Integer), Column("policy_id", Integer), Column("priority", String(10)),
    Column("from_level", String(20)), Column("to_level", String(20)),
    Column("stale_since", UTCDateTime()), Column("cycle", Integer),
    prefixes=["TEMPORARY"], postgresql_on_commit="DROP",
)


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

    def row(self) -> dict[str, Any]:
        """The row of the cutoffs table, with the guard results every due issue shares."""
        detail = f"idle since {self.cutoff.isoformat()} or earlier: {self.after} of business time"
        return {
            "rung": self.rung, "policy_id": self.policy_id, "priority": self.priority,
            "from_level": self.from_level, "to_level": self.to_level, "cutoff": self.cutoff,
            "to_roles": list(self.to_roles), "cc_roles": list(self.cc_roles),
            "guards": [{"guard": "stale_past_threshold", "passed": True, "detail": detail},
                       {"guard": "not_snoozed", "passed": True, "detail": None}],
            "reason": f"escalated by the sweep: no activity for {self.after} of business time",
        }


@dataclass
class SweepReport:
    """What one sweep did (or, with ``dry_run``, would do)."""

    as_of: datetime
    dry_run: bool
    cutoffs: int = 0
    escalations: Counter[tuple[str, str]] = field(default_factory=Counter)
    escalated: list[dict[str, Any]] = field(default_factory=list)
    """The first escalations one by one (project, issue number, from and to level), as many
    as ``run_sweep``'s ``detail`` asks for."""

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
    them one by one (for events about each issue; a bounded read however many are due).
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
                            text(f"issues.{OPEN_ISSUE_SQL}"))
    rows = conn.execute(
        select(EscalationPolicySnapshot.id, EscalationPolicySnapshot.body).where(in_use)
    )
    return {pid: body for pid, body in rows}


def _apply(conn: Connection, cutoffs: list[Cutoff], as_of: datetime,
           report: SweepReport, detail: int) -> None:
    CUTOFFS.create(conn)
    DUE.create(conn)
    conn.execute(insert(CUTOFFS), [c.row() for c in cutoffs])
    for rung in sorted({c.rung for c in cutoffs}):
        conn.execute(DUE.delete())
        conn.execute(_select_due(conn, rung, as_of))
        if conn.dialect.name == "postgresql":
            conn.execute(text("ANALYZE sweep_due"))
        counts = conn.execute(
            select(Project.key, DUE.c.to_level, func.count())
            .join(Project, Project.id == DUE.c.project_id)
            .group_by(Project.key, DUE.c.to_level)
        ).all()
        if not counts:
            continue
        report.escalations.update({(key, level): n for key, level, n in counts})
        if (room := detail - len(report.escalated)) > 0:
            report.escalated += _details(conn, room)
        _climb(conn, as_of)
    if conn.dialect.name != "postgresql":
        DUE.drop(conn)
        CUTOFFS.drop(conn)


def _details(conn: Connection, limit: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(Project.key, Issue.number, DUE.c.from_level, DUE.c.to_level, DUE.c.priority)
        .join(Issue, Issue.id == DUE.c.issue_id).join(Project, Project.id == DUE.c.project_id)
        .order_by(Project.key, Issue.number).limit(limit)
    )
    return [{"project": key, "issue": number, "from_level": src, "level": dest,
             "priority": priority} for key, number, src, dest, priority in rows]


def _select_due(conn: Connection, rung: int, as_of: datetime) -> Any:
    c = CUTOFFS.c
    query = (
        select(Issue.id, Issue.project_id, c.rung, c.policy_id, c.priority, c.from_level,
               c.to_level, Issue.stale_since, Issue.cycle)
        .join(CUTOFFS, and_(Issue.policy_id == c.policy_id, Issue.priority == c.priority,
                            Issue.level == c.from_level))
        .where(c.rung == rung, text(f"issues.{OPEN_ISSUE_SQL}"),
               Issue.stale_since <= c.cutoff,
               or_(Issue.snoozed_until.is_(None), Issue.snoozed_until <= as_of))
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=Issue.__table__, skip_locked=True)
    return insert(DUE).from_select(
        ["issue_id", "project_id", "rung", "policy_id", "priority", "from_level", "to_level",
         "stale_since", "cycle"], query)


def _climb(conn: Connection, as_of: datetime) -> None:
    d = DUE.c
    conn.execute(
        update(Issue).where(Issue.id == d.issue_id)
        .values(level=d.to_level, version=Issue.version + 1)
    )
    conn.execute(insert(Escalation).from_select(
        ["issue_id", "level", "cycle", "escalated_at", "stale_since"],
        select(d.issue_id, d.to_level, d.cycle, literal(as_of, UTCDateTime()), d.stale_since)))
    joined = (
        select()
        .select_from(DUE)
        .join(Issue, Issue.id == d.issue_id)
        .join(Project, Project.id == d.project_id)
        .join(CUTOFFS, and_(CUTOFFS.c.rung == d.rung, CUTOFFS.c.policy_id == d.policy_id,
                            CUTOFFS.c.priority == d.priority))
    )
    conn.execute(_audit_rows(conn, joined, as_of))
    conn.execute(_outbox_rows(conn, joined, as_of))


def _json_literal(conn: Connection, value: Any) -> ColumnElement[Any]:
    text = json.dumps(value)
    if conn.dialect.name == "postgresql":
        return cast(literal(text), JSON)
    return literal(text)


def _audit_rows(conn: Connection, joined: Any, as_of: datetime) -> Any:
    d, c = DUE.c, CUTOFFS.c
    entity = Project.key + literal("#") + cast(Issue.number, String)
    rows = joined.add_columns(
        literal(as_of, UTCDateTime()), literal(ENGINE_ACTOR), literal("engine"),
        d.project_id, literal("issue"), entity, literal("escalate"), d.from_level,
        d.to_level, literal(True), c.guards, c.reason,
    )
    return insert(AuditEntry).from_select(
        ["at", "actor", "actor_roles", "project_id", "entity_type", "entity", "trigger",
         "from_state", "to_state", "accepted", "guards", "reason"], rows)


def _outbox_rows(conn: Connection, joined: Any, as_of: datetime) -> Any:
    d, c = DUE.c, CUTOFFS.c
    key = (literal("escalation:") + cast(d.issue_id, String) + literal(":") + d.to_level
           + literal(":") + cast(d.cycle, String))
    build = func.json_build_object if conn.dialect.name == "postgresql" else func.json_object
    context = build(literal("issue_id"), d.issue_id, literal("level"), d.to_level,
                    literal("from_level"), d.from_level, literal("cycle"), d.cycle)
    rows = joined.add_columns(
        key, literal(Kind.ESCALATION.value), d.project_id, c.to_roles, c.cc_roles,
        _json_literal(conn, []), context, literal(Status.PENDING.value), literal(0),
        literal(as_of, UTCDateTime()), literal(as_of, UTCDateTime()),
    )
    cols = ["idempotency_key", "kind", "project_id", "to_roles", "cc_roles", "to_addresses",
            "context", "status", "attempts", "next_attempt_at", "created_at"]
    dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    return dialect_insert(OutboxMessage).from_select(cols, rows).on_conflict_do_nothing(
        index_elements=["idempotency_key"])
