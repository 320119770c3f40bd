"""The Prefect flows against a real Prefect server (SQLite, its home in a temp folder).

One server and one ``cep serve`` process for the whole module: the server is started the way
``cep up`` starts it; ``cep serve`` serves the deployments and runs the flow runs created
through the API, on a SQLite database of this module (each test uses a project of its own).
The server's scheduler is off, so no scheduled sweep or delivery runs behind the tests' backs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from cep_engine.cli._prefect_env import QUIET, LocalServer, healthy
from cep_engine.services import projects, readiness
from cep_engine.settings import load_settings
from cep_engine.states import Stage
from cep_engine.store.db import Store
from cep_engine.store.models import Base
from tests.conftest import COORD, NOW, PM, audit_count, snapshot, staff_project
from tests.integration.test_notify import SENDER, Server

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Engine:
    """The module's Prefect API, the database its ``cep serve`` runs flows on and the mail
    server they deliver to."""

    api: str
    db_url: str
    store: Store
    smtp: Server


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[Engine]:
    home = tmp_path_factory.mktemp("prefect")
    db = home / "cep.db"
    shutil.copy(sqlite_template, db)
    db_url = f"sqlite:///{db}"
    server = LocalServer(home=home / "server", port=free_port())
    serving: subprocess.Popen[bytes] | None = None
    smtp = Server()
    smtp.start()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", "false")
        server.start()
        try:
            server.wait_healthy(240)
            env = {**QUIET, "PREFECT_API_URL": server.api, "PREFECT_HOME": str(home / "client"),
                   "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
            for name, value in env.items():
                mp.setenv(name, value)
            serving = _serve(home, db_url, smtp)
            with _prefect_settings(server.api, home / "client"):
                _wait_for_deployments(serving, home)
                store = Store.from_url(db_url)
                yield Engine(api=server.api, db_url=db_url, store=store, smtp=smtp)
                store.dispose()
                _flush()
        finally:
            if serving is not None:
                serving.terminate()
                serving.wait(30)
            server.stop()
            smtp.stop()


def _flush() -> None:
    """Send the run logs and events this process still queues while the server is up."""
    from workflows._support import flush

    flush()


def _notify_env(smtp: Server) -> dict[str, str]:
    """``CEP_NOTIFY__*`` settings that deliver to ``smtp``, one message each (no digests:
    the module's tests share their people)."""
    settings = smtp.settings(digest_threshold=10_000)
    return {f"CEP_NOTIFY__{name.upper()}": str(value)
            for name, value in settings.model_dump(exclude_none=True).items()}


def _serve(home: Path, db_url: str, smtp: Server) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CEP_DATABASE_URL": db_url, **_notify_env(smtp)}
    with (home / "serve.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "cep_engine.cli", "serve"], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


class _prefect_settings:
    """Point Prefect at the module's server even if it was imported before the env was set."""

    def __init__(self, api: str, home: Path) -> None:
        import prefect.settings as ps

        self._cm = ps.temporary_settings(updates={ps.PREFECT_API_URL: api, ps.PREFECT_HOME: home})

    def __enter__(self) -> None:
        self._cm.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._cm.__exit__(*exc)


def _wait_for_deployments(serving: subprocess.Popen[bytes], home: Path) -> None:
    from workflows.serve import SERVED

    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if serving.poll() is not None:
            pytest.fail(f"cep serve exited: {(home / 'serve.log').read_text()[-2000:]}")
        if len(_deployments()) >= len(SERVED):
            return
        time.sleep(0.5)
    pytest.fail("cep serve did not register its deployments in time")


def _deployments() -> dict[str, Any]:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        found = client.read_deployments()
        flows = {f.id: f.name for f in client.read_flows()}
    return {f"{flows[d.flow_id]}/{d.name}": d for d in found}


def _run_deployment(name: str, **parameters: Any) -> Any:
    from prefect.deployments import run_deployment

    run = run_deployment(name, parameters=parameters, timeout=120, poll_interval=0.5)
    assert run.state is not None and run.state.is_final(), run.state
    return run


def _logs(run_id: Any) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return [log.message for log in logs]


def _artifact(run_id: Any, key: str) -> list[dict[str, Any]]:
    """The rows of the table artifact ``key`` the run ``run_id`` published."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        ArtifactFilterKey,
    )

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])))
    assert len(found) == 1, found
    columns = json.loads(str(found[0].data))
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _flow_run(run_id: Any) -> Any:
    from prefect import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(run_id)


def _events(name: str, resource_id: str, tries: int = 40, *, related: bool = False
            ) -> list[Any]:
    """The events ``name`` about ``resource_id`` (as a related resource with ``related``)."""
    from prefect import get_client
    from prefect.events.filters import (
        EventFilter,
        EventNameFilter,
        EventRelatedFilter,
        EventResourceFilter,
    )

    event_filter = EventFilter(event=EventNameFilter(name=[name]), **(
        {"related": EventRelatedFilter(id=[resource_id])} if related
        else {"resource": EventResourceFilter(id=[resource_id])}))

    async def read() -> list[Any]:
        async with get_client() as client:
            page = await client.read_events(filter=event_filter, limit=10)
            return list(page.events)

    for _ in range(tries):
        if found := asyncio.run(read()):
            return found
        time.sleep(0.25)
    return []


def test_deployments_exist_with_enum_choices(engine: Engine) -> None:
    found = _deployments()
    phase, review = found["phase-transition/cep"], found["readiness-review/cep"]
    schema = phase.parameter_openapi_schema
    assert schema["required"] == ["project", "trigger", "actor"]
    assert schema["definitions"]["PhaseTrigger"]["enum"] == ["advance", "hold", "resume",
                                                             "cancel"]
    defs = review.parameter_openapi_schema["definitions"]
    assert defs["ReviewAction"]["enum"] == ["submit", "validate", "return"]
    assert defs["Stage"]["enum"] == [s.value for s in Stage]
    assert not phase.paused and not phase.schedules and not review.schedules
    assert "cep-engine" in phase.tags


SCHEDULED: dict[str, tuple[timedelta | str, set[str]]] = {
    "escalation-sweep/cep": (timedelta(minutes=5), {"as_of", "dry_run"}),
    "deliver-notifications/cep": (timedelta(minutes=1), set()),
    "deadline-reminders/cep": ("0 7 * * *", {"as_of", "days_before"}),
    "risk-trigger-check/cep": (timedelta(hours=1), {"as_of"}),
}
"""Each scheduled deployment: its default interval (or cron) and its parameters."""


def test_scheduled_deployments_have_their_schedules_and_parameters(engine: Engine) -> None:
    found = _deployments()
    for name, (every, parameters) in SCHEDULED.items():
        deployment = found[name]
        [schedule] = [s.schedule for s in deployment.schedules]
        if isinstance(every, str):
            assert (schedule.cron, schedule.timezone) == (every, "America/Los_Angeles")
        else:
            assert schedule.interval == every
        schema = deployment.parameter_openapi_schema
        assert set(schema.get("properties", {})) == parameters, name
        assert not schema.get("required"), name
        assert not deployment.paused and "cep-engine" in deployment.tags
    as_of = found["escalation-sweep/cep"].parameter_openapi_schema["properties"]["as_of"]
    assert {"type": "string", "format": "date-time"} in as_of["anyOf"]
    days = found["deadline-reminders/cep"].parameter_openapi_schema["properties"]["days_before"]
    assert (days["minimum"], days["maximum"], days["default"]) == (0, 60, 2)


def test_schedules_come_from_settings(engine: Engine) -> None:
    from prefect import get_client

    from workflows.phase_transition import phase_transition
    from workflows.serve import Served, reminders_schedule, sweep_schedule

    settings = load_settings(schedules={"sweep_every_minutes": 7})
    for builder, name in ((sweep_schedule, "sweep-check"), (reminders_schedule, "cron-check")):
        deployment = Served(phase_transition, builder).deployment(settings)
        deployment.name = name
        deployment_id = deployment.apply()
        with get_client(sync_client=True) as client:
            stored = client.read_deployment(deployment_id)
            client.delete_deployment(deployment_id)
        schedule = stored.schedules[0].schedule
        if name == "sweep-check":
            assert schedule.interval == timedelta(minutes=7)
        else:
            assert (schedule.cron, schedule.timezone) == ("0 7 * * *", "America/Los_Angeles")


def test_defaults_of_the_scheduled_flows() -> None:
    from workflows.serve import delivery_schedule, risk_schedule, sweep_schedule

    settings = load_settings()
    assert sweep_schedule(settings).interval == timedelta(minutes=5)
    assert delivery_schedule(settings).interval == timedelta(minutes=1)
    assert risk_schedule(settings).interval == timedelta(hours=1)


def test_run_created_through_the_api_changes_the_database(engine: Engine) -> None:
    key = staff_project(engine.store, "SDC-101")
    run = _run_deployment("phase-transition/cep", project=key, trigger="advance", actor=PM,
                          reason="kick-off held")
    assert run.state.is_completed()
    with engine.store.reading() as session:
        phase = session.execute(text("SELECT phase FROM projects WHERE key = :k"),
                                {"k": key}).scalar_one()
    assert phase == "planning"
    from prefect import get_client

    with get_client(sync_client=True) as client:
        stored = client.read_flow_run(run.id)
    assert stored.name == f"{key} initiation->planning by {PM}"
    assert {f"project:{key}", "change:phase", "trigger:advance"} <= set(stored.tags)
    events = _events("cep.phase.changed", f"cep.project.{key}")
    assert events and events[0].payload["to"] == "planning"


def test_refused_transition_fails_the_run_and_changes_nothing(engine: Engine) -> None:
    key = staff_project(engine.store, "SDC-102")
    projects.fire_phase(engine.store, key, "advance", actor=PM, now=NOW)
    before, refusals = snapshot(engine.store), audit_count(engine.store, accepted=False)
    run = _run_deployment("phase-transition/cep", project=key, trigger="advance", actor=PM)
    assert run.state.is_failed()
    assert "pre_cutover" in (run.state.message or "")
    assert "\n" not in (run.state.message or "")
    assert snapshot(engine.store) == before
    assert audit_count(engine.store, accepted=False) == refusals + 1
    assert not any("Traceback" in line for line in _logs(run.id))


def test_checklist_review_as_flow_runs(engine: Engine) -> None:
    from workflows._support import run_in_process
    from workflows.readiness_review import readiness_review

    key = staff_project(engine.store, "SDC-103")
    _finish_tasks(engine.store, key)
    settings = load_settings(database_url=engine.db_url)
    out, run_id = run_in_process(readiness_review, settings, {
        "project": key, "stage": "pre_cutover", "action": "submit", "actor": COORD,
        "signer": "Casey Coord", "attestation": "All tasks done."})
    assert out["version"] == 1 and run_id is not None
    out, _ = run_in_process(readiness_review, settings, {
        "project": key, "stage": "pre_cutover", "action": "return", "actor": PM,
        "comment": "Attach the network diagram."})
    assert out["state"] == "returned"
    assert _events("cep.checklist.returned", f"cep.project.{key}")


def _finish_tasks(store: Store, key: str, stage: str = "pre_cutover") -> None:
    with store.reading() as session:
        count = session.execute(text(
            "SELECT count(*) FROM readiness_tasks t JOIN readiness_guides g ON g.id = t.guide_id "
            "JOIN projects p ON p.id = g.project_id WHERE p.key = :k AND g.stage = :s"),
            {"k": key, "s": stage}).scalar_one()
    if count == 0:
        readiness.add_task(store, key, stage, "Confirm the cutover window", actor=PM, now=NOW)
        count = 1
    for number in range(1, count + 1):
        readiness.set_task_done(store, key, stage, number, actor=COORD, now=NOW)


STEPS: list[tuple[str, ...]] = [
    ("phase", "advance", "{key}", "--actor", PM),
    ("checklist", "submit", "{key}", "pre_cutover", "--actor", COORD, "--signer", "Casey",
     "--attest", "Every task is done."),
    ("checklist", "return", "{key}", "pre_cutover", "--actor", PM, "--comment", "Redo #1"),
    ("phase", "cancel", "{key}", "--actor", PM),
    ("phase", "advance", "{key}", "--actor", PM),
    ("phase", "hold", "{key}", "--actor", PM, "--reason", "budget"),
    ("phase", "resume", "{key}", "--actor", PM),
]


def _walk(db_url: str, key: str, local: bool) -> list[str]:
    from typer.testing import CliRunner

    from cep_engine.cli.app import app

    outcomes = []
    for step in STEPS:
        args = ["--database-url", db_url, *(a.format(key=key) for a in step)]
        result = CliRunner().invoke(app, [*args, *(["--local"] if local else [])])
        outcomes.append(type(result.exception).__name__ if result.exception else "ok")
    return outcomes


def _no_time(value: Any) -> Any:
    """``value`` with every instant (a datetime, or an ISO string of one) replaced."""
    if isinstance(value, datetime):
        return "<time>"
    if isinstance(value, dict):
        return {k: _no_time(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_time(v) for v in value]
    if isinstance(value, str) and len(value) >= 19 and value[10] in "T ":
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return value
        return "<time>"
    return value


def _timeless(store: Store) -> dict[str, Any]:
    """Every row of every table, the audit trail included, without the instants."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            rows = conn.execute(table.select()).mappings().all()
            out[table.name] = sorted(repr(_no_time(dict(row))) for row in rows)
    return out


def test_flow_runs_and_local_runs_leave_the_same_state(
    engine: Engine, sqlite_template: Path, tmp_path: Path
) -> None:
    urls = {}
    for path_name in ("flows", "local"):
        path = tmp_path / f"{path_name}.db"
        shutil.copy(sqlite_template, path)
        urls[path_name] = f"sqlite:///{path}"
        store = Store.from_url(urls[path_name])
        staff_project(store, "SDC-104")
        _finish_tasks(store, "SDC-104")
        store.dispose()
    assert os.environ["PREFECT_API_URL"] == engine.api
    via_flows = _walk(urls["flows"], "SDC-104", local=False)
    local = _walk(urls["local"], "SDC-104", local=True)
    assert via_flows == local
    assert "PermissionDenied" in local and local.count("ok") == 5
    stores = {name: Store.from_url(url) for name, url in urls.items()}
    try:
        assert _timeless(stores["flows"]) == _timeless(stores["local"])
    finally:
        for store in stores.values():
            store.dispose()


def test_server_of_the_module_is_healthy(engine: Engine) -> None:
    assert healthy(engine.api)


def test_prefect_clients_are_the_ones_prefect_uses_and_share_one_ssl_context(
    engine: Engine,
) -> None:
    from prefect import get_client

    from workflows._support import prefect_clients

    async def clients() -> tuple[Any, Any]:
        async with prefect_clients():
            async_client, sync_client = get_client(), get_client(sync_client=True)
            assert get_client() is async_client
            assert get_client(sync_client=True) is sync_client
            assert (await async_client.hello()).status_code == 200
            return async_client, sync_client

    first, second = asyncio.run(clients()), asyncio.run(clients())
    assert first[0] is not second[0]
    contexts = {id(client._client._transport._pool._ssl_context) for client in (*first, *second)}
    assert len(contexts) == 1


H = timedelta(hours=1)


def _open_issues(store: Store, key: str, count: int, *, at: datetime = NOW) -> list[int]:
    from cep_engine.services import issues, jobs

    policy = jobs.policy(load_settings())
    return [issues.open_issue(store, key, f"Firewall rule {i} missing", priority_name="critical",
                              actor=PM, now=at, policy=policy).number for i in range(count)]


def _levels(store: Store, key: str) -> dict[int, str]:
    with store.reading() as session:
        rows = session.execute(text(
            "SELECT i.number, i.level FROM issues i JOIN projects p ON p.id = i.project_id "
            "WHERE p.key = :k"), {"k": key}).all()
    return {number: level for number, level in rows}


def test_escalation_sweep_escalates_once_publishes_and_emits(engine: Engine) -> None:
    from workflows._support import run_in_process
    from workflows.escalation_sweep import escalation_sweep

    key = staff_project(engine.store, "SDC-201")
    numbers = _open_issues(engine.store, key, 2)
    as_of = (NOW + 2 * H).isoformat()  # critical: senior_pm after 2 business hours
    settings = load_settings(database_url=engine.db_url)
    before = snapshot(engine.store)
    dry, _ = run_in_process(escalation_sweep, settings, {"as_of": as_of, "dry_run": True})
    assert {"project": key, "level": "senior_pm", "count": 2} in dry["by_project_level"]
    assert snapshot(engine.store) == before

    run = _run_deployment("escalation-sweep/cep", as_of=as_of)
    assert run.state.is_completed(), run.state
    assert _levels(engine.store, key) == dict.fromkeys(numbers, "senior_pm")
    stored = _flow_run(run.id)
    assert stored.name.startswith("sweep 2026-11-02T19:00Z: ")
    assert stored.name.endswith(" escalated")
    assert {"change:escalation", f"project:{key}"} <= set(stored.tags)
    rows = _artifact(run.id, "escalation-sweep")
    assert {"project": key, "level": "senior_pm", "issues": 2} in rows
    [event] = _events("cep.issues.escalated", f"cep.project.{key}")
    assert event.resource["cep.level"] == "senior_pm"
    assert {k: event.payload[k] for k in ("level", "from_level", "count", "issues")} == {
        "level": "senior_pm", "from_level": "team", "count": 2, "issues": numbers}
    issues = [(r.id, r.role, r["cep.priority"]) for r in event.related if r.role == "issue"]
    assert issues == [(f"cep.issue.{key}.{n}", "issue", "critical") for n in numbers]
    assert (f"prefect.flow-run.{run.id}", "flow-run") in [(r.id, r.role) for r in event.related]
    for number in numbers:  # an automation can match the issue as a related resource
        [same] = _events("cep.issues.escalated", f"cep.issue.{key}.{number}", related=True)
        assert same.id == event.id

    again = _run_deployment("escalation-sweep/cep", as_of=as_of)
    assert _flow_run(again.id).name == "sweep 2026-11-02T19:00Z: 0 escalated"
    assert _artifact(again.id, "escalation-sweep") == []
    assert _levels(engine.store, key) == dict.fromkeys(numbers, "senior_pm")


def test_escalation_sweep_event_names_at_most_its_cap_of_issues(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import workflows.escalation_sweep as module
    from workflows._support import run_in_process

    key = staff_project(engine.store, "SDC-208")
    numbers = _open_issues(engine.store, key, 3)
    monkeypatch.setattr(module, "ISSUES_PER_EVENT", 2)
    settings = load_settings(database_url=engine.db_url)
    out, run_id = run_in_process(module.escalation_sweep, settings,
                                 {"as_of": (NOW + 2 * H).isoformat()})
    assert {"project": key, "level": "senior_pm", "count": 3} in out["by_project_level"]
    _flush()
    [event] = _events("cep.issues.escalated", f"cep.project.{key}")
    assert event.payload["count"] == 3 and event.payload["issues"] == numbers[:2]
    assert [r.id for r in event.related if r.role == "issue"] == [
        f"cep.issue.{key}.{n}" for n in numbers[:2]]
    assert _events("cep.issues.escalated", f"cep.issue.{key}.{numbers[2]}", tries=1,
                   related=True) == []
    assert ("1 escalated issue(s) are counted in their cep.issues.escalated event but not "
            "named in it (at most 2 per project and level)") in _logs(run_id)


def test_escalation_sweep_refuses_a_time_without_zone(engine: Engine) -> None:
    from cep_engine.errors import InvalidInput
    from workflows._support import run_in_process
    from workflows.escalation_sweep import escalation_sweep

    before = snapshot(engine.store)
    settings = load_settings(database_url=engine.db_url)
    with pytest.raises(InvalidInput, match="has no time zone"):
        run_in_process(escalation_sweep, settings, {"as_of": "2026-11-02T19:00:00"})
    assert snapshot(engine.store) == before


def _outbox(store: Store, like: str) -> list[tuple[str, str, int]]:
    with store.reading() as session:
        rows = session.execute(text(
            "SELECT idempotency_key, status, attempts FROM outbox WHERE idempotency_key LIKE :k "
            "ORDER BY id"), {"k": like}).all()
    return [(k, s, a) for k, s, a in rows]


def _queue(store: Store, key: str, prefix: str, count: int, **over: Any) -> list[str]:
    from sqlalchemy import select

    from cep_engine.notify.outbox import Kind, enqueue, outbox_row
    from cep_engine.notify.samples import sample_context
    from cep_engine.store.models import Project

    context = {k: v for k, v in sample_context("phase_changed").items()
               if k not in ("to", "cc", "project")}
    keys = [f"{prefix}:{i}" for i in range(count)]
    with store.transaction() as session:
        pid = session.scalars(select(Project.id).where(Project.key == key)).one()
        enqueue(session, [outbox_row(key=k, kind=Kind.PHASE_CHANGED, project_id=pid,
                                     context=context, now=NOW,
                                     **({"to_roles": ["client_liaison"]} | over))
                          for k in keys])
    return keys


def _received(smtp: Server, keys: list[str]) -> list[str]:
    from cep_engine.notify.mailer import message_id_for

    wanted = {message_id_for(k, SENDER) for k in keys}
    return [i for i in smtp.inbox.ids() if i in wanted]


def _outcomes(run_id: Any) -> dict[str, int]:
    return {r["outcome"]: r["messages"] for r in _artifact(run_id, "notification-delivery")}


def test_delivery_sends_once_publishes_and_reports_the_dead(engine: Engine) -> None:
    key = staff_project(engine.store, "SDC-202")
    sent = _queue(engine.store, key, "flow-sent", 2)
    dead = _queue(engine.store, key, "flow-dead", 1, to_roles=[],
                  to_addresses=["gone@dol.wa.gov"])
    engine.smtp.inbox.refuse.add("gone@dol.wa.gov")
    run = _run_deployment("deliver-notifications/cep")
    assert run.state.is_completed(), run.state
    assert sorted(_received(engine.smtp, sent + dead)) == sorted(_received(engine.smtp, sent))
    assert len(_received(engine.smtp, sent)) == 2
    assert [s for _, s, _ in _outbox(engine.store, "flow-%")] == ["sent", "sent", "dead"]
    outcomes = _outcomes(run.id)
    assert outcomes["sent"] >= 2 and outcomes["dead"] >= 1 and outcomes["retrying"] == 0
    stored = _flow_run(run.id)
    assert re.fullmatch(r"delivery \S+Z: \d+ sent, 0 retrying, \d+ dead", stored.name)
    assert "change:notification" in stored.tags
    with engine.store.reading() as session:
        dead_id = session.execute(text("SELECT id FROM outbox WHERE idempotency_key = :k"),
                                  {"k": dead[0]}).scalar_one()
    [event] = _events("cep.notification.dead", f"cep.notification.{dead_id}")
    assert "550" in event.payload["last_error"]
    assert (f"cep.project.{key}", "project") in [(r.id, r.role) for r in event.related]

    again = _run_deployment("deliver-notifications/cep")
    assert again.state.is_completed()
    assert _outcomes(again.id)["claimed"] == 0
    assert len(_received(engine.smtp, sent)) == 2


def test_delivery_retries_after_the_mail_server_comes_back(
    engine: Engine, sqlite_template: Path, tmp_path: Path
) -> None:
    from workflows._support import run_in_process
    from workflows.deliver_notifications import deliver_notifications

    path = tmp_path / "retry.db"
    shutil.copy(sqlite_template, path)
    store = Store.from_url(f"sqlite:///{path}")
    keys = _queue(store, staff_project(store, "SDC-206"), "retry", 3)
    smtp = Server()
    settings = load_settings(database_url=f"sqlite:///{path}",
                             notify=smtp.settings(backoff_seconds=1).model_dump())
    watcher = threading.Thread(target=_start_when_deferred, args=(store, smtp), daemon=True)
    watcher.start()
    try:
        out, run_id = run_in_process(deliver_notifications.with_options(retry_delay_seconds=2),
                                     settings, {})
        watcher.join(10)
        assert out["sent"] == 3 and not out["server_down"]
        assert len(_received(smtp, keys)) == 3
        assert [(s, a) for _, s, a in _outbox(store, "retry:%")] == [("sent", 2)] * 3
        assert _flow_run(run_id).run_count == 2
    finally:
        smtp.stop()
        store.dispose()


def _start_when_deferred(store: Store, smtp: Server) -> None:
    """Start the mail server once the first attempt has recorded its failure."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if any(a == 1 for _, s, a in _outbox(store, "retry:%") if s == "pending"):
            with store.reading() as session:
                failed = session.execute(text(
                    "SELECT count(*) FROM outbox WHERE last_error IS NOT NULL")).scalar_one()
            if failed:
                smtp.start()
                return
        time.sleep(0.05)


def test_reminders_queue_once_publish_and_emit(engine: Engine) -> None:
    from datetime import date

    from cep_engine.services import actions

    key = staff_project(engine.store, "SDC-203")
    item = actions.add_action(engine.store, key, "Send the cutover plan", actor=PM, now=NOW,
                              owner=COORD, due=date(2026, 11, 4))
    as_of = "2026-11-06T15:00:00+00:00"
    run = _run_deployment("deadline-reminders/cep", as_of=as_of)
    assert run.state.is_completed(), run.state
    reminder = f"reminder:action:{item.id}:2026-11-04:overdue"
    assert _outbox(engine.store, reminder) == [(reminder, "pending", 0)]
    rows = _artifact(run.id, "deadline-reminders")
    assert {"project": key, "when": "overdue", "item": "action item", "ref": "A-1",
            "title": "Send the cutover plan", "due_date": "2026-11-04", "owner": COORD} in rows
    stored = _flow_run(run.id)
    assert re.fullmatch(r"reminders 2026-11-06T15:00Z: \d+ due soon, \d+ overdue", stored.name)
    [event] = _events("cep.reminder.queued", f"cep.action.{key}.A-1")
    assert event.payload["when"] == "overdue"

    again = _run_deployment("deadline-reminders/cep", as_of=as_of)
    assert _flow_run(again.id).name == "reminders 2026-11-06T15:00Z: 0 due soon, 0 overdue"
    assert _outbox(engine.store, reminder) == [(reminder, "pending", 0)]


def test_risk_check_triggers_once_publishes_and_emits(engine: Engine) -> None:
    from datetime import date

    from cep_engine.services import log_queries, risks

    key = staff_project(engine.store, "SDC-204")
    risks.add_risk(engine.store, key, risks.RiskInput.checked(
        "Vendor misses the rack delivery", 4, 4, trigger_text="no rack by Nov 3",
        owner=COORD, trigger_date=date(2026, 11, 3)), actor=PM, now=NOW)
    as_of = "2026-11-04T16:00:00+00:00"
    run = _run_deployment("risk-trigger-check/cep", as_of=as_of)
    assert run.state.is_completed(), run.state
    with engine.store.reading() as session:
        shown = log_queries.show_risk(session, key, 1)
    assert shown["status"] == "triggered" and shown["issue"] == 1
    assert [a["ref"] for a in shown["actions"]] == ["A-1"]
    assert _artifact(run.id, "risk-triggers") == [
        {"project": key, "risk": "R-1", "title": "Vendor misses the rack delivery", "score": 16,
         "owner": COORD, "issue": 1, "action_items": "A-1"}]
    assert _flow_run(run.id).name == "risk check 2026-11-04T16:00Z: 1 triggered"
    [event] = _events("cep.risk.triggered", f"cep.risk.{key}.R-1")
    assert (f"cep.issue.{key}.1", "issue") in [(r.id, r.role) for r in event.related]

    again = _run_deployment("risk-trigger-check/cep", as_of=as_of)
    assert _flow_run(again.id).name == "risk check 2026-11-04T16:00Z: 0 triggered"
    assert _artifact(again.id, "risk-triggers") == []
    with engine.store.reading() as session:
        assert len(session.execute(text(
            "SELECT 1 FROM issues i JOIN projects p ON p.id = i.project_id WHERE p.key = :k"),
            {"k": key}).all()) == 1


JOBS: list[tuple[str, ...]] = [
    ("escalate", "--as-of", (NOW + 2 * H).isoformat()),
    ("escalate", "--as-of", (NOW + 4 * H).isoformat(), "--dry-run"),
    ("remind", "--as-of", "2026-11-06T15:00:00+00:00"),
    ("risk", "sweep", "--as-of", "2026-11-06T15:00:00+00:00"),
    ("notify", "deliver"),
    ("remind", "--as-of", "2026-11-06T15:00:00+00:00"),
    ("notify", "deliver"),
]
"""The scheduled jobs as CLI commands, in order."""


def _stock(store: Store, key: str) -> None:
    """Three idle issues, an overdue action item and a risk whose trigger date has passed."""
    from datetime import date

    from cep_engine.services import actions, risks

    _open_issues(store, key, 3)
    actions.add_action(store, key, "Send the cutover plan", actor=PM, now=NOW, owner=COORD,
                       due=date(2026, 11, 4))
    risks.add_risk(store, key, risks.RiskInput.checked(
        "Vendor misses the rack delivery", 4, 4, owner=COORD, trigger_date=date(2026, 11, 3)),
        actor=PM, now=NOW)


def test_jobs_as_flow_runs_and_local_runs_leave_the_same_state(
    engine: Engine, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cep_engine.cli.app import app

    for name, value in _notify_env(engine.smtp).items():
        monkeypatch.setenv(name, value)
    outputs: dict[str, list[Any]] = {}
    stores: dict[str, Store] = {}
    for path_name in ("flows", "local"):
        path = tmp_path / f"{path_name}.db"
        shutil.copy(sqlite_template, path)
        url = f"sqlite:///{path}"
        stores[path_name] = store = Store.from_url(url)
        _stock(store, staff_project(store, "SDC-205"))
        outputs[path_name] = []
        for job in JOBS:
            args = ["--database-url", url, *job, "--json",
                    *(["--local"] if path_name == "local" else [])]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, (job, result.output, result.exception)
            outputs[path_name].append(json.loads(result.stdout))
        said = CliRunner().invoke(app, ["--database-url", url, "escalate", "--dry-run",
                                        *(["--local"] if path_name == "local" else [])])
        assert ("; flow run http" in said.stdout) is (path_name == "flows"), said.stdout
    try:
        assert outputs["flows"] == outputs["local"]
        assert outputs["local"][0]["total"] == 3
        assert outputs["local"][2]["overdue"] == 1 and outputs["local"][5]["overdue"] == 0
        assert outputs["local"][3]["triggered"] == ["SDC-205 R-1"]
        assert outputs["local"][4]["sent"] >= 5 and outputs["local"][6]["claimed"] == 0
        assert _timeless(stores["flows"]) == _timeless(stores["local"])
    finally:
        for store in stores.values():
            store.dispose()


def test_cli_delivery_with_the_mail_server_down_says_the_same_on_both_paths(
    engine: Engine, sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from cep_engine.cli.app import app

    down = Server()  # never started: nothing listens on its port
    for name, value in _notify_env(down).items():
        monkeypatch.setenv(name, value)
    outputs: dict[str, Any] = {}
    stores: dict[str, Store] = {}
    for path_name in ("flows", "local"):
        path = tmp_path / f"{path_name}.db"
        shutil.copy(sqlite_template, path)
        stores[path_name] = store = Store.from_url(f"sqlite:///{path}")
        _queue(store, staff_project(store, "SDC-207"), "down", 2)
        result = CliRunner().invoke(app, [
            "--database-url", f"sqlite:///{path}", "notify", "deliver", "--json",
            *(["--local"] if path_name == "local" else [])])
        assert result.exit_code == 0, (result.output, result.exception)
        outputs[path_name] = json.loads(result.stdout)
    try:
        assert outputs["flows"] == outputs["local"]
        local = outputs["local"]
        assert local["retrying"] >= 2 and "cannot reach" in local["server_down"]
        assert _timeless(stores["flows"]) == _timeless(stores["local"])
    finally:
        for store in stores.values():
            store.dispose()
