"""The Risk Log machine: identified -> monitoring -> triggered -> closed.

The assigned PM and the senior PM maintain the Risk Log. A risk triggers when someone fires
it (``cep risk trigger``) or when its trigger date arrives (the engine's risk sweep, which
fires ``trigger`` with no role); triggering opens an issue linked to the risk. Any risk that
is not closed may be closed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from cep_engine.roles import Role
from cep_engine.states._table import SAME, Guard, MachineTable, Transition, sources


def ref(number: int) -> str:
    """How a risk is named: ``R-3``."""
    return f"R-{number}"


class RiskStatus(StrEnum):
    """Where a risk stands."""

    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    TRIGGERED = "triggered"
    CLOSED = "closed"


@dataclass(frozen=True)
class RiskFacts:
    """What the risk guards need: the trigger's inputs."""

    text: str = ""


def reason_given(facts: RiskFacts) -> str | None:
    """Closing a risk says why: mitigated, accepted, no longer relevant."""
    if facts.text.strip():
        return None
    return "say why with --note TEXT"


REASON_GIVEN = Guard("reason_given", reason_given)

R = RiskStatus
_OPEN = sources([R.IDENTIFIED, R.MONITORING, R.TRIGGERED])
RISK_KEEPERS = frozenset({Role.ASSIGNED_PM, Role.SENIOR_PM})
"""Who maintains the Risk Log: the assigned PM; the senior PM oversees it."""

RISK_MACHINE: MachineTable[RiskFacts] = MachineTable(
    name="risk",
    states=RiskStatus,
    initial=R.IDENTIFIED.value,
    final=frozenset({R.CLOSED.value}),
    entity_label="risk",
    transitions=(
        Transition("monitor", sources([R.IDENTIFIED]), R.MONITORING),
        Transition("update", _OPEN, SAME),
        Transition("trigger", sources([R.IDENTIFIED, R.MONITORING]), R.TRIGGERED),
        Transition("close", _OPEN, R.CLOSED, (REASON_GIVEN,)),
    ),
    roles={
        "monitor": RISK_KEEPERS,
        "update": RISK_KEEPERS,
        "trigger": RISK_KEEPERS | {Role.IMPLEMENTATION_COORDINATOR},
        "close": RISK_KEEPERS,
    },
)
"""The Risk Log table. The implementation coordinator, who escalates the agency's risks,
may also fire ``trigger``; the engine fires it when the trigger date arrives."""
