"""The Issues, Risk and Action Items logs through the service layer, on SQLite and
PostgreSQL: permissions, refusals that leave the database unchanged, risk triggers and
reminders that fire exactly once, and CSV imports that are all or nothing."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from cep_engine.errors import CepError, InvalidInput, PermissionDenied, TransitionRefused
from cep_engine.escalation.policy import load_policy
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.services import (
    actions,
    imports,
    issue_queries,
    issues,
    log_queries,
    readiness,
    reminders,
    risks,
)
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.models import (
    ActionItem,
    Escalation,
    Issue,
    OutboxMessage,
    Risk,
)
from tests.conftest import (
    COORD,
    LIAISON,
    NOW,
    PM,
    SENIOR,
    TEAM,
    audit_count,
    snapshot,
    staff_project,
)

POLICY = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
CAL = POLICY.business_calendar
LATER = NOW + timedelta(hours=1)


def refused(store: Store, call: Callable[[], Any], error: type[CepError]) -> CepError:
    """``call`` raises ``error``, leaves every table as it was and audits the refusal."""
    before, audits = snapshot(store), audit_count(store, accepted=False)
    with pytest.raises(error) as caught:
        call()
    assert snapshot(store) == before
    if error in (PermissionDenied, TransitionRefused):
        assert audit_count(store, accepted=False) == audits + 1
    return caught.value


def _open(store: Store, key: str, priority: str = "high", actor: str = TEAM) -> Issue:
    return issues.open_issue(store, key, "Storage array late", priority_name=priority,
                             actor=actor, now=NOW, policy=POLICY, owner=TEAM)


# ---------------------------------------------------------------- issues


def test_issue_permissions_and_status(store: Store, project: str) -> None:
    issue = _open(store, project)
    issues.add_note(store, project, issue.number, "vendor called", actor=COORD, now=LATER)
    refused(store, lambda: issues.assign_owner(store, project, 1, COORD, actor=TEAM,
                                               now=LATER), PermissionDenied)
    issues.assign_owner(store, project, 1, COORD, actor=LIAISON, now=LATER)
    issues.change_status(store, project, 1, "start", actor=TEAM, now=LATER)
    err = refused(store, lambda: issues.change_status(store, project, 1, "resolve", actor=PM,
                                                      now=LATER), TransitionRefused)
    assert "text_given" in str(err)
    refused(store, lambda: issues.change_status(store, project, 1, "resolve", actor=TEAM,
                                                now=LATER, note="fixed"), PermissionDenied)
    issues.change_status(store, project, 1, "resolve", actor=PM, now=LATER, note="delivered")
    refused(store, lambda: issues.change_status(store, project, 1, "close", actor=COORD,
                                                now=LATER), PermissionDenied)
    done = issues.change_status(store, project, 1, "close", actor=PM, now=LATER)
    assert (done.status, done.level) == ("closed", "retired")
    with store.reading() as s:
        shown = issue_queries.show_issue(s, project, 1, calendar=CAL)
    kinds = [a["kind"] for a in shown["activity"]]
    assert kinds == ["opened", "note", "owner", "status", "status", "status"]
    assert shown["owner"] == COORD and shown["ladder"]["next"] is None


def test_ladder_actions_by_the_level_holder_only(store: Store, project: str) -> None:
    _open(store, project, "critical")
    err = refused(store, lambda: issues.ladder_action(
        store, project, 1, "acknowledge", actor=SENIOR, now=LATER, policy=POLICY),
        TransitionRefused)
    assert "actor_holds_current_level" in str(err)
    refused(store, lambda: issues.ladder_action(store, project, 1, "acknowledge", actor=TEAM,
                                                now=LATER, policy=POLICY), PermissionDenied)
    issues.ladder_action(store, project, 1, "acknowledge", actor=PM, now=LATER, policy=POLICY)
    far = LATER + timedelta(days=30)
    err = refused(store, lambda: issues.ladder_action(
        store, project, 1, "snooze", actor=PM, now=LATER, policy=POLICY, until=far),
        TransitionRefused)
    assert "snooze_within_cap" in str(err)
    issues.ladder_action(store, project, 1, "snooze", actor=PM, now=LATER, policy=POLICY,
                         until=LATER + timedelta(hours=3))
    refused(store, lambda: issues.ladder_action(store, project, 1, "deescalate", actor=PM,
                                                now=LATER, policy=POLICY), TransitionRefused)
    with store.transaction() as s:
        s.execute(update(Issue).values(level="senior_pm"))
    issues.ladder_action(store, project, 1, "deescalate", actor=SENIOR, now=LATER,
                         policy=POLICY, note="team has it")
    with store.reading() as s:
        shown = issue_queries.show_issue(s, project, 1, calendar=CAL)
    assert shown["ladder"]["level"] == "team" and shown["ladder"]["cycle"] == 1
    assert shown["ladder"]["next"]["level"] == "senior_pm"
    assert shown["ladder"]["next"]["to"] == [SENIOR]


def test_show_issue_lists_who_was_told_when(store: Store, project: str) -> None:
    issue = _open(store, project, "critical")
    at = NOW + timedelta(hours=3)
    with store.transaction() as s:
        s.add(Escalation(issue_id=issue.id, level="senior_pm", cycle=0, escalated_at=at,
                         stale_since=NOW))
        enqueue(s, [outbox_row(key=f"escalation:{issue.id}:senior_pm:0", kind=Kind.ESCALATION,
                               project_id=issue.project_id, context={}, now=at,
                               to_roles=["senior_pm"], cc_roles=["assigned_pm"])])
    with store.reading() as s:
        rows = issue_queries.list_issues(s, project, "active")
        shown = issue_queries.show_issue(s, project, 1)
    assert [r["number"] for r in rows] == [1]
    [esc] = shown["escalations"]
    assert (esc["level"], esc["to"], esc["cc"], esc["notice"]) == (
        "senior_pm", [SENIOR], [PM], "pending")


# ---------------------------------------------------------------- risks


def _risk(store: Store, key: str, title: str, p: int, i: int, **rest: Any) -> Risk:
    data = risks.RiskInput.checked(title, p, i, **rest)
    return risks.add_risk(store, key, data, actor=PM, now=NOW)


def _trigger_effects(store: Store) -> tuple[int, int, int]:
    with store.reading() as s:
        return (len(s.scalars(select(Issue)).all()),
                len(s.scalars(select(ActionItem).where(ActionItem.source == "risk")).all()),
                len(s.scalars(select(OutboxMessage)
                              .where(OutboxMessage.kind == "risk_triggered")).all()))


def test_risks_sort_by_score_and_only_keepers_add(store: Store, project: str) -> None:
    _risk(store, project, "DBA on leave", 2, 3)
    _risk(store, project, "Vendor slips", 4, 5, owner=TEAM)
    _risk(store, project, "Power work", 3, 3)
    refused(store, lambda: risks.add_risk(store, project, risks.RiskInput.checked("x", 1, 1),
                                          actor=TEAM, now=NOW), PermissionDenied)
    with pytest.raises(InvalidInput, match="rate it from 1 to 5"):
        risks.RiskInput.checked("x", 6, 1)
    with store.reading() as s:
        assert [r["score"] for r in log_queries.list_risks(s, project)] == [20, 9, 6]
    risks.update_risk(store, project, 1, actor=SENIOR, now=LATER, probability=5)
    with store.reading() as s:
        assert [r["ref"] for r in log_queries.list_risks(s, project)] == ["R-2", "R-1", "R-3"]


def test_risk_trigger_opens_issue_action_and_notice_once(store: Store, project: str) -> None:
    _risk(store, project, "Vendor slips", 4, 5, owner=TEAM, trigger_text="no ship notice",
          mitigation="second vendor")
    refused(store, lambda: risks.trigger_risk(store, project, 1, actor=TEAM, now=LATER,
                                              policy=POLICY), PermissionDenied)
    risks.trigger_risk(store, project, 1, actor=COORD, now=LATER, policy=POLICY)
    assert _trigger_effects(store) == (1, 1, 1)
    err = refused(store, lambda: risks.trigger_risk(store, project, 1, actor=PM, now=LATER,
                                                    policy=POLICY), TransitionRefused)
    assert "not possible from triggered" in str(err)
    with store.reading() as s:
        shown = log_queries.show_risk(s, project, 1)
        issue = issue_queries.show_issue(s, project, shown["issue"])
        msg = s.scalars(select(OutboxMessage)).one()
    assert shown["status"] == "triggered" and shown["actions"][0]["owner"] == TEAM
    assert (issue["priority"], issue["risk"], issue["owner"]) == ("critical", "R-1", TEAM)
    assert msg.idempotency_key.endswith(":triggered") and msg.to_addresses == [TEAM]
    assert msg.context["issue_number"] == issue["number"]


def test_trigger_date_sweep_fires_each_due_risk_once(store: Store, project: str) -> None:
    today = NOW.astimezone(CAL.tz).date()
    _risk(store, project, "Due today", 3, 3, trigger_date=today)
    _risk(store, project, "Due tomorrow", 3, 3, trigger_date=today + timedelta(days=1))
    _risk(store, project, "Long past", 2, 2, trigger_date=date(2026, 1, 5))
    risks.change_status(store, project, 3, "close", actor=PM, now=NOW, note="moot")
    assert risks.trigger_due_risks(store, as_of=NOW, policy=POLICY) == [f"{project} R-1"]
    assert risks.trigger_due_risks(store, as_of=NOW, policy=POLICY) == []
    assert _trigger_effects(store) == (1, 1, 1)
    tomorrow = NOW + timedelta(days=1)
    assert risks.trigger_due_risks(store, as_of=tomorrow, policy=POLICY) == [f"{project} R-2"]
    assert _trigger_effects(store) == (2, 2, 2)


@pytest.mark.postgres
def test_two_concurrent_risk_sweeps_trigger_each_risk_once(
    pg_store: Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = [staff_project(pg_store, "SDC-042"), staff_project(pg_store, "SDC-043")]
    for key in keys:
        for n in range(3):
            _risk(pg_store, key, f"risk {n}", 3, 4, trigger_date=date(2026, 10, 1))
    barrier = threading.Barrier(2, timeout=10)
    real = risks._lock_projects

    def after_both_selected(session: Any, ids: list[int]) -> None:
        barrier.wait()
        real(session, ids)

    monkeypatch.setattr(risks, "_lock_projects", after_both_selected)
    results: list[Any] = [None, None]

    def run(i: int) -> None:
        try:
            results[i] = risks.trigger_due_risks(pg_store, as_of=NOW, policy=POLICY)
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(isinstance(r, list) for r in results), results
    fired = results[0] + results[1]
    assert sorted(fired) == sorted(f"{k} R-{n}" for k in keys for n in (1, 2, 3))
    assert _trigger_effects(pg_store) == (6, 6, 6)
    with pg_store.reading() as s:
        assert all(r.issue_id for r in s.scalars(select(Risk)))


# ---------------------------------------------------------------- actions and reminders


def test_action_items_done_by_owner_or_keeper(store: Store, project: str) -> None:
    refused(store, lambda: actions.add_action(store, project, "Send diagram", actor=TEAM,
                                              now=NOW), PermissionDenied)
    actions.add_action(store, project, "Send diagram", actor=LIAISON, now=NOW, owner=COORD,
                       due=date(2026, 11, 6), source_name="meeting", source_ref="2026-11-02")
    err = refused(store, lambda: actions.change_status(store, project, 1, "done", actor=TEAM,
                                                       now=LATER), TransitionRefused)
    assert "owner_or_keeper" in str(err)
    assert actions.change_status(store, project, 1, "done", actor=COORD, now=LATER).status == (
        "done")
    actions.change_status(store, project, 1, "reopen", actor=LIAISON, now=LATER)
    actions.change_status(store, project, 1, "cancel", actor=PM, now=LATER)
    refused(store, lambda: actions.change_status(store, project, 1, "reopen", actor=PM,
                                                 now=LATER), TransitionRefused)
    with pytest.raises(InvalidInput, match="unknown source"):
        actions.add_action(store, project, "x", actor=LIAISON, now=NOW, source_name="email")


def _remind(store: Store, day: date) -> list[tuple[str, str]]:
    as_of = datetime(day.year, day.month, day.day, 7, 0, tzinfo=CAL.tz)
    report = reminders.run_reminders(store, as_of=as_of, calendar=CAL, days_before=2)
    return [(q["when"], q["ref"]) for q in report.queued]


def test_reminders_fire_once_per_item_and_due_date(store: Store, project: str) -> None:
    friday = date(2026, 11, 6)
    actions.add_action(store, project, "Send diagram", actor=LIAISON, now=NOW, owner=COORD,
                       due=friday)
    readiness.add_task(store, project, "cutover", "Book DNS window", actor=PM, now=NOW,
                       owner=TEAM, due=friday)
    assert _remind(store, date(2026, 11, 3)) == []
    found = _remind(store, date(2026, 11, 4))
    assert ("due_soon", "A-1") in found and len(found) == 2
    assert _remind(store, date(2026, 11, 5)) == []
    assert sorted(w for w, _ in _remind(store, date(2026, 11, 7))) == ["overdue", "overdue"]
    assert _remind(store, date(2026, 11, 8)) == []
    with store.reading() as s:
        msg = s.scalars(select(OutboxMessage).where(
            OutboxMessage.idempotency_key == f"reminder:action:1:{friday}:due_soon")).one()
    assert (msg.to_addresses, msg.cc_roles) == ([COORD], ["client_liaison"])
    assert msg.context["item_ref"] == "A-1"
    # A new due date re-arms: 2 business days before Fri 13 skips Veterans Day (Wed 11).
    actions.update_action(store, project, 1, actor=LIAISON, now=NOW, due=date(2026, 11, 13))
    assert _remind(store, date(2026, 11, 9)) == []
    assert _remind(store, date(2026, 11, 10)) == [("due_soon", "A-1")]
    actions.change_status(store, project, 1, "done", actor=COORD, now=NOW)
    assert _remind(store, date(2026, 11, 16)) == []


# ---------------------------------------------------------------- imports


def _csv(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


GOOD_ISSUES = (
    "title,priority,owner,opened_at,last_activity_at,description,status\n"
    "Firewall rules missing,High,tess.team@cts.wa.gov,2026-10-01T09:00-07:00,"
    "2026-10-20T16:00-07:00,,open\n"
    "DNS cutover plan,critical,pat.pm@cts.wa.gov,2026-10-05T10:00-07:00,"
    "2026-10-06T10:00-07:00,needs window,in progress\n"
    "Old ticket,low,pat.pm@cts.wa.gov,2026-09-01T10:00-07:00,2026-09-02T10:00-07:00,,closed\n"
)


def test_import_issues_keeps_their_dates(store: Store, project: str, tmp_path: Path) -> None:
    result = imports.import_issues(store, project, _csv(tmp_path, "issues.csv", GOOD_ISSUES),
                                   actor=PM, now=NOW, policy=POLICY)
    assert result.numbers == (1, 2, 3)
    with store.reading() as s:
        rows = {i.number: i for i in s.scalars(select(Issue))}
    assert rows[1].opened_at == datetime(2026, 10, 1, 16, 0, tzinfo=UTC)
    assert rows[1].stale_since == datetime(2026, 10, 20, 23, 0, tzinfo=UTC)
    assert (rows[2].status, rows[3].status, rows[3].level) == ("in_progress", "closed",
                                                               "retired")


def test_bad_issue_file_imports_nothing_and_names_rows(store: Store, project: str,
                                                       tmp_path: Path) -> None:
    bad = GOOD_ISSUES + (
        "No zone,high,tess.team@cts.wa.gov,2026-10-01T09:00,2026-10-02T09:00-07:00,,\n"
        "Bad prio,urgent,nobody@,2026-10-01T09:00-07:00,2026-10-02T09:00-07:00,,\n"
        "Backwards,low,pat.pm@cts.wa.gov,2026-10-05T09:00-07:00,2026-10-01T09:00-07:00,,\n")
    path = _csv(tmp_path, "issues.csv", bad)
    err = refused(store, lambda: imports.import_issues(store, project, path, actor=PM, now=NOW,
                                                       policy=POLICY), imports.ImportRejected)
    assert isinstance(err, imports.ImportRejected)
    assert err.message == f"{path}: 3 bad rows; nothing imported"
    report = "\n".join(err.problems)
    assert "row 5, field 'opened_at'" in report and "timezone" in report
    assert "row 6, field 'priority'" in report and "row 6, field 'owner'" in report
    assert "row 7" in report and "before opened_at" in report
    assert "row 2" not in report


def test_unknown_owner_rejects_the_file(store: Store, project: str, tmp_path: Path) -> None:
    path = _csv(tmp_path, "actions.csv", "title,owner,due_date,source\n"
                "Send diagram,casey.coord@dol.wa.gov,2026-11-06,meeting\n"
                "Ghost,ghost@dol.wa.gov,,\n")
    err = refused(store, lambda: imports.import_actions(store, project, path, actor=LIAISON,
                                                        now=NOW), imports.ImportRejected)
    assert "row 3, field 'owner': no person ghost@dol.wa.gov" in err.problems[0]
    refused(store, lambda: imports.import_actions(store, project, path, actor=TEAM, now=NOW),
            PermissionDenied)


def test_import_risks_and_actions(store: Store, project: str, tmp_path: Path) -> None:
    r = imports.import_risks(store, project, _csv(
        tmp_path, "risks.csv", "title,probability,impact,trigger,trigger_date,owner,mitigation\n"
        "Vendor slips,4,5,no ship notice,2026-12-01,tess.team@cts.wa.gov,second vendor\n"
        "DBA leave,2,3,,,,\n"), actor=PM, now=NOW)
    a = imports.import_actions(store, project, _csv(
        tmp_path, "actions.csv", "title,owner,due_date,source\nSend diagram,,2026-11-06,\n"),
        actor=LIAISON, now=NOW)
    assert (r.numbers, a.numbers) == ((1, 2), (1,))
    with store.reading() as s:
        assert [x["score"] for x in log_queries.list_risks(s, project)] == [20, 6]
        assert log_queries.list_actions(s, project)[0]["source"] == "manual"
    with pytest.raises(InvalidInput, match="missing column"):
        imports.import_risks(store, project, _csv(tmp_path, "r.csv", "title\nx\n"), actor=PM,
                             now=NOW)


def test_imported_issue_escalation_continues_from_the_spreadsheet(
    store: Store, project: str, tmp_path: Path,
) -> None:
    from cep_engine.escalation.sweep import run_sweep

    path = _csv(tmp_path, "issues.csv", GOOD_ISSUES)
    imports.import_issues(store, project, path, actor=PM, now=NOW, policy=POLICY)
    run_sweep(store, as_of=NOW, calendar=CAL)
    with store.reading() as s:
        climbed = {n: issue_queries.show_issue(s, project, n) for n in (1, 2, 3)}
    assert [e["level"] for e in climbed[2]["escalations"]] == [
        "senior_pm", "project_sponsor", "executive_sponsor"]
    assert [e["level"] for e in climbed[1]["escalations"]] == [
        "senior_pm", "project_sponsor", "executive_sponsor"]
    assert climbed[3]["escalations"] == [] and climbed[3]["level"] == "retired"
