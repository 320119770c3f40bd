"""The ``cep`` command run as a user runs it: a real subprocess, its exit code, stdout, stderr.

Each command costs a Python start-up, so the scenarios are few and long, and commands that
only read run side by side.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cep_engine.store.db import Store
from tests.conftest import COORD, LIAISON, PM, SPONSOR, _truncate, audit_count, snapshot

KEY = "SDC-042"
TIMEOUT = 120


def cep_env(data_dir: Path, config_dir: Path | None = None) -> dict[str, str]:
    """The user's environment, without any CEP_* setting but the data dir (and guides)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CEP_") and k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    env["CEP_DATA_DIR"] = str(data_dir)
    if config_dir is not None:
        env["CEP_CONFIG_DIR"] = str(config_dir)
    return env


def cep(env: dict[str, str], *args: str, rc: int = 0) -> subprocess.CompletedProcess[str]:
    """Run ``cep ARGS`` and check its exit code; on success stderr must be empty."""
    proc = subprocess.run([sys.executable, "-m", "cep_engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert proc.returncode == rc, (args, proc.returncode, proc.stdout, proc.stderr)
    if rc == 0:
        assert proc.stderr == "", (args, proc.stderr)
    return proc


def cep_many(
    env: dict[str, str], *commands: Sequence[str]
) -> list[subprocess.CompletedProcess[str]]:
    """Run independent, successful commands side by side."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda args: cep(env, *args), commands))


def one_error_line(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """stderr is exactly one ``error: `` line naming the rule, and no traceback."""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def dump(db: Path) -> tuple[dict[str, list[tuple[Any, ...]]], int, int]:
    """Every row of every table but audit_log; then the audit rows, and the refused ones."""
    with closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'audit_log' ORDER BY name")]
        rows = {t: conn.execute(f'SELECT * FROM "{t}" ORDER BY rowid').fetchall() for t in tables}
        total, refused = conn.execute(
            "SELECT count(*), coalesce(sum(1 - accepted), 0) FROM audit_log").fetchone()
    return rows, total, refused


def refused(env: dict[str, str], db: Path, args: Sequence[str], rc: int, *fragments: str,
            audited: int = 1) -> str:
    """Run a command that must be refused: exit code ``rc``, one error line naming the rule,
    and the database unchanged but for ``audited`` refused audit rows."""
    rows, total, refused_rows = dump(db)
    proc = cep(env, *args, rc=rc)
    line = one_error_line(proc, *fragments)
    after_rows, after_total, after_refused = dump(db)
    assert after_rows == rows
    assert (after_total, after_refused) == (total + audited, refused_rows + audited)
    return line


@pytest.fixture
def small_guides(tmp_path: Path) -> Path:
    """A config dir whose guides hold one task each (fewer commands to walk a stage)."""
    folder = tmp_path / "config" / "readiness"
    folder.mkdir(parents=True)
    for stage in ("pre_cutover", "cutover", "post_cutover"):
        (folder / f"{stage}.yaml").write_text(
            f"title: {stage} readiness\ntasks:\n  - text: {stage} task one\n    party: joint\n")
    return folder.parent


def test_commands_before_init_tell_the_user_to_run_init(tmp_path: Path) -> None:
    env = cep_env(tmp_path / "data")
    commands = [("project", "list"), ("person", "add", PM, "--name", "Pat Morgan")]
    with ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda args: cep(env, *args, rc=1), commands))
    for proc in procs:
        one_error_line(proc, f"no database at {tmp_path / 'data' / 'cep.db'}", "run `cep init`")
    assert not (tmp_path / "data").exists()


def test_a_project_through_its_phases(tmp_path: Path, small_guides: Path) -> None:
    env, db = cep_env(tmp_path / "data", small_guides), tmp_path / "data" / "cep.db"
    assert "upgraded from empty" in cep(env, "init").stdout
    assert PM in cep(env, "person", "add", PM, "--name", "Pat Morgan").stdout
    cep(env, "project", "create", KEY, "--actor", PM, "--name", "Move agency servers",
        "--agency", "Department of Licensing")
    cep(env, "role", "assign", KEY, "assigned_pm", PM, "--actor", PM)
    for role, email, name in [("implementation_coordinator", COORD, "Casey Rivera"),
                              ("client_liaison", LIAISON, "Lee Chen"),
                              ("project_sponsor", SPONSOR, "Jordan Ellis")]:
        out = cep(env, "role", "assign", KEY, role, email, "--actor", PM, "--name", name).stdout
        assert f"{email} is {role}" in out

    refused(env, db, ["phase", "cancel", KEY, "--actor", PM], 4,
            "cancel needs executive_sponsor or project_sponsor")
    assert "initiation -> planning" in cep(env, "phase", "advance", KEY, "--actor", PM).stdout
    assert "planning -> on_hold" in cep(env, "phase", "hold", KEY, "--actor", PM,
                                        "--reason", "budget review").stdout
    assert "on_hold -> planning" in cep(env, "phase", "resume", KEY, "--actor", PM).stdout
    refused(env, db, ["phase", "advance", KEY, "--actor", PM], 5,
            "guard pre_cutover_checklist_validated", "`cep checklist`")

    stage = "pre_cutover"
    cep(env, "checklist", "done", KEY, stage, "1", "--actor", COORD)
    refused(env, db, ["checklist", "submit", KEY, stage, "--actor", COORD], 5,
            "guard checklist_signed", "--signer NAME")
    sign = ["--signer", "Casey Rivera", "--attest", "All tasks are complete."]
    assert "version 1 submitted" in cep(env, "checklist", "submit", KEY, stage, "--actor", COORD,
                                        *sign).stdout
    refused(env, db, ["checklist", "return", KEY, stage, "--actor", PM], 5,
            "guard return_comment_given", "--comment TEXT")
    cep(env, "checklist", "return", KEY, stage, "--actor", PM, "--comment", "Attach results")
    assert "added task #2" in cep(env, "checklist", "add-task", KEY, stage, "Results attached",
                                  "--actor", COORD, "--party", "customer").stdout
    cep(env, "checklist", "done", KEY, stage, "2", "--actor", COORD)
    assert "version 2 submitted" in cep(env, "checklist", "submit", KEY, stage, "--actor", COORD,
                                        *sign).stdout
    cep(env, "checklist", "validate", KEY, stage, "--actor", PM)
    assert "planning -> execution" in cep(env, "phase", "advance", KEY, "--actor", PM).stdout

    refused(env, db, ["signoff", KEY, "--actor", COORD, "--signer", "Casey Rivera"], 5,
            "sign-off is recorded in the closing phase")
    refused(env, db, ["phase", "advance", "SDC-999", "--actor", PM], 3, "no project SDC-999",
            audited=0)
    refused(env, db, ["checklist", "show", KEY, "bogus"], 2, "unknown readiness stage 'bogus'",
            audited=0)
    assert "execution -> cancelled" in cep(env, "phase", "cancel", KEY, "--actor", SPONSOR,
                                           "--reason", "agency withdrew").stdout

    hist, plist, pshow, roles, phase, checklist, table = cep_many(
        env, ("history", KEY, "--json"), ("project", "list", "--json"),
        ("project", "show", KEY, "--json"), ("role", "list", KEY, "--json"),
        ("phase", "show", KEY), ("checklist", "show", KEY, stage), ("project", "list"))
    trail = json.loads(hist.stdout)
    moves = [(a["from"], a["to"]) for a in trail if a["accepted"] and a["entity_type"] == "project"
             and a["trigger"] != "create"]
    assert moves == [("initiation", "planning"), ("planning", "on_hold"),
                     ("on_hold", "planning"), ("planning", "execution"),
                     ("execution", "cancelled")]
    assert sum(not a["accepted"] for a in trail) == 5
    assert [p["key"] for p in json.loads(plist.stdout)] == [KEY]
    shown = json.loads(pshow.stdout)
    assert (shown["phase"], shown["held_from"], shown["triggers"]) == ("cancelled", None, [])
    assert {g["stage"]: g["state"] for g in shown["guides"]} == {
        "pre_cutover": "validated", "cutover": "draft", "post_cutover": "draft"}
    assert {(r["role"], r["email"]) for r in json.loads(roles.stdout)} == {
        ("assigned_pm", PM), ("implementation_coordinator", COORD),
        ("client_liaison", LIAISON), ("project_sponsor", SPONSOR)}
    assert f"{KEY}: cancelled" in phase.stdout
    for value in ("validated", "Results attached", COORD, "Attach results", "version 2"):
        assert value in checklist.stdout
    for value in (KEY, "Move agency servers", "Department of Licensing", "cancelled"):
        assert value in table.stdout


def test_diagrams_come_from_the_machine_tables(tmp_path: Path) -> None:
    env = cep_env(tmp_path / "data")
    mermaid, markdown = cep_many(env, ("diagram", "phase"),
                                 ("diagram", "phase", "--format", "markdown"))
    assert mermaid.stdout.startswith("stateDiagram-v2")
    assert "planning --> execution: advance [pre_cutover_checklist_validated]" in mermaid.stdout
    assert markdown.stdout.startswith("| trigger | from | to | guards | who may fire it |")
    assert "assigned_pm, senior_pm" in markdown.stdout
    proc = cep(env, "diagram", "wizard", rc=2)
    one_error_line(proc, "unknown machine 'wizard'")


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], str]:
    """A data dir where ``cep demo`` walked SDC-900 through its whole life, and its output."""
    env = cep_env(tmp_path_factory.mktemp("demo") / "data")
    out = cep(env, "demo").stdout
    assert "done: see `cep project show SDC-900`" in out
    return env, out


@pytest.fixture(scope="module")
def demo_env(demo_run: tuple[dict[str, str], str]) -> dict[str, str]:
    return demo_run[0]


def test_demo_prints_each_step_of_the_escalation_and_the_risk(
    demo_run: tuple[dict[str, str], str],
) -> None:
    env, out = demo_run
    for line in ("refused advance execution -> closing while the critical issue is open",
                 "refused by guard no_critical_issue_open",
                 "escalated 3 rung(s)", "executive_sponsor: told deputy@cts.wa.gov",
                 "ok      PM triggers R-1", "(high): Risk R-1 triggered",
                 "ok      owner marks A-1 done", "ok      PM resolves issue #1",
                 "ok      advance closing -> closed", "outbox: "):
        assert line in out, line
    outbox, issues = cep_many(env, ("outbox", "list", "--project", "SDC-900", "--json"),
                              ("issue", "list", "SDC-900", "--json"))
    kinds = {m["kind"] for m in json.loads(outbox.stdout)}
    assert {"escalation", "risk_triggered", "phase_changed", "checklist_submitted"} <= kinds
    assert [(i["number"], i["status"]) for i in json.loads(issues.stdout)] == [
        (1, "resolved"), (2, "open")]
    again = cep(env, "demo", rc=1)
    one_error_line(again, "project SDC-900 already exists", "--data-dir DIR")


def test_demo_walks_a_project_to_closed(demo_env: dict[str, str]) -> None:
    shown, table = cep_many(demo_env, ("project", "show", "SDC-900", "--json"),
                            ("project", "show", "SDC-900"))
    data = json.loads(shown.stdout)
    assert data["phase"] == "closed"
    assert all(g["state"] == "validated" for g in data["guides"])
    for value in ("phase: closed", "pat.pm@cts.wa.gov", "casey.coord@dol.wa.gov",
                  "implementation_coordinator", "validated", "6/6", "none (final)"):
        assert value in table.stdout


def test_history_table_piped_keeps_every_value_whole(demo_env: dict[str, str]) -> None:
    out = cep(demo_env, "history", "SDC-900").stdout
    assert "…" not in out
    for email in ("pat.pm@cts.wa.gov", "casey.coord@dol.wa.gov", "lee.liaison@cts.wa.gov"):
        assert email in out


@pytest.mark.postgres
def test_a_project_on_postgresql(pg_database: str, tmp_path: Path) -> None:
    store = Store.from_url(pg_database)
    try:
        _truncate(store)
        env = cep_env(tmp_path / "data")
        url = ["--database-url", pg_database]
        assert "already at schema revision" in cep(env, *url, "init").stdout
        cep(env, *url, "person", "add", PM, "--name", "Pat Morgan")
        cep(env, *url, "project", "create", KEY, "--actor", PM, "--name", "Move servers",
            "--agency", "Department of Licensing")
        cep(env, *url, "role", "assign", KEY, "assigned_pm", PM, "--actor", PM)
        before, audit_before = snapshot(store), audit_count(store)
        proc = cep(env, *url, "phase", "advance", KEY, "--actor", PM, rc=5)
        one_error_line(proc, "guard core_roles_assigned", "cep role assign")
        assert snapshot(store) == before
        assert audit_count(store) == audit_before + 1
        assert audit_count(store, accepted=False) == 1
        shown = json.loads(cep(env, *url, "project", "show", KEY, "--json").stdout)
        assert shown["phase"] == "initiation"
        assert not (tmp_path / "data" / "cep.db").exists()
    finally:
        store.dispose()


def test_installed_entry_point_exit_codes(tmp_path: Path, small_guides: Path) -> None:
    """The ``cep`` script pip installed (not ``python -m``): one refusal of each kind gives its
    exit code, one ``error:`` line, and leaves the database as it was."""
    script = Path(sys.executable).parent / "cep"
    assert script.is_file(), f"{script}: run `pip install -e .` (scripts/setup.sh)"
    env, db = cep_env(tmp_path / "data", small_guides), tmp_path / "data" / "cep.db"

    def run(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(script), *args], env=env | (extra or {}), text=True,
                              capture_output=True, timeout=TIMEOUT, check=False)

    missing = run("history", KEY)
    assert missing.returncode == 1
    one_error_line(missing, f"no database at {db}", "run `cep init`")
    for args in (("init",), ("person", "add", PM, "--name", "Pat Morgan"),
                 ("project", "create", KEY, "--actor", PM, "--name", "Move servers",
                  "--agency", "Department of Licensing"),
                 ("role", "assign", KEY, "assigned_pm", PM, "--actor", PM)):
        assert run(*args).returncode == 0, args
    cases = [
        (("phase", "advance", KEY, "--actor", PM), {}, 5, 1, "guard core_roles_assigned"),
        (("phase", "cancel", KEY, "--actor", PM), {}, 4, 1,
         "cancel needs executive_sponsor or project_sponsor"),
        (("project", "show", "SDC-999"), {}, 3, 0, "no project SDC-999"),
        (("phase", "advance", KEY, "--actor", PM), {"CEP_TIMEZONE": "Mars/Olympus"}, 2, 0,
         "environment CEP_TIMEZONE: field 'timezone' has invalid value 'Mars/Olympus'"),
    ]
    for args, extra, code, audited, fragment in cases:
        rows, total, refused_rows = dump(db)
        proc = run(*args, extra=extra)
        assert proc.returncode == code, (args, proc.returncode, proc.stderr)
        one_error_line(proc, fragment)
        assert dump(db) == (rows, total + audited, refused_rows + audited)
