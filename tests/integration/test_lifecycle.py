"""A project's whole life through the service layer, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from cep_engine.errors import (
    InvalidInput,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from cep_engine.services import projects, queries, readiness
from cep_engine.store.db import Store
from cep_engine.store.models import AuditEntry, ChecklistSubmission
from tests.conftest import COORD, NOW, PM, SENIOR, SPONSOR, TEAM, audit_count, snapshot

LATER = NOW + timedelta(hours=1)


def complete_stage(store: Store, key: str, stage: str) -> None:
    """Coordinator does every task and submits; the PM validates."""
    with store.reading() as s:
        tasks = queries.show_checklist(s, key, stage)["tasks"]
    for t in tasks:
        if not t["done_at"]:
            readiness.set_task_done(store, key, stage, t["number"], actor=COORD, now=LATER)
    readiness.submit(store, key, stage, signer="Casey Rivera", attestation="All done",
                     actor=COORD, now=LATER)
    readiness.review(store, key, stage, "validate", actor=PM, now=LATER)


def test_full_lifecycle(store: Store, project: str) -> None:
    assert projects.fire_phase(store, project, "advance", actor=PM, now=LATER).dest == "planning"
    complete_stage(store, project, "pre_cutover")
    assert projects.fire_phase(store, project, "advance", actor=SENIOR, now=LATER).dest \
        == "execution"
    complete_stage(store, project, "cutover")
    assert projects.fire_phase(store, project, "advance", actor=PM, now=LATER).dest == "closing"
    complete_stage(store, project, "post_cutover")
    projects.record_signoff(store, project, "Casey Rivera", "Accepted", actor=COORD, now=LATER)
    assert projects.fire_phase(store, project, "advance", actor=PM, now=LATER).dest == "closed"
    with store.reading() as s:
        shown = queries.show_project(s, project)
        trail = queries.history(s, project)
    assert shown["phase"] == "closed"
    assert shown["version"] == 5
    phase_moves = [(a["from"], a["to"]) for a in trail if a["entity_type"] == "project"
                   and a["trigger"] == "advance"]
    assert phase_moves == [("initiation", "planning"), ("planning", "execution"),
                           ("execution", "closing"), ("closing", "closed")]
    assert all(a["accepted"] for a in trail)
    assert all(a["at"].endswith("+00:00") for a in trail)


def test_hold_and_resume_returns_to_the_phase_left(store: Store, project: str) -> None:
    projects.fire_phase(store, project, "advance", actor=PM, now=LATER)
    projects.fire_phase(store, project, "hold", actor=PM, now=LATER, reason="budget review")
    with store.reading() as s:
        assert queries.show_project(s, project)["held_from"] == "planning"
    assert projects.fire_phase(store, project, "resume", actor=SENIOR, now=LATER).dest \
        == "planning"


def test_sponsor_cancels(store: Store, project: str) -> None:
    assert projects.fire_phase(store, project, "cancel", actor=SPONSOR, now=LATER).dest \
        == "cancelled"


def _assert_refused_unchanged(store: Store, call: object, exc: type[Exception],
                              audited: int) -> Exception:
    before, audit_before = snapshot(store), audit_count(store)
    with pytest.raises(exc) as info:
        call()  # type: ignore[operator]
    assert snapshot(store) == before
    assert audit_count(store) == audit_before + audited
    return info.value


def test_guard_refusal_changes_nothing_but_is_audited(store: Store, project: str) -> None:
    projects.fire_phase(store, project, "advance", actor=PM, now=LATER)
    err = _assert_refused_unchanged(
        store, lambda: projects.fire_phase(store, project, "advance", actor=PM, now=LATER),
        TransitionRefused, audited=1)
    assert "pre_cutover_checklist_validated" in str(err)
    with store.reading() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert last is not None and not last.accepted
    assert last.guards == [{"guard": "pre_cutover_checklist_validated", "passed": False,
                            "detail": last.guards[0]["detail"]}]
    assert last.actor_roles == "assigned_pm"


def test_wrong_role_is_refused_and_audited(store: Store, project: str) -> None:
    err = _assert_refused_unchanged(
        store, lambda: projects.fire_phase(store, project, "advance", actor=TEAM, now=LATER),
        PermissionDenied, audited=1)
    assert "needs assigned_pm or senior_pm" in str(err)
    _assert_refused_unchanged(
        store, lambda: projects.fire_phase(store, project, "cancel", actor=PM, now=LATER),
        PermissionDenied, audited=1)


@pytest.mark.parametrize(
    ("call", "exc", "fragment"),
    [
        (lambda st: projects.fire_phase(st, "SDC-999", "advance", actor=PM, now=LATER),
         NotFound, "no project SDC-999"),
        (lambda st: projects.fire_phase(st, "SDC-042", "advance", actor="x@nowhere.gov",
                                        now=LATER), NotFound, "no person x@nowhere.gov"),
        (lambda st: projects.assign_role(st, "SDC-042", "wizard", PM, actor=PM, now=LATER),
         InvalidInput, "unknown role 'wizard'"),
        (lambda st: projects.add_person(st, "not-an-email", "X", now=LATER),
         InvalidInput, "malformed"),
        (lambda st: projects.fire_phase(st, "SDC-042", "advance", actor=PM, now=LATER,
                                        reason="x" * 5000), InvalidInput, "limit is 4000"),
        (lambda st: readiness.add_task(st, "SDC-042", "cutover", "   ", actor=PM, now=LATER),
         InvalidInput, "task text is empty"),
        (lambda st: projects.fire_phase(st, "bad key", "advance", actor=PM, now=LATER),
         InvalidInput, "malformed"),
    ],
)
def test_bad_input_changes_nothing(store: Store, project: str, call, exc, fragment) -> None:  # type: ignore[no-untyped-def]
    err = _assert_refused_unchanged(store, lambda: call(store), exc, audited=0)
    assert fragment in str(err)


def test_submit_needs_every_task_done_and_a_signature(store: Store, project: str) -> None:
    readiness.set_task_done(store, project, "cutover", 1, actor=COORD, now=LATER)
    err = _assert_refused_unchanged(
        store, lambda: readiness.submit(store, project, "cutover", signer="C", attestation="A",
                                        actor=COORD, now=LATER),
        TransitionRefused, audited=1)
    assert err.guard == "all_tasks_done"  # type: ignore[attr-defined]
    for n in (2, 3, 4):
        readiness.set_task_done(store, project, "cutover", n, actor=COORD, now=LATER)
    err = _assert_refused_unchanged(
        store, lambda: readiness.submit(store, project, "cutover", signer="", attestation="A",
                                        actor=COORD, now=LATER),
        TransitionRefused, audited=1)
    assert err.guard == "checklist_signed"  # type: ignore[attr-defined]
    _assert_refused_unchanged(
        store, lambda: readiness.submit(store, project, "cutover", signer="C", attestation="A",
                                        actor=PM, now=LATER),
        PermissionDenied, audited=1)


def test_return_then_resubmit_keeps_every_version(store: Store, project: str) -> None:
    for n in range(1, 5):
        readiness.set_task_done(store, project, "cutover", n, actor=COORD, now=LATER)
    readiness.submit(store, project, "cutover", signer="Casey", attestation="v1", actor=COORD,
                     now=LATER)
    _assert_refused_unchanged(
        store, lambda: readiness.review(store, project, "cutover", "return", actor=PM,
                                        now=LATER, comment=""),
        TransitionRefused, audited=1)
    _assert_refused_unchanged(
        store, lambda: readiness.set_task_done(store, project, "cutover", 1, actor=COORD,
                                               now=LATER, done=False),
        TransitionRefused, audited=1)
    readiness.review(store, project, "cutover", "return", actor=PM, now=LATER,
                     comment="Rollback test missing")
    readiness.set_task_done(store, project, "cutover", 2, actor=COORD, now=LATER, done=False)
    readiness.set_task_done(store, project, "cutover", 2, actor=COORD, now=LATER)
    readiness.submit(store, project, "cutover", signer="Casey", attestation="v2", actor=COORD,
                     now=LATER)
    readiness.review(store, project, "cutover", "validate", actor=PM, now=LATER)
    with store.reading() as s:
        shown = queries.show_checklist(s, project, "cutover")
    assert shown["state"] == "validated"
    assert [(v["version"], v["attestation"], v["review"]["decision"])
            for v in shown["submissions"]] == [(1, "v1", "returned"), (2, "v2", "validated")]
    assert shown["submissions"][0]["review"]["comment"] == "Rollback test missing"


def test_submissions_are_append_only(store: Store, project: str) -> None:
    for n in range(1, 5):
        readiness.set_task_done(store, project, "cutover", n, actor=COORD, now=LATER)
    readiness.submit(store, project, "cutover", signer="Casey", attestation="v1", actor=COORD,
                     now=LATER)
    with pytest.raises(RuntimeError, match="append-only"), store.transaction() as s:
        sub = s.scalars(select(ChecklistSubmission)).one()
        sub.attestation = "forged"


def test_signoff_only_in_closing_by_the_coordinator(store: Store, project: str) -> None:
    err = _assert_refused_unchanged(
        store, lambda: projects.record_signoff(store, project, "C", "ok", actor=COORD,
                                               now=LATER),
        TransitionRefused, audited=1)
    assert "closing phase" in str(err)
    _assert_refused_unchanged(
        store, lambda: projects.record_signoff(store, project, "C", "ok", actor=PM, now=LATER),
        PermissionDenied, audited=1)


def test_only_admins_assign_roles_once_one_exists(store: Store, project: str) -> None:
    _assert_refused_unchanged(
        store, lambda: projects.assign_role(store, project, "service_owner", TEAM, actor=TEAM,
                                            now=LATER),
        PermissionDenied, audited=1)
    projects.assign_role(store, project, "service_owner", TEAM, actor=PM, now=LATER)
    with store.reading() as s:
        roles = {(r["role"], r["email"]) for r in queries.list_roles(s, project)}
    assert ("service_owner", TEAM) in roles and ("cts_team_member", TEAM) in roles


def test_an_open_critical_issue_blocks_closing(store: Store, project: str) -> None:
    from cep_engine.escalation.policy import load_policy
    from cep_engine.services import issues
    from cep_engine.settings import REPO_CONFIG_DIR

    policy = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
    projects.fire_phase(store, project, "advance", actor=PM, now=LATER)
    complete_stage(store, project, "pre_cutover")
    projects.fire_phase(store, project, "advance", actor=PM, now=LATER)
    complete_stage(store, project, "cutover")
    number = issues.open_issue(store, project, "Storage array offline", priority_name="critical",
                               actor=PM, now=LATER, policy=policy).number
    err = _assert_refused_unchanged(
        store, lambda: projects.fire_phase(store, project, "advance", actor=PM, now=LATER),
        TransitionRefused, audited=1)
    assert err.guard == "no_critical_issue_open"  # type: ignore[attr-defined]
    assert "1 critical issue(s) open" in str(err)
    issues.change_status(store, project, number, "resolve", actor=PM, now=LATER,
                         note="Array replaced")
    assert projects.fire_phase(store, project, "advance", actor=PM, now=LATER).dest == "closing"
