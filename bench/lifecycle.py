"""Phase transitions per second through the service layer, against plain SQLAlchemy Core.

N projects go initiation -> planning -> execution -> closing -> closed through
``services.projects.fire_phase`` (one transaction each: load, authorize, guards, UPDATE with
the version check, audit row, commit). Their prerequisites (people, roles, validated
checklists, sign-off) are bulk-inserted first and not timed.

The baseline, in the same run, on the same engine: another N projects get the same writes
with plain Core (UPDATE projects phase/version/updated_at WHERE version matches + INSERT the
audit row, + the outbox row, one transaction per transition), so with the same pragmas and
the same BEGIN IMMEDIATE. Service and baseline run interleaved in chunks, so that noise from
other processes hits both alike; the ratio is service / baseline time, in wall-clock and in
CPU time (the steadier one on a shared machine).

    .venv/bin/python bench/lifecycle.py --backend both
"""

from __future__ import annotations

import argparse
import gc
import os
import shlex
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.engine import make_url

from cep_engine.notify.outbox import Kind, outbox_row
from cep_engine.services.projects import fire_phase
from cep_engine.states import Phase, Stage
from cep_engine.store import tables
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade
from cep_engine.store.models import (
    AuditEntry,
    CustomerSignoff,
    OutboxMessage,
    Person,
    Project,
    ReadinessGuide,
    RoleAssignment,
)

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)
PM = "pat.pm@cts.wa.gov"
STAFF = (
    (PM, "Pat Morgan", "assigned_pm"),
    ("lee.liaison@cts.wa.gov", "Lee Chen", "client_liaison"),
    ("casey.coord@dol.wa.gov", "Casey Rivera", "implementation_coordinator"),
)
LIFECYCLE = (Phase.INITIATION, Phase.PLANNING, Phase.EXECUTION, Phase.CLOSING, Phase.CLOSED)
GOAL_TPS = 1000.0
GOAL_RATIO = 3.0
CHUNK = 250
WARMUP = 20


@dataclass
class Timings:
    """Seconds per transition: wall clock, and this process's CPU time (on a shared machine
    the CPU time is the steadier figure: it leaves out waiting for a core)."""

    samples: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @contextmanager
    def timed(self) -> Iterator[None]:
        start, start_cpu = time.perf_counter(), time.process_time()
        yield
        self.cpu.append(time.process_time() - start_cpu)
        self.samples.append(time.perf_counter() - start)

    @property
    def total(self) -> float:
        return sum(self.samples)

    @property
    def per_second(self) -> float:
        return len(self.samples) / self.total

    def pct(self, p: float) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def seed(engine: Engine, prefix: str, count: int, *, prerequisites: bool) -> list[int]:
    """Bulk-insert ``count`` projects in initiation (and everything their gates need)."""
    rows = [
        {"key": f"{prefix}-{i:06d}", "name": f"Bench project {i}", "agency": "Bench agency",
         "phase": Phase.INITIATION.value, "version": 1, "created_at": NOW, "updated_at": NOW}
        for i in range(1, count + 1)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Project), rows)
        ids = list(conn.scalars(
            select(Project.id).where(Project.key.like(f"{prefix}-%")).order_by(Project.key)
        ))
        if prerequisites:
            people = {email: pid for email, pid in conn.execute(select(Person.email, Person.id))}
            conn.execute(insert(RoleAssignment), [
                {"project_id": pid, "person_id": people[email], "role": role,
                 "assigned_at": NOW}
                for pid in ids for email, _, role in STAFF
            ])
            conn.execute(insert(ReadinessGuide), [
                {"project_id": pid, "stage": stage.value, "title": stage.value,
                 "state": "validated", "version": 1, "updated_at": NOW}
                for pid in ids for stage in Stage
            ])
            conn.execute(insert(CustomerSignoff), [
                {"project_id": pid, "person_id": people[STAFF[2][0]], "signer_name": "Casey",
                 "statement": "Accepted.", "signed_at": NOW}
                for pid in ids
            ])
    return ids


PROJECTS, AUDIT = tables.projects, tables.audit_log
ADVANCE = (
    update(PROJECTS)
    .where(PROJECTS.c.id == bindparam("pid"), PROJECTS.c.version == bindparam("old_version"))
    .values(phase=bindparam("dest"), held_from=None, version=bindparam("new_version"),
            updated_at=bindparam("now"))
)
AUDIT_ROW = insert(AUDIT)
GUARDS = [{"guard": "core_roles_assigned", "passed": True, "detail": None}]


OUTBOX_ROW = insert(tables.outbox)
OUTBOX = {"on": False}
"""Whether the baseline also queues an outbox row: set when the service is seen to."""


def baseline_step(engine: Engine, pid: int, key: str, step: int, now: datetime) -> None:
    """The same writes as one accepted ``advance`` in plain Core: versioned UPDATE + audit
    row (+ the outbox row, when the service queues one), one transaction."""
    source, dest = LIFECYCLE[step].value, LIFECYCLE[step + 1].value
    with engine.begin() as conn:
        if OUTBOX["on"]:
            conn.execute(OUTBOX_ROW, outbox_row(
                key=f"phase:{pid}:{step + 2}", kind=Kind.PHASE_CHANGED, project_id=pid,
                now=now, to_roles=["client_liaison"], cc_roles=["senior_pm"],
                context={"from_phase": source, "to_phase": dest, "trigger": "advance"}))
        done = conn.execute(ADVANCE, {"pid": pid, "old_version": step + 1, "dest": dest,
                                      "new_version": step + 2, "now": now})
        if done.rowcount != 1:
            raise RuntimeError(f"{key}: lost the version check")
        conn.execute(AUDIT_ROW, {
            "at": now, "actor": PM, "actor_roles": "assigned_pm", "project_id": pid,
            "entity_type": "project", "entity": key, "trigger": "advance",
            "from_state": source, "to_state": dest, "accepted": True, "guards": GUARDS,
            "reason": "",
        })


def run(store: Store, count: int, out: Callable[[str], None]) -> tuple[Timings, Timings]:
    """Seed, warm up, then time service and baseline transitions interleaved by chunk."""
    engine = store.engine
    with engine.begin() as conn:
        conn.execute(insert(Person), [
            {"email": e, "name": n, "created_at": NOW} for e, n, _ in STAFF
        ])
    started = time.perf_counter()
    service_ids = seed(engine, "SVC", count, prerequisites=True)
    baseline_ids = seed(engine, "BAS", count, prerequisites=False)
    seed(engine, "WRM", WARMUP, prerequisites=True)
    seed(engine, "WRB", WARMUP, prerequisites=False)
    out(f"seeded {2 * count} projects and their prerequisites in "
        f"{time.perf_counter() - started:.1f} s (not timed)")
    with engine.connect() as conn:
        warm_b = list(conn.scalars(select(Project.id).where(Project.key.like("WRB-%"))))
    for step in range(4):
        for i in range(1, WARMUP + 1):
            fire_phase(store, f"WRM-{i:06d}", "advance", actor=PM, now=NOW)
        for i, pid in enumerate(sorted(warm_b), start=1):
            baseline_step(engine, pid, f"WRB-{i:06d}", step, NOW)

    with engine.connect() as conn:
        OUTBOX["on"] = bool(conn.scalar(select(func.count()).select_from(OutboxMessage)))
    out("baseline writes per transition: versioned UPDATE + audit row"
        + (" + outbox row (the service queues one)" if OUTBOX["on"] else ""))
    service, baseline = Timings(), Timings()
    gc.collect()
    for step in range(4):
        now = NOW + timedelta(days=step + 1)
        for lo in range(0, count, CHUNK):
            for i in range(lo, min(lo + CHUNK, count)):
                key = f"SVC-{i + 1:06d}"
                with service.timed():
                    fire_phase(store, key, "advance", actor=PM, now=now)
            for i in range(lo, min(lo + CHUNK, count)):
                key = f"BAS-{i + 1:06d}"
                with baseline.timed():
                    baseline_step(engine, baseline_ids[i], key, step, now)
        out(f"  {LIFECYCLE[step].value} -> {LIFECYCLE[step + 1].value}: done for "
            f"{count} + {count} projects")
    verify(engine, service_ids, count)
    return service, baseline


def verify(engine: Engine, service_ids: list[int], count: int) -> None:
    """Every service project ended closed at version 5 with four accepted audit rows."""
    with engine.connect() as conn:
        closed = conn.scalar(select(func.count()).select_from(Project).where(
            Project.key.like("SVC-%"), Project.phase == "closed", Project.version == 5))
        audited = conn.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.entity.like("SVC-%"), AuditEntry.accepted.is_(True)))
    if closed != count or audited != 4 * count or len(service_ids) != count:
        raise SystemExit(f"verification failed: {closed} closed, {audited} audit rows")


def report(name: str, service: Timings, baseline: Timings, out: Callable[[str], None]) -> None:
    """Print transitions/s, p50 and p99 of both, the ratio and the goals."""
    ms = 1000.0
    out(f"\n{name}: {len(service.samples)} transitions each")
    out(f"  {'':10} {'trans/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'cpu ms':>8}")
    for label, t in (("service", service), ("baseline", baseline)):
        out(f"  {label:10} {t.per_second:9.0f} {t.pct(50) * ms:8.3f} {t.pct(99) * ms:8.3f} "
            f"{statistics.fmean(t.samples) * ms:8.3f} {statistics.fmean(t.cpu) * ms:8.3f}")
    ratio = service.total / baseline.total
    out(f"  CPU time: {len(service.cpu) / sum(service.cpu):.0f} transitions per CPU-second, "
        f"ratio {sum(service.cpu) / sum(baseline.cpu):.2f}")
    out(f"  ratio service/baseline time: {ratio:.2f} "
        f"(p50 {service.pct(50) / baseline.pct(50):.2f}, "
        f"p99 {service.pct(99) / baseline.pct(99):.2f})")
    out(f"  goal ratio <= {GOAL_RATIO:g}: {'met' if ratio <= GOAL_RATIO else 'NOT met'}")
    if name == "sqlite":
        ok = service.per_second >= GOAL_TPS
        out(f"  goal >= {GOAL_TPS:.0f} transitions/s: {'met' if ok else 'NOT met'}")


def bench_sqlite(count: int, out: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory(prefix="cep-bench-") as tmp:
        store = Store.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(store)
        with store.engine.connect() as conn:
            pragmas = {p: conn.exec_driver_sql(f"PRAGMA {p}").scalar()
                       for p in ("journal_mode", "synchronous", "foreign_keys")}
        out(f"sqlite pragmas (Store's, for service and baseline alike): {pragmas}, "
            "BEGIN IMMEDIATE per transaction")
        try:
            service, baseline = run(store, count, out)
        finally:
            store.dispose()
    report("sqlite", service, baseline, out)


def bench_postgresql(count: int, admin_url: str, out: Callable[[str], None]) -> None:
    name = f"cep_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        store = Store.from_url(make_url(admin_url).set(database=name).render_as_string(False))
        try:
            upgrade(store)
            service, baseline = run(store, count, out)
        finally:
            store.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    report("postgresql", service, baseline, out)


def machine(out: Callable[[str], None], pg_url: str | None) -> None:
    import sqlite3

    import sqlalchemy

    out(f"machine: nproc={os.cpu_count()} python={sys.version.split()[0]} "
        f"sqlite={sqlite3.sqlite_version} sqlalchemy={sqlalchemy.__version__}")
    if pg_url:
        engine = create_engine(pg_url)
        with engine.connect() as conn:
            out(f"postgresql: {conn.scalar(text('SHOW server_version'))}, synchronous_commit="
                f"{conn.scalar(text('SHOW synchronous_commit'))}")
        engine.dispose()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--pg-url", default=os.environ.get("CEP_TEST_POSTGRES_URL", PG_URL),
                        help="an existing database; the benchmark creates and drops its own")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still drop the bench database

    def out(line: str) -> None:
        print(line, flush=True)

    out(f"$ {shlex.join(sys.orig_argv)}")
    use_pg = args.backend in ("postgresql", "both")
    machine(out, args.pg_url if use_pg else None)
    if args.backend in ("sqlite", "both"):
        bench_sqlite(args.projects, out)
    if use_pg:
        bench_postgresql(args.projects, args.pg_url, out)


if __name__ == "__main__":
    main()
