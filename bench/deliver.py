"""Benchmark: deliver N queued messages to a local aiosmtpd, beside a plain smtplib baseline.

Both sides send the same N messages (same bytes on the wire) to the same server in the same
run; the baseline is the fastest thing possible: pre-built messages, one ``smtplib``
connection, ``sendmail`` in a loop. Delivery does everything for real: claim, resolve
recipients from roles, render both templates, compose, send, record the outcomes.

The server is aiosmtpd's ``Sink`` handler in a process of its own, so that it does not
compete with the client for the GIL. A third run sends to a mailer that composes but does
not send, which isolates rendering plus outbox bookkeeping per message. Each figure is the
best of ``--repeat`` runs.

    .venv/bin/python bench/deliver.py [--messages 5000] [--repeat 3] [--pg-url ADMIN_URL]

With ``--pg-url`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) the outbox is
in a database ``cep_bench_<random>`` created on that server and dropped at the end; without
it, in a temporary SQLite file.
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from cep_engine.guides import load_guides
from cep_engine.notify.config import NotifySettings
from cep_engine.notify.deliver import deliver
from cep_engine.notify.mailer import Mail, SmtpMailer, compose
from cep_engine.notify.outbox import Kind, enqueue, outbox_row
from cep_engine.notify.samples import sample_context
from cep_engine.services import projects
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade
from cep_engine.store.models import OutboxMessage, Project

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
SENDER = "cep-engine@cts.wa.gov"
STAFF = {"pat.pm@cts.wa.gov": "assigned_pm", "lee.liaison@cts.wa.gov": "client_liaison",
         "casey.coord@dol.wa.gov": "implementation_coordinator",
         "sam.senior@cts.wa.gov": "senior_pm"}


def start_server(port: int) -> subprocess.Popen[bytes]:
    """``python -m aiosmtpd`` with the Sink handler on ``port``; wait until it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "aiosmtpd", "-n", "-l",
                             f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"])
    for _ in range(100):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("aiosmtpd did not start")


class ComposeOnly:
    """A mailer that does the adapter's work (compose to bytes) but sends nothing."""

    sender = SENDER

    def open(self) -> None:
        """Nothing to connect to."""

    def send(self, mail: Mail) -> list[str]:
        compose(mail, self.sender)
        return []

    def close(self) -> None:
        """Nothing to close."""


def setup(url: str | None, workdir: Path, n: int) -> Store:
    store = Store.from_url(url or f"sqlite:///{workdir / 'bench.db'}")
    upgrade(store)
    for email in STAFF:
        projects.add_person(store, email, email.split("@")[0].title(), now=NOW)
    projects.create_project(store, "SDC-001", "Bench", "Department of Licensing",
                            actor="pat.pm@cts.wa.gov", guides=load_guides(REPO_CONFIG_DIR),
                            now=NOW)
    for email, role in STAFF.items():
        projects.assign_role(store, "SDC-001", role, email, actor="pat.pm@cts.wa.gov", now=NOW)
    context = {k: v for k, v in sample_context("phase_changed").items()
               if k not in ("to", "cc", "project")}
    with store.transaction() as s:
        pid = s.scalars(select(Project.id)).one()
        enqueue(s, [outbox_row(key=f"bench:{i}", kind=Kind.PHASE_CHANGED, project_id=pid,
                               context=context | {"reason": f"step {i}"}, now=NOW,
                               to_roles=["client_liaison", "implementation_coordinator"],
                               cc_roles=["senior_pm"]) for i in range(n)])
    return store


def create_pg_database(admin_url: str) -> str:
    name = f"cep_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(admin_url: str, url: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def reset(store: Store) -> None:
    with store.transaction() as s:
        s.execute(update(OutboxMessage).values(status="pending", attempts=0,
                                               next_attempt_at=NOW, sent_at=None,
                                               message_id=None, last_error=None))


def baseline(port: int, messages: list[tuple[list[str], bytes]]) -> float:
    start = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port, local_hostname="localhost") as smtp:
        for rcpts, data in messages:
            smtp.sendmail(SENDER, rcpts, data)
    return time.perf_counter() - start


def timed_deliver(store: Store, mailer: Any, cfg: NotifySettings, n: int) -> float:
    reset(store)
    start = time.perf_counter()
    report = deliver(store, mailer, now=NOW, settings=cfg)
    elapsed = time.perf_counter() - start
    assert report.sent == n, report
    return elapsed


def wire_messages(store: Store, cfg: NotifySettings) -> list[tuple[list[str], bytes]]:
    """The exact messages delivery sends, captured once, for the baseline."""
    captured: list[tuple[list[str], bytes]] = []

    class Capture(ComposeOnly):
        def send(self, mail: Mail) -> list[str]:
            captured.append((list(mail.recipients), compose(mail, self.sender)))
            return []

    reset(store)
    deliver(store, Capture(), now=NOW, settings=cfg)
    return captured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg-url", default=None)
    args = parser.parse_args()
    n = args.messages
    workdir = Path(tempfile.mkdtemp(prefix="cep-bench-"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = start_server(port)
    db_url = create_pg_database(args.pg_url) if args.pg_url else None
    try:
        store = setup(db_url, workdir, n)
        cfg = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_security="plain",
                             sender=SENDER, batch_size=n, digest_threshold=n + 1)
        wire = wire_messages(store, cfg)
        base, ours, overhead = [], [], []
        for _ in range(args.repeat):
            base.append(baseline(port, wire))
            ours.append(timed_deliver(store, SmtpMailer(cfg), cfg, n))
            overhead.append(timed_deliver(store, ComposeOnly(), cfg, n))
        report(store.engine.dialect.name, n, base, ours, overhead)
        store.dispose()
    finally:
        server.terminate()
        server.wait(10)
        if args.pg_url and db_url:
            drop_pg_database(args.pg_url, db_url)
        shutil.rmtree(workdir, ignore_errors=True)


def report(backend: str, n: int, base: list[float], ours: list[float],
           overhead: list[float]) -> None:
    ratios = sorted(b / o for b, o in zip(base, ours, strict=True))
    print(f"backend: {backend}; {n} messages, each To 2 + Cc 1, text + HTML; "
          f"{len(base)} interleaved rounds")
    print(f"baseline smtplib loop : best {min(base):7.3f} s  {n / min(base):6.0f} msg/s")
    print(f"cep notify deliver    : best {min(ours):7.3f} s  {n / min(ours):6.0f} msg/s")
    print(f"ratio deliver/baseline msg/s per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f} (goal >= 0.80)")
    print(f"render + compose + bookkeeping: best {min(overhead) / n * 1000:.3f} ms/message, "
          f"median {statistics.median(overhead) / n * 1000:.3f} (goal < 1 ms)")


if __name__ == "__main__":
    main()
