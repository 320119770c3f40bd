"""Delivery with the fake mailer: outbox rows from the core, recipients, retries, digests."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from cep_engine.errors import NotFound, TransitionRefused
from cep_engine.notify.config import NotifySettings
from cep_engine.notify.deliver import deliver
from cep_engine.notify.mailer import FakeMailer, Mail, message_id_for
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.notify.samples import sample_context
from cep_engine.services import outbox, outbox_queries, projects, readiness
from cep_engine.store.db import Store
from cep_engine.store.models import (
    AuditEntry,
    OutboxMessage,
    Project,
    ReadinessGuide,
    RoleAssignment,
)
from tests.conftest import COORD, LIAISON, NOW, PM, SENIOR, snapshot, staff_project

SETTINGS = NotifySettings(max_attempts=3, backoff_seconds=60, digest_threshold=3)


@pytest.fixture
def st(sqlite_template: Path, tmp_path: Path) -> Iterator[Store]:
    path = tmp_path / "cep.db"
    shutil.copy(sqlite_template, path)
    store = Store.from_url(f"sqlite:///{path}")
    yield store
    store.dispose()


@pytest.fixture
def key(st: Store) -> str:
    return staff_project(st)


def rows(st: Store) -> list[OutboxMessage]:
    with st.reading() as s:
        return list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


_SEQ = iter(range(1_000_000))


def queue(st: Store, key: str, n: int, *, kind: Kind = Kind.PHASE_CHANGED,
          to: tuple[str, ...] = ("client_liaison",), **ctx: Any) -> None:
    context = {k: v for k, v in sample_context(kind.value).items()
               if k not in ("to", "cc", "project")} | ctx
    with st.transaction() as s:
        pid = s.scalars(select(Project.id).where(Project.key == key)).one()
        enqueue(s, [outbox_row(key=f"test:{kind.value}:{next(_SEQ)}", kind=kind, project_id=pid,
                               context=context, now=NOW, to_roles=to) for i in range(n)])


def finish_tasks(st: Store, key: str, stage: str) -> None:
    from cep_engine.services import queries

    with st.reading() as s:
        tasks = queries.show_checklist(s, key, stage)["tasks"]
    for t in tasks:
        readiness.set_task_done(st, key, stage, t["number"], actor=COORD, now=NOW)


def test_submit_return_validate_and_phase_change_queue_their_messages(st: Store, key: str) -> None:
    projects.fire_phase(st, key, "advance", actor=PM, now=NOW)
    finish_tasks(st, key, "pre_cutover")
    readiness.submit(st, key, "pre_cutover", signer="Casey", attestation="ok", actor=COORD,
                     now=NOW)
    readiness.review(st, key, "pre_cutover", "return", actor=PM, now=NOW, comment="redo")
    queued = rows(st)
    assert [(r.kind, r.to_roles, r.cc_roles) for r in queued] == [
        ("phase_changed", ["client_liaison", "implementation_coordinator"], ["senior_pm"]),
        ("checklist_submitted", ["assigned_pm"], ["client_liaison"]),
        ("checklist_returned", ["implementation_coordinator"], ["client_liaison"]),
    ]
    with st.reading() as s:
        guide_id = s.scalars(select(ReadinessGuide.id).where(
            ReadinessGuide.stage == "pre_cutover")).one()
        pid = s.scalars(select(Project.id)).one()
    assert queued[0].idempotency_key == f"phase:{pid}:2"
    assert queued[1].idempotency_key == f"checklist:{guide_id}:1:submitted"
    assert queued[2].idempotency_key == f"checklist:{guide_id}:1:returned"
    assert queued[2].context["comment"] == "redo"

    fake = FakeMailer()
    report = deliver(st, fake, now=NOW, settings=SETTINGS)
    assert (report.claimed, report.sent, report.dead, report.retrying) == (3, 3, 0, 0)
    assert fake.connections == 1
    submitted = fake.sent[1]
    assert submitted["To"] == PM and submitted["Cc"] == LIAISON
    assert submitted["Message-ID"] == message_id_for(queued[1].idempotency_key, fake.sender)
    assert all(r.status == "sent" and r.sent_at == NOW for r in rows(st))
    assert deliver(st, fake, now=NOW + timedelta(hours=1), settings=SETTINGS).claimed == 0
    assert len(fake.sent) == 3


def test_refused_use_case_queues_nothing(st: Store, key: str) -> None:
    with pytest.raises(TransitionRefused):
        readiness.submit(st, key, "cutover", signer="C", attestation="A", actor=COORD, now=NOW)
    assert rows(st) == []


def test_validated_goes_to_coordinator_and_liaison(st: Store, key: str) -> None:
    finish_tasks(st, key, "cutover")
    readiness.submit(st, key, "cutover", signer="C", attestation="A", actor=COORD, now=NOW)
    readiness.review(st, key, "cutover", "validate", actor=PM, now=NOW)
    fake = FakeMailer()
    deliver(st, fake, now=NOW, settings=SETTINGS)
    assert fake.sent[-1]["To"] == f"{LIAISON}, {COORD}" or fake.sent[-1]["To"] == \
        f"{COORD}, {LIAISON}"
    assert "readiness validated" in fake.sent[-1]["Subject"]


def test_role_without_holder_is_audited_and_the_rest_still_sent(st: Store, key: str) -> None:
    with st.transaction() as s:
        s.execute(delete(RoleAssignment).where(RoleAssignment.role == "senior_pm"))
    projects.fire_phase(st, key, "hold", actor=PM, now=NOW)
    fake = FakeMailer()
    report = deliver(st, fake, now=NOW, settings=SETTINGS)
    assert report.sent == 1 and len(report.missing_roles) == 1
    assert "senior_pm" in report.missing_roles[0]
    assert "Cc" not in fake.sent[0] and SENIOR not in str(fake.sent[0])
    with st.reading() as s:
        audit = s.scalars(select(AuditEntry).where(
            AuditEntry.trigger == "missing_recipient")).one()
    assert audit.entity.startswith("phase:") and "senior_pm" in audit.reason
    assert "senior_pm" in (rows(st)[0].last_error or "")


def test_server_down_keeps_messages_pending_with_backoff_then_dead(st: Store, key: str) -> None:
    queue(st, key, 2)
    fake = FakeMailer(down=True)
    now = NOW
    for attempt, wait in ((1, 60), (2, 120)):
        report = deliver(st, fake, now=now, settings=SETTINGS)
        assert (report.retrying, report.sent) == (2, 0)
        assert all(r.status == "pending" and r.attempts == attempt for r in rows(st))
        assert all(r.next_attempt_at == now + timedelta(seconds=wait) for r in rows(st))
        assert deliver(st, fake, now=now, settings=SETTINGS).claimed == 0
        now += timedelta(seconds=wait)
    report = deliver(st, fake, now=now, settings=SETTINGS)
    assert report.dead == 2 and all(r.status == "dead" for r in rows(st))
    assert "fake server is down" in (rows(st)[0].last_error or "")


def test_server_back_delivers_what_waited(st: Store, key: str) -> None:
    queue(st, key, 2)
    fake = FakeMailer(down=True)
    deliver(st, fake, now=NOW, settings=SETTINGS)
    fake.down = False
    assert deliver(st, fake, now=NOW + timedelta(seconds=30), settings=SETTINGS).claimed == 0
    report = deliver(st, fake, now=NOW + timedelta(seconds=60), settings=SETTINGS)
    assert report.sent == 2 and len(fake.sent) == 2


def test_one_refused_message_does_not_block_the_batch(st: Store, key: str) -> None:
    queue(st, key, 1, reason="fine")
    queue(st, key, 1, to_phase="execution\r\nBcc: evil@example.com")
    queue(st, key, 1, reason="also fine")
    fake = FakeMailer()
    report = deliver(st, fake, now=NOW, settings=SETTINGS)
    assert (report.sent, report.dead) == (2, 1)
    dead = next(r for r in rows(st) if r.status == "dead")
    assert "line break" in (dead.last_error or "")
    assert all("evil" not in str(m) for m in fake.sent)


def test_bad_recipient_is_dead_and_others_go_out(st: Store, key: str) -> None:
    queue(st, key, 1, to=("client_liaison",))
    queue(st, key, 1, to=("assigned_pm",))
    fake = FakeMailer(refuse={LIAISON})
    report = deliver(st, fake, now=NOW, settings=SETTINGS)
    assert (report.sent, report.dead) == (1, 1)
    assert fake.sent[0]["To"] == PM


def test_more_than_k_messages_for_one_person_become_one_digest(st: Store, key: str) -> None:
    queue(st, key, 4, to=("client_liaison", "assigned_pm"))
    queue(st, key, 1, to=("senior_pm",), reason="other")
    fake = FakeMailer()
    report = deliver(st, fake, now=NOW, settings=SETTINGS)
    assert (report.sent, report.digests) == (5, 2)
    digests = [m for m in fake.sent if m["X-CEP-Kind"] == "digest"]
    assert sorted(m["To"] for m in digests) == sorted([LIAISON, PM])
    assert "4 notifications" in digests[0]["Subject"]
    singles = [m for m in fake.sent if m["X-CEP-Kind"] != "digest"]
    assert [m["To"] for m in singles] == [SENIOR]


def test_render_error_is_dead_with_the_reason(st: Store, key: str) -> None:
    with st.transaction() as s:
        pid = s.scalars(select(Project.id)).one()
        enqueue(s, [outbox_row(key="bad", kind=Kind.PHASE_CHANGED, project_id=pid,
                               context={}, now=NOW, to_roles=["client_liaison"])])
    report = deliver(st, FakeMailer(), now=NOW, settings=SETTINGS)
    assert report.dead == 1 and "cannot render" in (rows(st)[0].last_error or "")


def test_retry_makes_dead_due_and_refuses_sent(st: Store, key: str) -> None:
    queue(st, key, 1)
    deliver(st, FakeMailer(refuse={LIAISON}), now=NOW, settings=SETTINGS)
    dead = rows(st)[0]
    assert dead.status == "dead"
    outbox.retry(st, [dead.id], actor="ops@cts.wa.gov", now=NOW)
    again = rows(st)[0]
    assert (again.status, again.attempts, again.next_attempt_at) == ("pending", 0, NOW)
    deliver(st, FakeMailer(), now=NOW, settings=SETTINGS)
    before = snapshot(st)
    with pytest.raises(TransitionRefused, match="already sent"):
        outbox.retry(st, [dead.id], actor="ops@cts.wa.gov", now=NOW)
    with pytest.raises(NotFound):
        outbox.retry(st, [999], actor="ops@cts.wa.gov", now=NOW)
    assert snapshot(st) == before
    with st.reading() as s:
        listed = outbox_queries.list_messages(s, status="sent")
        shown = outbox_queries.show_message(s, dead.id)
    assert [r["id"] for r in listed] == [dead.id]
    assert shown["message_id"] and shown["to_roles"] == ["client_liaison"]


@dataclass
class _CrashingMailer(FakeMailer):
    """Accepts ``crash_at`` messages, then the process is interrupted mid-send."""

    crash_at: int = 0

    def send(self, mail: Mail) -> list[str]:
        if len(self.sent) == self.crash_at:
            raise KeyboardInterrupt
        return super().send(mail)


@pytest.mark.parametrize("every", [1, 5])
def test_a_crash_leaves_fewer_than_commit_every_accepted_messages_unmarked(
    st: Store, key: str, every: int
) -> None:
    queue(st, key, 12)
    mailer = _CrashingMailer(crash_at=8)
    with pytest.raises(KeyboardInterrupt):
        deliver(st, mailer, now=NOW,
                settings=NotifySettings(digest_threshold=100, commit_every=every))
    marked = [r for r in rows(st) if r.status == "sent"]
    assert len(mailer.sent) == 8
    assert len(marked) == 8 // every * every
    assert {r.message_id for r in marked} <= {m["Message-ID"] for m in mailer.sent}
