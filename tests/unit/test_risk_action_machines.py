"""The Risk Log and Action Items Log tables: moves, guards and who may fire what."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cep_engine.errors import TransitionRefused
from cep_engine.roles import Role
from cep_engine.states import (
    ACTION_MACHINE,
    MACHINES,
    RISK_MACHINE,
    ActionFacts,
    ActionStatus,
    RiskFacts,
    RiskStatus,
)


def test_both_machines_are_registered() -> None:
    assert MACHINES["risk"] is RISK_MACHINE
    assert MACHINES["action"] is ACTION_MACHINE


@pytest.mark.parametrize("start", ["identified", "monitoring"])
def test_risk_triggers_from_identified_or_monitoring(start: str) -> None:
    assert RISK_MACHINE.fire(start, "trigger", RiskFacts(), entity="R").dest == "triggered"


def test_a_triggered_risk_cannot_trigger_again() -> None:
    with pytest.raises(TransitionRefused, match="'trigger' is not possible from triggered"):
        RISK_MACHINE.fire("triggered", "trigger", RiskFacts(), entity="SDC-1 R-1")


@pytest.mark.parametrize("start", ["identified", "monitoring", "triggered"])
def test_risk_closes_from_any_open_state_with_a_reason(start: str) -> None:
    with pytest.raises(TransitionRefused) as refused:
        RISK_MACHINE.fire(start, "close", RiskFacts(), entity="R")
    assert refused.value.guard == "reason_given"
    assert RISK_MACHINE.fire(start, "close", RiskFacts(text="mitigated"), entity="R").dest == (
        "closed")


def test_closed_risk_is_final_and_update_stays() -> None:
    assert RISK_MACHINE.available("closed") == ()
    assert RISK_MACHINE.fire("monitoring", "update", RiskFacts(), entity="R").dest == (
        "monitoring")


def test_risk_log_is_kept_by_the_pms() -> None:
    keepers = {Role.ASSIGNED_PM, Role.SENIOR_PM}
    for trigger in ("monitor", "update", "close"):
        assert RISK_MACHINE.allowed_roles(trigger) == keepers
    assert RISK_MACHINE.allowed_roles("trigger") == keepers | {Role.IMPLEMENTATION_COORDINATOR}


@pytest.mark.parametrize(
    ("roles", "owner", "passes"),
    [
        (frozenset({Role.CTS_TEAM_MEMBER}), True, True),
        (frozenset({Role.CTS_TEAM_MEMBER}), False, False),
        (frozenset({Role.CLIENT_LIAISON}), False, True),
        (frozenset({Role.ASSIGNED_PM}), False, True),
        (frozenset({Role.SENIOR_PM}), False, False),
    ],
)
def test_done_needs_the_owner_or_a_keeper(roles: frozenset[Role], owner: bool,
                                          passes: bool) -> None:
    facts = ActionFacts(actor_roles=roles, actor_is_owner=owner)
    if passes:
        assert ACTION_MACHINE.fire("open", "done", facts, entity="A").dest == "done"
    else:
        with pytest.raises(TransitionRefused) as refused:
            ACTION_MACHINE.fire("open", "done", facts, entity="A")
        assert refused.value.guard == "owner_or_keeper"


def test_action_reopen_and_cancel() -> None:
    assert ACTION_MACHINE.fire("done", "reopen", ActionFacts(), entity="A").dest == "open"
    assert ACTION_MACHINE.fire("open", "cancel", ActionFacts(), entity="A").dest == "cancelled"
    with pytest.raises(TransitionRefused, match="none \\(final state\\)"):
        ACTION_MACHINE.fire("cancelled", "reopen", ActionFacts(), entity="A")


@given(st.lists(st.sampled_from(RISK_MACHINE.triggers), max_size=12))
def test_any_risk_trigger_sequence_stays_in_known_states(triggers: list[str]) -> None:
    """Whatever is fired, a risk is always in one of its states, and closed stays closed."""
    state = RiskStatus.IDENTIFIED.value
    facts = RiskFacts(text="why")
    for trigger in triggers:
        before = state
        try:
            state = RISK_MACHINE.fire(state, trigger, facts, entity="R").dest
        except TransitionRefused:
            assert before == state
        assert state in set(RiskStatus)
        if before == "closed":
            assert state == "closed"


@given(st.lists(st.sampled_from(ACTION_MACHINE.triggers), max_size=12))
def test_any_action_trigger_sequence_stays_in_known_states(triggers: list[str]) -> None:
    state = ActionStatus.OPEN.value
    facts = ActionFacts(actor_is_owner=True)
    for trigger in triggers:
        with contextlib.suppress(TransitionRefused):
            state = ACTION_MACHINE.fire(state, trigger, facts, entity="A").dest
        assert state in set(ActionStatus)


@pytest.mark.parametrize("name", ["issue", "risk", "action"])
def test_readme_role_tables_are_the_generated_ones(name: str) -> None:
    """The README's "who may do what" tables are `cep diagram NAME --format markdown`."""
    from pathlib import Path

    from cep_engine.docs import render_machine

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert render_machine(name, "markdown") in readme
