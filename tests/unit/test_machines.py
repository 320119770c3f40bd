"""The machine tables: structure (reachability, finals, traps) and every guard."""

from __future__ import annotations

import pytest

from cep_engine.errors import TransitionRefused
from cep_engine.roles import Role
from cep_engine.states import (
    MACHINES,
    PHASE_MACHINE,
    READINESS_MACHINE,
    PhaseFacts,
    ReadinessFacts,
    Stage,
)
from cep_engine.states.phase import Phase

ALL_ROLES = frozenset(Role)
READY = PhaseFacts(
    assigned_roles=ALL_ROLES,
    validated_stages=frozenset(Stage),
    customer_signoff=True,
)


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_state_is_reachable(name: str) -> None:
    table = MACHINES[name]
    assert table.reachable() == {s.value for s in table.states}


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_final_states_have_no_way_out(name: str) -> None:
    table = MACHINES[name]
    assert table.final
    for state in table.final:
        assert table.available(state) == ()


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_no_trap_states(name: str) -> None:
    """Every non-final state can still reach a final state."""
    table = MACHINES[name]
    for state in table.states:
        assert table.can_reach_final(state.value), state


@pytest.mark.parametrize("name", sorted(MACHINES))
def test_every_trigger_names_its_roles(name: str) -> None:
    """Each trigger has a roles entry; an empty one means only the engine fires it."""
    table = MACHINES[name]
    assert set(table.roles) == set(table.triggers)
    people = [t for t in table.triggers if not table.engine_only(t)]
    assert people


def test_phase_happy_path_visits_every_open_phase_in_order() -> None:
    state, seen = Phase.INITIATION.value, []
    while state != Phase.CLOSED:
        state = PHASE_MACHINE.fire(state, "advance", READY, entity="SDC-1").dest
        seen.append(state)
    assert seen == ["planning", "execution", "closing", "closed"]


@pytest.mark.parametrize(
    ("state", "facts", "guard"),
    [
        ("initiation", PhaseFacts(assigned_roles=frozenset({Role.ASSIGNED_PM})),
         "core_roles_assigned"),
        ("planning", PhaseFacts(), "pre_cutover_checklist_validated"),
        ("execution", PhaseFacts(validated_stages=frozenset({Stage.PRE_CUTOVER})),
         "cutover_checklist_validated"),
        ("execution", PhaseFacts(validated_stages=frozenset(Stage), open_critical_issues=2),
         "no_critical_issue_open"),
        ("closing", PhaseFacts(validated_stages=frozenset(Stage)), "customer_signoff_recorded"),
        ("closing", PhaseFacts(customer_signoff=True), "post_cutover_checklist_validated"),
    ],
)
def test_each_phase_gate_refuses_with_the_guard_named(
    state: str, facts: PhaseFacts, guard: str
) -> None:
    with pytest.raises(TransitionRefused) as info:
        PHASE_MACHINE.fire(state, "advance", facts, entity="SDC-1")
    assert info.value.guard == guard
    assert guard in str(info.value)
    assert info.value.state == state


def test_missing_core_roles_are_named() -> None:
    facts = PhaseFacts(assigned_roles=frozenset({Role.ASSIGNED_PM}))
    with pytest.raises(TransitionRefused, match="client_liaison, implementation_coordinator"):
        PHASE_MACHINE.fire("initiation", "advance", facts, entity="SDC-1")


@pytest.mark.parametrize("phase", ["initiation", "planning", "execution", "closing"])
def test_resume_returns_to_the_phase_it_left(phase: str) -> None:
    held = PHASE_MACHINE.fire(phase, "hold", PhaseFacts(), entity="SDC-1")
    assert held.dest == "on_hold"
    back = PHASE_MACHINE.fire("on_hold", "resume", PhaseFacts(held_from=Phase(phase)),
                              entity="SDC-1")
    assert back.dest == phase


@pytest.mark.parametrize("state", ["closed", "cancelled"])
def test_final_phases_refuse_everything(state: str) -> None:
    for trigger in PHASE_MACHINE.triggers:
        with pytest.raises(TransitionRefused, match="final state"):
            PHASE_MACHINE.fire(state, trigger, READY, entity="SDC-1")


def test_unknown_trigger_is_refused_with_the_allowed_ones() -> None:
    with pytest.raises(TransitionRefused, match=r"unknown phase trigger 'jump'.*advance, hold"):
        PHASE_MACHINE.fire("planning", "jump", READY, entity="SDC-1")


def test_phase_roles_follow_the_plan() -> None:
    assert PHASE_MACHINE.allowed_roles("advance") == {Role.ASSIGNED_PM, Role.SENIOR_PM}
    assert PHASE_MACHINE.allowed_roles("cancel") == {Role.PROJECT_SPONSOR,
                                                     Role.EXECUTIVE_SPONSOR}


def test_readiness_loop_submit_return_rework_submit_validate() -> None:
    done = ReadinessFacts(task_count=2, signer_name="Casey", attestation="All done",
                          comment="Fix #2")
    path = ["start", "submit", "return", "rework", "submit", "validate"]
    state = "draft"
    for trigger in path:
        state = READINESS_MACHINE.fire(state, trigger, done, entity="SDC-1/cutover").dest
    assert state == "validated"


@pytest.mark.parametrize(
    ("facts", "guard"),
    [
        (ReadinessFacts(task_count=0, signer_name="C", attestation="A"), "has_tasks"),
        (ReadinessFacts(task_count=3, open_tasks=(2, 3), signer_name="C", attestation="A"),
         "all_tasks_done"),
        (ReadinessFacts(task_count=1, signer_name=" ", attestation="A"), "checklist_signed"),
        (ReadinessFacts(task_count=1, signer_name="C", attestation=""), "checklist_signed"),
    ],
)
def test_submit_guards(facts: ReadinessFacts, guard: str) -> None:
    with pytest.raises(TransitionRefused) as info:
        READINESS_MACHINE.fire("in_progress", "submit", facts, entity="SDC-1/cutover")
    assert info.value.guard == guard


def test_open_tasks_are_listed_in_the_refusal() -> None:
    facts = ReadinessFacts(task_count=3, open_tasks=(2, 3), signer_name="C", attestation="A")
    with pytest.raises(TransitionRefused, match="#2, #3 not done"):
        READINESS_MACHINE.fire("in_progress", "submit", facts, entity="SDC-1/cutover")


def test_return_needs_a_comment() -> None:
    with pytest.raises(TransitionRefused) as info:
        READINESS_MACHINE.fire("submitted", "return", ReadinessFacts(comment="  "), entity="x")
    assert info.value.guard == "return_comment_given"


def test_guard_results_are_traced_in_order() -> None:
    facts = ReadinessFacts(task_count=1, signer_name="C", attestation="A")
    fired = READINESS_MACHINE.fire("in_progress", "submit", facts, entity="x")
    assert [g.name for g in fired.guards] == ["has_tasks", "all_tasks_done", "checklist_signed"]
    assert all(g.passed for g in fired.guards)


def test_one_shared_machine_per_table() -> None:
    assert PHASE_MACHINE.machine is PHASE_MACHINE.machine
    PHASE_MACHINE.fire("initiation", "hold", PhaseFacts(), entity="x")
    assert PHASE_MACHINE.machine.models == []
