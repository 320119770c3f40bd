"""Delivery against a real SMTP server (aiosmtpd on loopback), parsed with ``email``.

Covers recipients, subject, both parts and the Message-ID; a server that is down and comes
back; dead-lettering; digests; header injection; exactly-once over repeated runs; and two
deliveries at once on PostgreSQL, each with its own connections.
"""

from __future__ import annotations

import email
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from typer.testing import CliRunner

from cep_engine.errors import TransitionRefused
from cep_engine.notify.config import NotifySettings
from cep_engine.notify.deliver import deliver
from cep_engine.notify.mailer import SmtpMailer, message_id_for
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.notify.samples import sample_context
from cep_engine.services import projects, queries, readiness
from cep_engine.store.db import Store
from cep_engine.store.models import OutboxMessage, Project
from tests.conftest import COORD, LIAISON, NOW, PM, SENIOR, staff_project

SENDER = "cep-engine@cts.wa.gov"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what arrives; refuses the addresses in ``refuse``."""

    received: list[Received] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: Any) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=policy.default)
        with self.lock:
            self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          msg))  # type: ignore[arg-type]
        return "250 OK queued"

    def ids(self) -> list[str]:
        return [str(r.message["Message-ID"]) for r in self.received]


class Server:
    """A loopback SMTP server that can be stopped and started again on the same port."""

    def __init__(self, **smtp_kwargs: Any) -> None:
        self.inbox = Inbox()
        self.port = free_port()
        self.kwargs = smtp_kwargs
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port,
                                     **self.kwargs)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def settings(self, **over: Any) -> NotifySettings:
        values: dict[str, Any] = {
            "smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": "plain",
            "sender": SENDER, "max_attempts": 3, "backoff_seconds": 60,
            "digest_threshold": 5, "smtp_timeout_seconds": 5,
        }
        values.update(over)
        return NotifySettings(**values)


@pytest.fixture
def smtp() -> Iterator[Server]:
    server = Server()
    server.start()
    yield server
    server.stop()


def run(store: Store, server: Server, now: Any = NOW, **over: Any) -> Any:
    cfg = server.settings(**over)
    return deliver(store, SmtpMailer(cfg), now=now, settings=cfg)


def queue(store: Store, key: str, n: int, *, prefix: str = "m", to: tuple[str, ...] =
          ("client_liaison",), cc: tuple[str, ...] = (), **ctx: Any) -> None:
    context = {k: v for k, v in sample_context("phase_changed").items()
               if k not in ("to", "cc", "project")} | ctx
    with store.transaction() as s:
        pid = s.scalars(select(Project.id).where(Project.key == key)).one()
        enqueue(s, [outbox_row(key=f"{prefix}:{i}", kind=Kind.PHASE_CHANGED, project_id=pid,
                               context=context, now=NOW, to_roles=to, cc_roles=cc)
                    for i in range(n)])


def statuses(store: Store) -> list[str]:
    with store.reading() as s:
        return list(s.scalars(select(OutboxMessage.status).order_by(OutboxMessage.id)))


def test_checklist_submission_arrives_well_formed(store: Store, project: str,
                                                  smtp: Server) -> None:
    with store.reading() as s:
        tasks = queries.show_checklist(s, project, "cutover")["tasks"]
    for t in tasks:
        readiness.set_task_done(store, project, "cutover", t["number"], actor=COORD, now=NOW)
    readiness.submit(store, project, "cutover", signer="Casey Coord", attestation="done",
                     actor=COORD, now=NOW)
    report = run(store, smtp)
    assert report.sent == 1
    [got] = smtp.inbox.received
    msg = got.message
    with store.reading() as s:
        row = s.scalars(select(OutboxMessage)).one()
    assert got.mail_from == SENDER and sorted(got.rcpt_tos) == sorted([PM, LIAISON])
    assert msg["From"] == SENDER and msg["To"] == PM and msg["Cc"] == LIAISON
    assert msg["Subject"].startswith("[SDC-042] ")
    assert msg["Subject"].endswith("checklist submitted (version 1)")
    assert msg["Message-ID"] == message_id_for(row.idempotency_key, SENDER) == row.message_id
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Casey Coord" in text and "cep checklist validate SDC-042 cutover" in text
    assert "<h2>" not in text and "<h2>" in html and "Department of Licensing" in html
    assert row.status == "sent" and row.sent_at == NOW


def test_phase_change_goes_to_liaison_and_coordinator_cc_senior(store: Store, project: str,
                                                                 smtp: Server) -> None:
    projects.fire_phase(store, project, "advance", actor=PM, now=NOW)
    run(store, smtp)
    [got] = smtp.inbox.received
    assert got.message["To"] == f"{LIAISON}, {COORD}" and got.message["Cc"] == SENIOR
    assert sorted(got.rcpt_tos) == sorted([LIAISON, COORD, SENIOR])


def test_running_delivery_twice_sends_nothing_twice(store: Store, project: str,
                                                    smtp: Server) -> None:
    queue(store, project, 3)
    assert run(store, smtp).sent == 3
    assert run(store, smtp, now=NOW + timedelta(days=1)).claimed == 0
    assert len(smtp.inbox.received) == 3 and len(set(smtp.inbox.ids())) == 3


def test_server_down_keeps_pending_then_delivers_once_back(store: Store, project: str,
                                                           smtp: Server) -> None:
    queue(store, project, 2)
    smtp.stop()
    report = run(store, smtp)
    assert (report.retrying, report.sent) == (2, 0)
    assert statuses(store) == ["pending", "pending"]
    assert "cannot reach SMTP server" in report.errors[0]
    smtp.start()
    assert run(store, smtp, now=NOW + timedelta(seconds=59)).claimed == 0
    assert run(store, smtp, now=NOW + timedelta(seconds=60)).sent == 2
    assert statuses(store) == ["sent", "sent"] and len(smtp.inbox.received) == 2


def test_dead_after_max_attempts_and_visible(store: Store, project: str, smtp: Server) -> None:
    queue(store, project, 1)
    smtp.stop()
    now = NOW
    for _ in range(3):
        run(store, smtp, now=now)
        now += timedelta(hours=1)
    assert statuses(store) == ["dead"]
    with store.reading() as s:
        row = s.scalars(select(OutboxMessage)).one()
    assert row.attempts == 3 and "cannot reach" in (row.last_error or "")


def test_refused_recipient_does_not_block_the_batch(store: Store, project: str,
                                                    smtp: Server) -> None:
    queue(store, project, 1, prefix="liaison", to=("client_liaison",))
    queue(store, project, 1, prefix="pm", to=("assigned_pm",))
    queue(store, project, 1, prefix="both", to=("assigned_pm",), cc=("client_liaison",))
    smtp.inbox.refuse.add(LIAISON)
    report = run(store, smtp)
    assert (report.sent, report.dead) == (2, 1)
    assert statuses(store) == ["dead", "sent", "sent"]
    assert [r.rcpt_tos for r in smtp.inbox.received] == [[PM], [PM]]
    with store.reading() as s:
        rows = list(s.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
    assert "550" in (rows[0].last_error or "") and LIAISON in (rows[2].last_error or "")


def test_header_injection_is_refused_and_never_on_the_wire(store: Store, project: str,
                                                           smtp: Server) -> None:
    queue(store, project, 1, prefix="evil", to_phase="closing\r\nBcc: evil@example.com")
    queue(store, project, 1, prefix="fine")
    report = run(store, smtp)
    assert (report.sent, report.dead) == (1, 1)
    assert all("evil@example.com" not in r.rcpt_tos for r in smtp.inbox.received)
    assert all("Bcc" not in r.message for r in smtp.inbox.received)


def test_more_than_k_for_one_person_becomes_a_digest(store: Store, project: str,
                                                     smtp: Server) -> None:
    queue(store, project, 6, to=("client_liaison", "assigned_pm"), cc=("senior_pm",))
    queue(store, project, 1, prefix="single", to=("implementation_coordinator",))
    report = run(store, smtp, digest_threshold=5)
    assert (report.sent, report.digests) == (7, 3)
    digests = [r for r in smtp.inbox.received if r.message["X-CEP-Kind"] == "digest"]
    assert sorted(r.rcpt_tos[0] for r in digests) == sorted([LIAISON, PM, SENIOR])
    body = digests[0].message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "6 notifications" in str(digests[0].message["Subject"]) and body.count("Phase") >= 6
    others = [r for r in smtp.inbox.received if r.message["X-CEP-Kind"] != "digest"]
    assert [r.rcpt_tos for r in others] == [[COORD]]


def test_login_uses_the_password_from_the_environment(store: Store, project: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        seen.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password == b"right-password", handled=False)

    server = Server(authenticator=authenticator, auth_require_tls=False)
    server.start()
    try:
        queue(store, project, 1)
        monkeypatch.setenv("CEP_SMTP_PASSWORD", "wrong-password")
        report = run(store, server, smtp_user="mailer@cts.wa.gov")
        assert report.retrying == 1
        assert "wrong-password" not in " ".join(report.errors)
        monkeypatch.setenv("CEP_SMTP_PASSWORD", "right-password")
        assert run(store, server, now=NOW + timedelta(minutes=5),
                   smtp_user="mailer@cts.wa.gov").sent == 1
    finally:
        server.stop()
    assert seen[-1] == ("mailer@cts.wa.gov", "right-password")


@pytest.mark.postgres
def test_two_deliveries_at_once_on_postgresql_send_each_message_once(
    pg_store: Store, smtp: Server,
) -> None:
    key = staff_project(pg_store)
    queue(pg_store, key, 300, to=("assigned_pm",))
    url = pg_store.engine.url.render_as_string(hide_password=False)
    reports: list[Any] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        own = Store.from_url(url)
        try:
            barrier.wait()
            reports.append(run(own, smtp, batch_size=100, digest_threshold=1000))
            reports.append(run(own, smtp, batch_size=100, digest_threshold=1000))
        finally:
            own.dispose()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    while (more := run(pg_store, smtp, batch_size=100, digest_threshold=1000)).claimed:
        reports.append(more)
    ids = smtp.inbox.ids()
    assert len(ids) == 300 and len(set(ids)) == 300
    assert sum(r.sent for r in reports) == 300
    assert statuses(pg_store) == ["sent"] * 300
    assert sum(1 for r in reports[:4] if r.claimed) >= 2


def test_cli_deliver_list_show_retry_and_preview(tmp_path: Any, smtp: Server,
                                                 sqlite_template: Any,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import shutil

    from cep_engine.cli.app import app

    db = tmp_path / "cli.db"
    shutil.copy(sqlite_template, db)
    store = Store.from_url(f"sqlite:///{db}")
    key = staff_project(store)
    queue(store, key, 1, prefix="ok")
    queue(store, key, 1, prefix="bad", to=("assigned_pm",))
    smtp.inbox.refuse.add(PM)
    for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port),
                        "SMTP_SECURITY": "plain", "SENDER": SENDER}.items():
        monkeypatch.setenv(f"CEP_NOTIFY__{name}", value)
    runner = CliRunner()
    base = ["--database-url", f"sqlite:///{db}"]
    out = runner.invoke(app, [*base, "notify", "deliver", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["sent"] == 1 and json.loads(out.output)["dead"] == 1
    listed = json.loads(runner.invoke(app, [*base, "outbox", "list", "--json"]).output)
    dead = next(r for r in listed if r["status"] == "dead")
    sent = next(r for r in listed if r["status"] == "sent")
    shown = json.loads(runner.invoke(app, [*base, "outbox", "show", str(dead["id"]),
                                           "--json"]).output)
    assert shown["to_roles"] == ["assigned_pm"] and "550" in shown["last_error"]
    refused = runner.invoke(app, [*base, "outbox", "retry", str(sent["id"])])
    assert isinstance(refused.exception, TransitionRefused) and refused.exception.exit_code == 5
    assert runner.invoke(app, [*base, "outbox", "retry", str(dead["id"])]).exit_code == 0
    preview = runner.invoke(app, [*base, "notify", "preview", "escalation", "--part", "text"])
    assert preview.exit_code == 0 and "cep issue ack SDC-042 7 --actor" in preview.output
    store.dispose()
