"""The project phase machine: initiation -> planning -> execution -> closing -> closed.

Any open phase may be put ``on_hold``; ``resume`` returns to the phase it left. A project
may be ``cancelled`` from any open phase or from hold. Each ``advance`` is guarded by the
readiness gate the Customer Engagement Plan sets for leaving that phase.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cep_engine.roles import Role
from cep_engine.states._table import Guard, MachineTable, Transition, sources
from cep_engine.states.readiness import Stage


class Phase(StrEnum):
    """Where a project stands in its implementation."""

    INITIATION = "initiation"
    PLANNING = "planning"
    EXECUTION = "execution"
    CLOSING = "closing"
    CLOSED = "closed"
    ON_HOLD = "on_hold"
    CANCELLED = "cancelled"


OPEN_PHASES = (Phase.INITIATION, Phase.PLANNING, Phase.EXECUTION, Phase.CLOSING)
"""Phases in which work goes on, in the order a project passes through them."""

CORE_ROLES = (Role.CLIENT_LIAISON, Role.ASSIGNED_PM, Role.IMPLEMENTATION_COORDINATOR)


@dataclass(frozen=True)
class PhaseFacts:
    """What the phase guards need to know about a project, read in one transaction."""

    assigned_roles: frozenset[Role] = frozenset()
    validated_stages: frozenset[Stage] = frozenset()
    open_critical_issues: int = 0
    customer_signoff: bool = False
    held_from: Phase | None = None


def core_roles_assigned(facts: PhaseFacts) -> str | None:
    """A client liaison, an assigned PM and an agency implementation coordinator are assigned."""
    missing = [r.value for r in CORE_ROLES if r not in facts.assigned_roles]
    if not missing:
        return None
    return f"no {', '.join(missing)} assigned; assign with `cep role assign KEY ROLE EMAIL`"


def _stage_validated(stage: Stage) -> Guard[PhaseFacts]:
    def check(facts: PhaseFacts) -> str | None:
        if stage in facts.validated_stages:
            return None
        return (
            f"the {stage.value} readiness checklist is not validated; the implementation "
            f"coordinator submits it and the assigned PM validates it (`cep checklist`)"
        )

    check.__doc__ = f"The {stage.value} readiness checklist is validated by the assigned PM."
    return Guard(f"{stage.value}_checklist_validated", check)


def no_critical_issue_open(facts: PhaseFacts) -> str | None:
    """No critical issue is open in the project's Issues Log."""
    if facts.open_critical_issues == 0:
        return None
    return f"{facts.open_critical_issues} critical issue(s) open; resolve them first"


def customer_signoff_recorded(facts: PhaseFacts) -> str | None:
    """The agency implementation coordinator has recorded the customer's sign-off."""
    if facts.customer_signoff:
        return None
    return "no customer sign-off; the implementation coordinator records it with `cep signoff`"


def _left(phase: Phase) -> Guard[PhaseFacts]:
    def check(facts: PhaseFacts) -> str | None:
        if facts.held_from == phase:
            return None
        return f"the project was not held from {phase.value}"

    check.__doc__ = f"The project was put on hold from {phase.value}."
    return Guard(f"held_from_{phase.value}", check)


CORE_ROLES_ASSIGNED = Guard("core_roles_assigned", core_roles_assigned)
PRE_CUTOVER_VALIDATED = _stage_validated(Stage.PRE_CUTOVER)
CUTOVER_VALIDATED = _stage_validated(Stage.CUTOVER)
POST_CUTOVER_VALIDATED = _stage_validated(Stage.POST_CUTOVER)
NO_CRITICAL_ISSUE_OPEN = Guard("no_critical_issue_open", no_critical_issue_open)
CUSTOMER_SIGNOFF_RECORDED = Guard("customer_signoff_recorded", customer_signoff_recorded)

P = Phase
_MANAGERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM})
_SPONSORS = frozenset({Role.PROJECT_SPONSOR, Role.EXECUTIVE_SPONSOR})

PHASE_MACHINE: MachineTable[PhaseFacts] = MachineTable(
    name="phase",
    states=Phase,
    initial=P.INITIATION.value,
    final=frozenset({P.CLOSED.value, P.CANCELLED.value}),
    entity_label="project",
    transitions=(
        Transition("advance", sources([P.INITIATION]), P.PLANNING, (CORE_ROLES_ASSIGNED,)),
        Transition("advance", sources([P.PLANNING]), P.EXECUTION, (PRE_CUTOVER_VALIDATED,)),
        Transition(
            "advance",
            sources([P.EXECUTION]),
            P.CLOSING,
            (CUTOVER_VALIDATED, NO_CRITICAL_ISSUE_OPEN),
        ),
        Transition(
            "advance",
            sources([P.CLOSING]),
            P.CLOSED,
            (POST_CUTOVER_VALIDATED, CUSTOMER_SIGNOFF_RECORDED),
        ),
        Transition("hold", sources(OPEN_PHASES), P.ON_HOLD),
        *(Transition("resume", sources([P.ON_HOLD]), p, (_left(p),)) for p in OPEN_PHASES),
        Transition("cancel", sources([*OPEN_PHASES, P.ON_HOLD]), P.CANCELLED),
    ),
    roles={
        "advance": _MANAGERS,
        "hold": _MANAGERS,
        "resume": _MANAGERS,
        "cancel": _SPONSORS,
    },
)
"""The phase machine table: it runs the machine and generates its diagram and docs."""

PHASE_TRIGGERS = PHASE_MACHINE.triggers

__all__ = [
    "CORE_ROLES",
    "OPEN_PHASES",
    "PHASE_MACHINE",
    "PHASE_TRIGGERS",
    "Phase",
    "PhaseFacts",
]
