"""The Issues Log machines: an issue's status, and its place on the escalation ladder.

Status: open -> in_progress -> resolved -> closed, with reopen from resolved.
Ladder: team -> senior_pm -> project_sponsor -> executive_sponsor. The engine's sweep
``escalate``s an issue nobody works on; the holder of the current level may
``acknowledge``, ``snooze`` or ``deescalate`` it. Resolving takes the issue off the ladder;
reopening puts it back at team level; closing retires it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from cep_engine.roles import Role
from cep_engine.states._table import Guard, MachineTable, Transition, sources


class Priority(StrEnum):
    """How urgent an issue is; each priority has its own escalation ladder."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class IssueStatus(StrEnum):
    """Where an issue stands in its resolution."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    RESOLVED = "resolved"
    CLOSED = "closed"


class Level(StrEnum):
    """The rung of the escalation ladder an issue is on, and the ladder's exits."""

    TEAM = "team"
    SENIOR_PM = "senior_pm"
    PROJECT_SPONSOR = "project_sponsor"
    EXECUTIVE_SPONSOR = "executive_sponsor"
    OFF_LADDER = "off_ladder"
    RETIRED = "retired"


LADDER = (Level.TEAM, Level.SENIOR_PM, Level.PROJECT_SPONSOR, Level.EXECUTIVE_SPONSOR)
"""The rungs, lowest first."""

LEVEL_HOLDER = {
    Level.TEAM: Role.ASSIGNED_PM,
    Level.SENIOR_PM: Role.SENIOR_PM,
    Level.PROJECT_SPONSOR: Role.PROJECT_SPONSOR,
    Level.EXECUTIVE_SPONSOR: Role.EXECUTIVE_SPONSOR,
}
"""Who holds each rung: the role that may acknowledge, snooze or de-escalate there."""


@dataclass(frozen=True)
class IssueFacts:
    """What the issue guards need: the actor's roles and the trigger's inputs."""

    level: Level = Level.TEAM
    actor_roles: frozenset[Role] = frozenset()
    text: str = ""
    now: datetime | None = None
    snooze_until: datetime | None = None
    snooze_limit: datetime | None = None
    stale_seconds: float = 0.0
    threshold_seconds: float | None = None
    snoozed_until: datetime | None = None


def stale_past_threshold(facts: IssueFacts) -> str | None:
    """The issue has had no activity or acknowledgement for the next rung's threshold of
    business time (the sweep evaluates this in SQL against one cutoff per rung)."""
    if facts.threshold_seconds is None:
        return "the policy has no higher rung for this priority"
    if facts.stale_seconds >= facts.threshold_seconds:
        return None
    return (f"idle {facts.stale_seconds / 3600:.1f} business hours of "
            f"{facts.threshold_seconds / 3600:.1f}")


def not_snoozed(facts: IssueFacts) -> str | None:
    """No snooze by the current level's holder is running."""
    if facts.snoozed_until is None or facts.now is None or facts.snoozed_until <= facts.now:
        return None
    return f"snoozed until {facts.snoozed_until.isoformat()}"


def text_given(facts: IssueFacts) -> str | None:
    """The change says why: a resolution, or the reason for reopening."""
    if facts.text.strip():
        return None
    return "say why with --note TEXT"


def actor_holds_current_level(facts: IssueFacts) -> str | None:
    """The actor holds the role of the issue's current rung (team: the assigned PM)."""
    holder = LEVEL_HOLDER.get(facts.level)
    if holder is not None and holder in facts.actor_roles:
        return None
    who = holder.value if holder else "nobody"
    return f"the issue is at {facts.level.value} level; only its holder ({who}) may do this"


def snooze_within_cap(facts: IssueFacts) -> str | None:
    """The snooze ends in the future and no later than the policy's snooze cap."""
    if facts.snooze_until is None or facts.now is None or facts.snooze_limit is None:
        return "give --until TIME"
    if facts.snooze_until <= facts.now:
        return "the snooze must end in the future"
    if facts.snooze_until > facts.snooze_limit:
        return f"the snooze may last until {facts.snooze_limit.isoformat()} at most (snooze_max)"
    return None


TEXT_GIVEN = Guard("text_given", text_given)
ACTOR_HOLDS_LEVEL = Guard("actor_holds_current_level", actor_holds_current_level)
SNOOZE_WITHIN_CAP = Guard("snooze_within_cap", snooze_within_cap)
STALE_PAST_THRESHOLD = Guard("stale_past_threshold", stale_past_threshold)
NOT_SNOOZED = Guard("not_snoozed", not_snoozed)

S = IssueStatus
_ANY_MEMBER = frozenset(Role)
_MANAGERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM})
_DECIDERS = _MANAGERS | {Role.PROJECT_SPONSOR, Role.EXECUTIVE_SPONSOR}

ISSUE_MACHINE: MachineTable[IssueFacts] = MachineTable(
    name="issue",
    states=IssueStatus,
    initial=S.OPEN.value,
    final=frozenset({S.CLOSED.value}),
    entity_label="issue",
    transitions=(
        Transition("start", sources([S.OPEN]), S.IN_PROGRESS),
        Transition("resolve", sources([S.OPEN, S.IN_PROGRESS]), S.RESOLVED, (TEXT_GIVEN,)),
        Transition("reopen", sources([S.RESOLVED]), S.OPEN, (TEXT_GIVEN,)),
        Transition("close", sources([S.RESOLVED]), S.CLOSED),
    ),
    roles={
        "start": _ANY_MEMBER,
        "resolve": _DECIDERS,
        "reopen": _MANAGERS | {Role.CLIENT_LIAISON, Role.IMPLEMENTATION_COORDINATOR},
        "close": _MANAGERS,
    },
)
"""The issue status table."""

L = Level
_RUNGS = sources(LADDER)
_HOLDERS = frozenset(LEVEL_HOLDER.values())

LADDER_MACHINE: MachineTable[IssueFacts] = MachineTable(
    name="ladder",
    states=Level,
    initial=L.TEAM.value,
    final=frozenset({L.RETIRED.value}),
    entity_label="issue",
    transitions=(
        *(Transition("escalate", sources([lo]), hi, (STALE_PAST_THRESHOLD, NOT_SNOOZED))
          for lo, hi in itertools.pairwise(LADDER)),
        Transition("acknowledge", _RUNGS, "=", (ACTOR_HOLDS_LEVEL,)),
        Transition("snooze", _RUNGS, "=", (ACTOR_HOLDS_LEVEL, SNOOZE_WITHIN_CAP)),
        *(Transition("deescalate", sources([hi]), lo, (ACTOR_HOLDS_LEVEL,))
          for lo, hi in itertools.pairwise(LADDER)),
        Transition("leave", _RUNGS, L.OFF_LADDER),
        Transition("rejoin", sources([L.OFF_LADDER]), L.TEAM),
        Transition("retire", sources([L.OFF_LADDER]), L.RETIRED),
    ),
    roles={
        "escalate": frozenset(),
        "acknowledge": _HOLDERS,
        "snooze": _HOLDERS,
        "deescalate": _HOLDERS,
        "leave": frozenset(),
        "rejoin": frozenset(),
        "retire": frozenset(),
    },
)
"""The escalation ladder table. Triggers with no roles are fired by the engine only: the
sweep (escalate) and the status changes (leave on resolve, rejoin on reopen, retire on
close)."""
