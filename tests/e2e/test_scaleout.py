"""Scale-out on one machine, as the README's recipe runs it: a Prefect server on PostgreSQL,
``cep deploy --pool`` (a process work pool), two ``cep worker --pool --limit 1`` processes and
the cep-engine database on PostgreSQL.

Two escalation sweeps are made to run at once: the test holds an EXCLUSIVE lock on ``issues``
(plain reads still pass, the sweep's ``FOR UPDATE SKIP LOCKED`` waits: SKIP LOCKED skips locked
rows, not a locked table) until both runs are Running and both of their database sessions wait
on that lock; a worker with ``--limit 1`` runs one flow run at a time, so each worker runs one.
Then the lock goes and the two race; each (issue, level) must be escalated exactly once.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from cep_engine.cli._prefect_env import QUIET, LocalServer
from cep_engine.escalation.policy import load_policy
from cep_engine.services.issues import policy_snapshot_id
from cep_engine.settings import REPO_CONFIG_DIR
from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade
from tests.conftest import OFFLINE_NOISE, PG_URL, staff_project

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

POOL = "cep-test"
WORKERS = ("worker-a", "worker-b")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _admin(sql: str) -> None:
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(sql))
    finally:
        admin.dispose()


def _create_database(name: str) -> str:
    try:
        _admin(f'CREATE DATABASE "{name}"')
    except Exception as exc:
        message = f"PostgreSQL at {PG_URL} is not reachable: {exc.__class__.__name__}"
        if os.environ.get("CEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(message + " (CEP_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _asyncpg(url: str) -> str:
    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(
        hide_password=False)


def _stop(procs: list[subprocess.Popen[bytes]], timeout: float = 20) -> None:
    """SIGTERM the process groups of ``procs`` (workers and their flow-run subprocesses),
    then SIGKILL what is left."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.1, deadline - time.monotonic()))
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@dataclass
class Cluster:
    """The Prefect API, the cep-engine database the workers' flow runs use, the workers."""

    api: str
    db_url: str
    db_name: str
    store: Store
    home: Path
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def worker_log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def server_log(self) -> str:
        return (self.home / "server" / "server.log").read_text(errors="replace")


def _env(api: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "CEP_"))}
    return {**env, **QUIET, "PREFECT_API_URL": api, "PREFECT_HOME": str(home / "client"),
            "PREFECT_WORKER_QUERY_SECONDS": "1", "COLUMNS": "200"}


def _cep(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cep_engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("scaleout")
    tag = uuid.uuid4().hex[:10]
    prefect_db, cep_db = f"cep_so_prefect_{tag}", f"cep_so_{tag}"
    server = LocalServer(home=home / "server", port=free_port())
    cluster: Cluster | None = None
    created: list[str] = []
    try:
        prefect_url = _create_database(prefect_db)
        created.append(prefect_db)
        db_url = _create_database(cep_db)
        created.append(cep_db)
        store = Store.from_url(db_url)
        upgrade(store)
        cluster = Cluster(api=server.api, db_url=db_url, db_name=cep_db, store=store, home=home)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", _asyncpg(prefect_url))
            mp.setenv("PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED", "false")
            server.start()
        server.wait_healthy(120)
        env = _env(server.api, home)
        deployed = _cep(env, "--database-url", db_url, "deploy", "--pool", POOL)
        assert deployed.returncode == 0, deployed.stderr[-3000:]
        assert f"created work pool {POOL!r} (process)" in deployed.stdout
        for name in WORKERS:
            with (home / f"{name}.log").open("wb") as log:
                cluster.workers[name] = subprocess.Popen(
                    [sys.executable, "-m", "cep_engine.cli", "worker", "--pool", POOL,
                     "--limit", "1", "--name", name],
                    env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    start_new_session=True)
        for name in WORKERS:
            _wait_started(cluster, name)
        yield cluster
    finally:
        if cluster is not None:
            _stop(list(cluster.workers.values()))
            cluster.store.dispose()
        server.stop()
        for name in created:
            _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_started(cluster: Cluster, name: str) -> None:
    _wait(lambda: f"Worker {name!r} started" in cluster.worker_log(name), 60,
          lambda: f"{name} did not start:\n{cluster.worker_log(name)[-3000:]}")


def _wait(done: Any, timeout: float, why: Any) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.25)
    pytest.fail(why())


def _call(url: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)


def _start_run(api: str, deployment: str, parameters: dict[str, Any]) -> dict[str, Any]:
    found = _call(f"{api}/deployments/name/{deployment}")
    run: dict[str, Any] = _call(f"{api}/deployments/{found['id']}/create_flow_run",
                                {"parameters": parameters})
    return run


def _run(api: str, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = _call(f"{api}/flow_runs/{run_id}")
    return run


def _waiting_on_locks(store: Store, db_name: str) -> int:
    """Sessions of ``db_name`` waiting on a lock (read afresh: the view is cached per
    transaction)."""
    with store.engine.connect() as conn:
        return int(conn.execute(text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
            "AND pid <> pg_backend_pid()"), {"db": db_name}).scalar_one())


def _sessions(store: Store, db_name: str) -> list[tuple[Any, ...]]:
    with store.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(
            "SELECT pid, state, wait_event_type, wait_event, left(query, 120) "
            "FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
            {"db": db_name})]


def _race(cluster: Cluster, table: str, deployment: str,
          parameters: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Start one run per ``parameters`` while ``table`` is locked; release the lock once every
    run is Running and waits on it; return the runs in their final states."""
    with cluster.store.engine.connect() as conn:
        conn.execute(text(f"LOCK TABLE {table} IN EXCLUSIVE MODE"))
        runs = [_start_run(cluster.api, deployment, p) for p in parameters]
        _wait(lambda: _waiting_on_locks(cluster.store, cluster.db_name) == len(runs), 60,
              lambda: f"the runs did not all wait on the lock at once: "
                      f"{[_run(cluster.api, r['id'])['state']['type'] for r in runs]}\n"
                      f"sessions: {_sessions(cluster.store, cluster.db_name)}\n"
                      + "\n".join(cluster.worker_log(n)[-1500:] for n in WORKERS))
        states = [_run(cluster.api, r["id"])["state"]["type"] for r in runs]
        assert states == ["RUNNING"] * len(runs)
        conn.rollback()
    finals = [_final(cluster.api, run["id"]) for run in runs]
    _each_worker_ran_one(cluster, runs)
    return finals


def _final(api: str, run_id: str) -> dict[str, Any]:
    _wait(lambda: _run(api, run_id)["state"]["type"] in FINAL, 60,
          lambda: f"run {run_id} did not finish: {_run(api, run_id)['state']}")
    return _run(api, run_id)


FINAL = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")


def _each_worker_ran_one(cluster: Cluster, runs: list[dict[str, Any]]) -> None:
    ran = {name: {r["name"] for r in runs
                  if f"Flow run {r['name']!r} submitted to infrastructure"
                  in cluster.worker_log(name)}
           for name in WORKERS}
    assert sorted(len(names) for names in ran.values()) == [1, 1], ran


def test_worker_and_deploy_refuse_without_a_server_or_pool(cluster: Cluster) -> None:
    env = _env(cluster.api, cluster.home)
    missing = _cep(env, "worker", "--pool", "no-such-pool")
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        f"error: no work pool 'no-such-pool' at {cluster.api}; create it and its deployments "
        "with `cep deploy --pool no-such-pool`"]
    for command in (["worker"], ["--database-url", cluster.db_url, "deploy"]):
        result = _cep({**env, "PREFECT_API_URL": ""}, *command)
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "error: PREFECT_API_URL is not set; point it at the Prefect server "
            "(http://HOST:4200/api)"]


def test_workers_run_flow_runs_of_the_deployments(cluster: Cluster) -> None:
    deployments = _call(f"{cluster.api}/deployments/filter", {})
    assert deployments and {d["work_pool_name"] for d in deployments} == {POOL}
    assert all(d["job_variables"]["env"]["CEP_DATABASE_URL"] == cluster.db_url
               for d in deployments)
    pool = _call(f"{cluster.api}/work_pools/{POOL}")
    assert pool["type"] == "process"


AS_OF = datetime(2026, 11, 4, 18, 0, tzinfo=UTC)  # Wednesday 10:00 Pacific
CLIMB = ("senior_pm", "project_sponsor", "executive_sponsor")


def _issues(store: Store, key: str, count: int) -> set[int]:
    """``count`` open critical issues of project ``key``; every other one idle for 10 days
    (due for every rung), the rest fresh. Returns the ids of the idle ones."""
    policy = load_policy(REPO_CONFIG_DIR / "escalation.yaml")
    stale, fresh = AS_OF - timedelta(days=10), AS_OF - timedelta(minutes=30)
    with store.transaction() as s:
        project_id = s.execute(text("SELECT id FROM projects WHERE key = :k"),
                               {"k": key}).scalar_one()
        policy_id = policy_snapshot_id(s, policy, stale)
        s.execute(text(
            "INSERT INTO issues (project_id, number, title, description, priority, status, "
            "level, policy_id, opened_at, last_activity_at, stale_since, cycle, version) "
            "SELECT :p, g, 'Issue ' || g, '', 'critical', 'open', 'team', :pid, :stale, "
            "CASE WHEN g % 2 = 0 THEN :stale ELSE :fresh END, "
            "CASE WHEN g % 2 = 0 THEN :stale ELSE :fresh END, 0, 1 "
            "FROM generate_series(1, :n) AS g"),
            {"p": project_id, "pid": policy_id, "stale": stale, "fresh": fresh, "n": count})
        ids = s.execute(text("SELECT id FROM issues WHERE project_id = :p AND number % 2 = 0"),
                        {"p": project_id}).scalars()
        return set(ids)


def _per_issue_level(store: Store, sql: str) -> list[tuple[int, str, int]]:
    with store.reading() as session:
        return [tuple(row) for row in session.execute(text(sql)).all()]  # type: ignore[misc]


def test_two_sweeps_at_once_escalate_each_issue_and_level_once(cluster: Cluster) -> None:
    key = staff_project(cluster.store, "SDC-302")
    idle = _issues(cluster.store, key, 1000)
    as_of = {"as_of": AS_OF.isoformat()}
    finals = _race(cluster, "issues", "escalation-sweep/cep", [as_of, as_of])
    assert [f["state"]["type"] for f in finals] == ["COMPLETED", "COMPLETED"], \
        [f["state"] for f in finals]
    logs = "".join(cluster.worker_log(name) for name in WORKERS) + cluster.server_log()
    assert "Traceback" not in logs, logs[-3000:]
    assert not [noise for noise in OFFLINE_NOISE if noise in logs], logs[-3000:]
    expected = {(issue, level) for issue in idle for level in CLIMB}
    escalations = _per_issue_level(cluster.store, "SELECT issue_id, level, count(*) "
                                   "FROM escalations GROUP BY issue_id, level")
    assert {(i, lv) for i, lv, _ in escalations} == expected
    assert {n for _, _, n in escalations} == {1}
    outbox = _per_issue_level(cluster.store, "SELECT CAST(context->>'issue_id' AS INTEGER), "
                              "context->>'level', count(*) FROM outbox WHERE kind = "
                              "'escalation' GROUP BY 1, 2")
    assert {(i, lv) for i, lv, _ in outbox} == expected and {n for _, _, n in outbox} == {1}
    audit = _per_issue_level(cluster.store, "SELECT CAST(split_part(entity, '#', 2) AS INTEGER), "
                             "to_state, count(*) FROM audit_log WHERE trigger = 'escalate' "
                             "GROUP BY 1, 2")
    numbers = {i for i, _, _ in audit}
    assert len(audit) == len(expected) and {n for _, _, n in audit} == {1}
    assert all(n % 2 == 0 for n in numbers) and len(numbers) == len(idle)
    reported = [_artifact_total(cluster.api, f["id"]) for f in finals]
    assert sum(reported) == len(expected), reported


def _artifact_total(api: str, run_id: str) -> int:
    """Escalations a sweep run reports in its table artifact."""
    found = _call(f"{api}/artifacts/filter",
                  {"artifacts": {"flow_run_id": {"any_": [run_id]}, "key": {"any_": [
                      "escalation-sweep"]}}})
    assert len(found) == 1, found
    data = found[0]["data"]
    table = json.loads(data) if isinstance(data, str) else data
    return sum(int(n) for n in table["issues"])
