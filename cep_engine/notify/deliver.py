"""One delivery run: claim due outbox messages, render, send over one connection, record.

1. **Claim** (one short transaction): the due pending rows, oldest first, at most
   ``batch_size``. Each claimed row gets ``attempts + 1`` and a lease: its
   ``next_attempt_at`` moves to ``now + lease_seconds``, so no other run sees it as due.
   PostgreSQL locks the rows ``FOR UPDATE SKIP LOCKED``, so two runs at once claim
   disjoint sets; SQLite's ``BEGIN IMMEDIATE`` serializes the claims.
2. **Resolve and render** (one reading session): recipients from the project's role
   assignments as they are now; a role nobody holds is audited and logged. A person with more
   than ``digest_threshold`` messages in the run gets one digest instead.
3. **Send** over one SMTP connection, then **record** each outcome: sent; pending again
   after an exponential backoff; or dead (a permanent refusal, a template that cannot render,
   a header injection, or ``max_attempts`` used up). One bad message never stops the batch.

A crash between the server accepting a message and its row being marked sent leaves the
row claimed; after the lease it is sent again with the same Message-ID.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update

from cep_engine.notify._facts import Claimed, Facts, Recipient, load
from cep_engine.notify.config import NotifySettings
from cep_engine.notify.mailer import (
    Mail,
    Mailer,
    MessageRefused,
    ServerUnavailable,
    message_id_for,
)
from cep_engine.notify.outbox import Status
from cep_engine.notify.templates import DIGEST, RenderError, Templates
from cep_engine.store.db import Store
from cep_engine.store.models import AuditEntry, OutboxMessage

log = logging.getLogger("cep_engine.notify")
SYSTEM_ACTOR = "cep-engine"
RENDER_AHEAD = 8
"""How many messages the rendering thread may be ahead of the sending one."""


@dataclass
class DeliveryReport:
    """What one run did."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    dead: int = 0
    digests: int = 0
    missing_roles: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dead_ids: list[int] = field(default_factory=list)
    server_down: str | None = None
    """Why the SMTP server could not be used in this run, if it could not."""

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for ``--json``."""
        return asdict(self)


@dataclass
class _Job:
    """A claimed message on its way: its recipients, its own mail and its outcome."""

    row: Claimed
    to: list[Recipient]
    cc: list[Recipient]
    message_id: str = ""
    project: dict[str, str] = field(default_factory=dict)
    mail: Mail | None = None
    failure: str | None = None
    permanent: bool = False
    notes: list[str] = field(default_factory=list)


def claim(store: Store, *, now: datetime, limit: int, lease_seconds: int) -> list[Claimed]:
    """Claim up to ``limit`` due pending messages for this run (see the module docstring).

    PostgreSQL picks, locks and leases in one statement (``UPDATE ... FROM (SELECT ... FOR
    UPDATE SKIP LOCKED) RETURNING``); SQLite, which serializes writers anyway, reads the due
    rows and then leases them by id."""
    m = OutboxMessage
    columns = (m.id, m.idempotency_key, m.kind, m.project_id, m.to_roles, m.cc_roles,
               m.to_addresses, m.context, m.attempts, m.next_attempt_at.label("due_at"))
    due = (m.status == Status.PENDING.value, m.next_attempt_at <= now)
    oldest = (m.next_attempt_at, m.id)
    lease = {"attempts": m.attempts + 1,
             "next_attempt_at": now + timedelta(seconds=lease_seconds)}
    with store.transaction() as session:
        conn = session.connection()
        if conn.dialect.name == "postgresql":
            picked = (select(*columns).where(*due).order_by(*oldest).limit(limit)
                      .with_for_update(skip_locked=True).subquery("picked"))
            leased = update(m).where(m.id == picked.c.id).values(**lease).returning(picked)
            rows = sorted(conn.execute(leased).all(), key=lambda r: (r.due_at, r.id))
        else:
            rows = list(conn.execute(select(*columns).where(*due).order_by(*oldest).limit(limit)))
            if rows:
                conn.execute(update(m).where(m.id.in_([r.id for r in rows])).values(**lease))
        return [Claimed(r.id, r.idempotency_key, r.kind, r.project_id, tuple(r.to_roles),
                        tuple(r.cc_roles), tuple(r.to_addresses), dict(r.context),
                        r.attempts + 1) for r in rows]


def deliver(
    store: Store, mailer: Mailer, *, now: datetime, settings: NotifySettings,
    templates: Templates | None = None, timezone: str = "UTC",
) -> DeliveryReport:
    """Run one delivery: claim, resolve, render, send, record. Returns what happened."""
    report = DeliveryReport()
    rows = claim(store, now=now, limit=settings.batch_size, lease_seconds=settings.lease_seconds)
    report.claimed = len(rows)
    if not rows:
        return report
    templates = templates or Templates(settings.templates_dir, timezone=timezone)
    with store.reading() as session:
        facts = load(session, rows, timezone)
    jobs = [_address(row, facts, mailer.sender, report) for row in rows]
    render = functools.partial(_render, facts=facts, templates=templates, now=now)
    if _may_digest(jobs, settings.digest_threshold):
        for job in jobs:
            render(job)
        digests = _digests(jobs, settings.digest_threshold, templates, mailer.sender, now)
        report.digests = len(digests)
        _send_all(store, mailer, jobs, digests, now, settings, report,
                  connect=bool(digests) or any(j.mail for j in jobs))
    else:
        with contextlib.closing(_rendered_ahead(jobs, render)) as stream:
            _send_all(store, mailer, stream, [], now, settings, report,
                      connect=any(j.failure is None for j in jobs))
    return report


def _address(row: Claimed, facts: Facts, sender: str, report: DeliveryReport) -> _Job:
    """``row``'s recipients, its Message-ID and the roles nobody holds (audited, logged)."""
    to, cc, missing = facts.resolve(row)
    project = facts.projects.get(row.project_id or -1, {"key": "-", "name": "", "agency": ""})
    job = _Job(row=row, to=to, cc=cc, project=project,
               message_id=message_id_for(row.key, sender))
    for role in missing:
        note = f"{project['key']}: nobody holds role {role}; {row.kind} #{row.id} not sent to it"
        job.notes.append(note)
        report.missing_roles.append(note)
        log.warning("%s", note)
    if not to and not cc:
        job.failure = "no recipient: " + (", ".join(missing) or "no role or address given")
    return job


def _render(job: _Job, *, facts: Facts, templates: Templates, now: datetime) -> _Job:
    """Render ``job``'s mail (a template that cannot render makes it dead)."""
    if job.failure is not None:
        return job
    row = job.row
    context = {**row.context, **facts.escalations.get(row.id, {}), "project": job.project,
               "to": [p.as_dict() for p in job.to], "cc": [p.as_dict() for p in job.cc]}
    try:
        rendered = templates.render(row.kind, context)
    except RenderError as exc:
        job.failure, job.permanent = f"cannot render: {exc.message}", True
        return job
    job.mail = Mail(
        to=tuple(p.email for p in job.to), cc=tuple(p.email for p in job.cc),
        subject=rendered.subject, text=rendered.text, html=rendered.html,
        message_id=job.message_id, date=now,
        headers={"X-CEP-Kind": row.kind, "X-CEP-Key": row.key},
    )
    return job


def _may_digest(jobs: list[_Job], threshold: int) -> bool:
    """Whether anyone is a recipient of more than ``threshold`` of the addressed jobs (the
    digests are only decided once those are rendered)."""
    per_person = Counter(p.email for j in jobs if j.failure is None for p in j.to + j.cc)
    return max(per_person.values(), default=0) > threshold


def _rendered_ahead(jobs: list[_Job], render: Callable[[_Job], _Job]) -> Generator[_Job]:
    """Yield ``jobs`` in order, rendered by a worker thread that stays up to
    :data:`RENDER_AHEAD` jobs ahead: rendering overlaps the waits for the SMTP server (socket
    waits release the GIL) instead of adding to them."""
    with ThreadPoolExecutor(1, thread_name_prefix="cep-render") as pool:
        ahead: deque[Future[_Job]] = deque()
        for job in jobs:
            ahead.append(pool.submit(render, job))
            if len(ahead) > RENDER_AHEAD:
                yield ahead.popleft().result()
        while ahead:
            yield ahead.popleft().result()


@dataclass
class _Digest:
    mail: Mail
    members: list[_Job]


def _digests(
    jobs: list[_Job], threshold: int, templates: Templates, sender: str, now: datetime
) -> list[_Digest]:
    """Take each person with more than ``threshold`` messages out of them; one digest each."""
    by_person: dict[str, list[_Job]] = defaultdict(list)
    names: dict[str, str] = {}
    for job in jobs:
        if job.mail is not None:
            for who in job.to + job.cc:
                by_person[who.email].append(job)
                names[who.email] = who.name
    out = []
    for email, members in by_person.items():
        if len(members) <= threshold:
            continue
        items = [{"kind": j.row.kind, "project": j.project, "subject": j.mail.subject,
                  "text": j.mail.text} for j in members if j.mail is not None]
        person = {"email": email, "name": names[email]}
        rendered = templates.render(DIGEST, {"person": person, "items": items,
                                             "count": len(items)})
        key = "digest:" + email + ":" + ",".join(sorted(j.row.key for j in members))
        out.append(_Digest(Mail(
            to=(email,), subject=rendered.subject, text=rendered.text, html=rendered.html,
            message_id=message_id_for(key, sender), date=now, headers={"X-CEP-Kind": DIGEST},
        ), members))
        for job in members:
            job.mail = _without(job.mail, email)
    return out


def _without(mail: Mail | None, email: str) -> Mail | None:
    if mail is None:
        return None
    to = tuple(a for a in mail.to if a != email)
    cc = tuple(a for a in mail.cc if a != email)
    if not to and not cc:
        return None
    return Mail(to=to or cc, cc=cc if to else (), subject=mail.subject, text=mail.text,
                html=mail.html, message_id=mail.message_id, date=mail.date, headers=mail.headers)


def _send_all(
    store: Store, mailer: Mailer, jobs: Iterable[_Job], digests: list[_Digest], now: datetime,
    settings: NotifySettings, report: DeliveryReport, *, connect: bool,
) -> None:
    """Send the digests, then ``jobs`` in order (rendered, or being rendered ahead), over one
    connection, opened only if ``connect`` (something may be sent)."""
    down: str | None = None
    if connect:
        try:
            mailer.open()
        except ServerUnavailable as exc:
            down = str(exc)
            report.errors.append(down)
            log.error("%s", down)
    recorder = _Recorder(store)
    try:
        for digest in digests:
            down = _send_digest(mailer, digest, down)
        done: list[_Job] = []
        for job in jobs:
            if job.mail is not None and job.failure is None:
                down = _send_one(mailer, job, job.mail, down)
            done.append(job)
            if len(done) >= settings.commit_every:
                recorder.record(_outcomes(done, now, settings, report))
                done = []
        recorder.record(_outcomes(done, now, settings, report))
        recorder.wait()
    finally:
        try:
            recorder.close()
        finally:
            mailer.close()
    report.server_down = down


def _send_digest(mailer: Mailer, digest: _Digest, down: str | None) -> str | None:
    probe = _Job(row=digest.members[0].row, to=[], cc=[])
    down = _send_one(mailer, probe, digest.mail, down)
    for job in digest.members:
        if probe.failure and not probe.permanent and job.failure is None:
            job.failure = f"digest to {digest.mail.to[0]}: {probe.failure}"
        elif probe.failure:
            job.notes.append(f"digest to {digest.mail.to[0]} refused: {probe.failure}")
    return down


def _send_one(mailer: Mailer, job: _Job, mail: Mail, down: str | None) -> str | None:
    if down is not None:
        job.failure = down
        return down
    try:
        refused = mailer.send(mail)
    except ServerUnavailable as exc:
        job.failure = str(exc)
        return str(exc)
    except MessageRefused as exc:
        job.failure, job.permanent = str(exc), exc.permanent
        return None
    if refused:
        job.notes.append("refused recipients: " + ", ".join(refused))
    return None


@dataclass
class _Outcomes:
    """What one chunk's transaction writes: the rows' new state and the audit rows."""

    values: list[dict[str, Any]]
    audits: list[AuditEntry]


def _outcomes(jobs: list[_Job], now: datetime, settings: NotifySettings,
              report: DeliveryReport) -> _Outcomes:
    return _Outcomes([_outcome(job, now, settings, report) for job in jobs], _audits(jobs, now))


_MARK = (
    update(OutboxMessage)
    .where(OutboxMessage.id == bindparam("b_id"),
           OutboxMessage.attempts == bindparam("b_attempts"))
    .values(status=bindparam("b_status"), next_attempt_at=bindparam("b_next"),
            last_error=bindparam("b_error"), sent_at=bindparam("b_sent_at"),
            message_id=bindparam("b_message_id"))
)


def _commit(store: Store, outcomes: _Outcomes) -> None:
    """Commit the outcome of one chunk and the audit rows of unheld roles, in one transaction.

    The ``attempts`` condition makes it a no-op for a row another run has claimed since."""
    if not outcomes.values:
        return
    with store.transaction() as session:
        session.connection().execute(_MARK, outcomes.values)
        session.add_all(outcomes.audits)


class _Recorder:
    """Commits each chunk's outcomes while the next chunk is being sent.

    On PostgreSQL a chunk's commit is a few hundred round trips' worth of server work, so it
    runs in one worker thread (the socket waits release the GIL) and overlaps the next
    chunk's sends. Chunks are committed in order, one at a time: before handing over a chunk
    the recorder waits for the previous one, so a failed commit stops the run at the next
    chunk boundary and at most two chunks are ever sent but unrecorded (each is sent again
    after its lease, with the same Message-ID: the documented crash boundary). SQLite
    commits inline: it is fast there, and a second thread would not see an in-memory
    database.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pool = (ThreadPoolExecutor(1, thread_name_prefix="cep-outbox-record")
                      if store.engine.dialect.name == "postgresql" else None)
        self._pending: Future[None] | None = None

    def record(self, outcomes: _Outcomes) -> None:
        """Commit ``outcomes``, in the worker (after the previous chunk) or at once."""
        self.wait()
        if self._pool is None:
            _commit(self._store, outcomes)
        else:
            self._pending = self._pool.submit(_commit, self._store, outcomes)

    def wait(self) -> None:
        """Block until the chunk in flight is committed; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        """Let the chunk in flight finish (its error is raised by :meth:`wait`), then stop."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _outcome(job: _Job, now: datetime, settings: NotifySettings,
             report: DeliveryReport) -> dict[str, Any]:
    row = job.row
    error = "; ".join(([job.failure] if job.failure else []) + job.notes) or None
    values: dict[str, Any] = {
        "b_id": row.id, "b_attempts": row.attempts, "b_error": error, "b_sent_at": None,
        "b_message_id": None, "b_next": now,
    }
    if job.failure is None:
        values.update(b_status=Status.SENT.value, b_sent_at=now, b_message_id=job.message_id)
        report.sent += 1
    elif job.permanent or row.attempts >= settings.max_attempts:
        values["b_status"] = Status.DEAD.value
        report.dead += 1
        report.dead_ids.append(row.id)
        report.errors.append(f"outbox #{row.id} ({row.key}) dead: {job.failure}")
        log.error("outbox #%s (%s) dead after %s attempt(s): %s", row.id, row.key,
                  row.attempts, job.failure)
    else:
        values.update(b_status=Status.PENDING.value,
                      b_next=now + timedelta(seconds=settings.backoff(row.attempts)))
        report.retrying += 1
    return values


def _audits(jobs: list[_Job], now: datetime) -> list[AuditEntry]:
    return [
        AuditEntry(
            at=now, actor=SYSTEM_ACTOR, actor_roles="", project_id=job.row.project_id,
            entity_type="notification", entity=job.row.key[:100], trigger="missing_recipient",
            from_state=None, to_state=None, accepted=True, guards=[], reason=note,
        )
        for job in jobs for note in job.notes if "nobody holds role" in note
    ]
