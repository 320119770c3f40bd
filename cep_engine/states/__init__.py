"""State machines declared as tables: phase and readiness review."""

from cep_engine.states._table import Fired, Guard, GuardResult, MachineTable, Transition
from cep_engine.states.action import ACTION_MACHINE, ActionFacts, ActionStatus
from cep_engine.states.issue import (
    ISSUE_MACHINE,
    LADDER_MACHINE,
    IssueFacts,
    IssueStatus,
    Level,
    Priority,
)
from cep_engine.states.phase import PHASE_MACHINE, Phase, PhaseFacts
from cep_engine.states.readiness import READINESS_MACHINE, ReadinessFacts, ReviewState, Stage
from cep_engine.states.risk import RISK_MACHINE, RiskFacts, RiskStatus

MACHINES: dict[str, MachineTable[object]] = {
    "phase": PHASE_MACHINE,  # type: ignore[dict-item]
    "readiness": READINESS_MACHINE,  # type: ignore[dict-item]
    "issue": ISSUE_MACHINE,  # type: ignore[dict-item]
    "ladder": LADDER_MACHINE,  # type: ignore[dict-item]
    "risk": RISK_MACHINE,  # type: ignore[dict-item]
    "action": ACTION_MACHINE,  # type: ignore[dict-item]
}
"""Every machine by name, for ``cep diagram`` and the structural tests."""

__all__ = [
    "ACTION_MACHINE",
    "ISSUE_MACHINE",
    "LADDER_MACHINE",
    "MACHINES",
    "PHASE_MACHINE",
    "READINESS_MACHINE",
    "RISK_MACHINE",
    "ActionFacts",
    "ActionStatus",
    "Fired",
    "Guard",
    "GuardResult",
    "IssueFacts",
    "IssueStatus",
    "Level",
    "MachineTable",
    "Phase",
    "PhaseFacts",
    "Priority",
    "ReadinessFacts",
    "ReviewState",
    "RiskFacts",
    "RiskStatus",
    "Stage",
    "Transition",
]
