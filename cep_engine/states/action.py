"""The Action Items Log machine: open -> done or cancelled; a done item may be reopened.

The client liaison keeps the log (with the assigned PM); an item's owner may mark it done.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cep_engine.roles import Role
from cep_engine.states._table import SAME, Guard, MachineTable, Transition, sources


def ref(number: int) -> str:
    """How an action item is named: ``A-12``."""
    return f"A-{number}"


class ActionStatus(StrEnum):
    """Where an action item stands."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class Source(StrEnum):
    """Where an action item comes from."""

    MEETING = "meeting"
    ISSUE = "issue"
    RISK = "risk"
    MANUAL = "manual"


ACTION_KEEPERS = frozenset({Role.CLIENT_LIAISON, Role.ASSIGNED_PM})
"""Who keeps the Action Items Log: the client liaison, with the assigned PM."""


@dataclass(frozen=True)
class ActionFacts:
    """What the action guards need: the actor's roles and whether they own the item."""

    actor_roles: frozenset[Role] = frozenset()
    actor_is_owner: bool = False


def owner_or_keeper(facts: ActionFacts) -> str | None:
    """The actor owns the item, or keeps the log (client liaison or assigned PM)."""
    if facts.actor_is_owner or facts.actor_roles & ACTION_KEEPERS:
        return None
    return "only the item's owner, the client liaison or the assigned PM may do this"


OWNER_OR_KEEPER = Guard("owner_or_keeper", owner_or_keeper)

A = ActionStatus

ACTION_MACHINE: MachineTable[ActionFacts] = MachineTable(
    name="action",
    states=ActionStatus,
    initial=A.OPEN.value,
    final=frozenset({A.CANCELLED.value}),
    entity_label="action item",
    transitions=(
        Transition("update", sources([A.OPEN]), SAME),
        Transition("done", sources([A.OPEN]), A.DONE, (OWNER_OR_KEEPER,)),
        Transition("reopen", sources([A.DONE]), A.OPEN),
        Transition("cancel", sources([A.OPEN]), A.CANCELLED),
    ),
    roles={
        "update": ACTION_KEEPERS,
        "done": frozenset(Role),
        "reopen": ACTION_KEEPERS,
        "cancel": ACTION_KEEPERS,
    },
)
"""The Action Items Log table. ``done`` is open to every project member, and its guard
lets only the item's owner or a keeper of the log fire it."""
