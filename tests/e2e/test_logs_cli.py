"""``cep issue``, ``cep risk``, ``cep action`` as a user runs them: exit codes, one-line
errors on stderr, and a database left unchanged by a refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cep_engine.store.db import Store
from cep_engine.store.migrate import upgrade
from tests.conftest import PM, TEAM, snapshot, staff_project


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A SQLite database in a data folder of its own, with the staffed project SDC-042."""
    folder = tmp_path / "cli-data"
    store = Store.from_url(f"sqlite:///{folder / 'cep.db'}")
    upgrade(store)
    staff_project(store)
    store.dispose()
    return folder


def cep(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CEP_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    env.pop("PREFECT_API_URL", None)
    return subprocess.run([sys.executable, "-m", "cep_engine.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _store(data_dir: Path) -> Store:
    return Store.from_url(f"sqlite:///{data_dir / 'cep.db'}")


def test_issue_commands_and_one_line_refusals(data_dir: Path) -> None:
    opened = cep(data_dir, "issue", "open", "SDC-042", "Storage late", "--priority", "high",
                 "--actor", TEAM)
    assert opened.returncode == 0, opened.stderr
    assert "opened issue #1" in opened.stdout
    store = _store(data_dir)
    before = snapshot(store)
    naive = cep(data_dir, "issue", "snooze", "SDC-042", "1", "--until", "2026-12-01T10:00",
                "--actor", PM)
    assert naive.returncode == 2
    assert naive.stderr.strip().splitlines() == [
        "error: --until '2026-12-01T10:00' has no time zone; add an offset such as -08:00 "
        "or Z"]
    denied = cep(data_dir, "issue", "assign", "SDC-042", "1", PM, "--actor", TEAM)
    assert denied.returncode == 4
    assert len(denied.stderr.strip().splitlines()) == 1
    assert denied.stderr.startswith("error: ") and "assign an issue needs" in denied.stderr
    assert snapshot(store) == before
    shown = cep(data_dir, "issue", "show", "SDC-042", "1", "--json")
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    assert data["ladder"]["next"]["level"] == "senior_pm" and data["ladder"]["next"]["due_at"]
    store.dispose()


def test_risk_trigger_once_and_sorted_list(data_dir: Path) -> None:
    for title, p, i in [("Low", "1", "2"), ("High", "4", "5")]:
        added = cep(data_dir, "risk", "add", "SDC-042", title, "--probability", p, "--impact",
                    i, "--owner", TEAM, "--actor", PM)
        assert added.returncode == 0, added.stderr
    listed = json.loads(cep(data_dir, "risk", "list", "SDC-042", "--json").stdout)
    assert [r["score"] for r in listed] == [20, 2]
    first = cep(data_dir, "risk", "trigger", "SDC-042", "2", "--actor", PM)
    assert first.returncode == 0 and "opened issue #1" in first.stdout
    again = cep(data_dir, "risk", "trigger", "SDC-042", "2", "--actor", PM)
    assert again.returncode == 5
    assert again.stderr.strip().splitlines() == [
        "error: SDC-042 R-2: 'trigger' is not possible from triggered; triggers allowed from "
        "triggered: update, close"]
    actions = json.loads(cep(data_dir, "action", "list", "SDC-042", "--json").stdout)
    assert [(a["source"], a["source_ref"], a["owner"]) for a in actions] == [
        ("risk", "R-2", TEAM)]


def test_bad_import_prints_a_row_report_and_imports_nothing(data_dir: Path,
                                                             tmp_path: Path) -> None:
    path = tmp_path / "issues.csv"
    path.write_text(
        "title,priority,owner,opened_at,last_activity_at\n"
        "Fine,high,pat.pm@cts.wa.gov,2026-10-01T09:00-07:00,2026-10-02T09:00-07:00\n"
        "No zone,high,pat.pm@cts.wa.gov,2026-10-01T09:00,2026-10-02T09:00-07:00\n"
        "Bad,urgent,pat.pm@cts.wa.gov,2026-10-01T09:00-07:00,2026-10-02T09:00-07:00\n",
        encoding="utf-8")
    store = _store(data_dir)
    before = snapshot(store)
    result = cep(data_dir, "issue", "import", "SDC-042", str(path), "--actor", PM)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == f"error: {path}: 2 bad rows; nothing imported"
    assert lines[1].startswith("  row 3, field 'opened_at'")
    assert lines[2].startswith("  row 4, field 'priority'")
    assert snapshot(store) == before
    good = tmp_path / "good.csv"
    good.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:2]) + "\n",
                    encoding="utf-8")
    ok = cep(data_dir, "issue", "import", "SDC-042", str(good), "--actor", PM)
    assert ok.returncode == 0 and "imported 1 issue(s)" in ok.stdout
    store.dispose()


def test_remind_json(data_dir: Path) -> None:
    added = cep(data_dir, "action", "add", "SDC-042", "Send diagram", "--owner", TEAM, "--due",
                "2026-11-06", "--actor", PM)
    assert added.returncode == 0, added.stderr
    runs = [json.loads(cep(data_dir, "remind", "--as-of", "2026-11-04T07:00-08:00",
                           "--json").stdout) for _ in range(2)]
    assert (runs[0]["due_soon"], runs[1]["due_soon"]) == (1, 0)
    naive = cep(data_dir, "remind", "--as-of", "2026-11-04T07:00")
    assert naive.returncode == 2 and "has no time zone" in naive.stderr
