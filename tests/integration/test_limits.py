"""Refusals at the edges: the ``max_text_length`` setting, and checklists of a project in a
final phase. Each refusal leaves the database as it was (but for the refusal's audit row)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from cep_engine.errors import InvalidInput, TransitionRefused
from cep_engine.services import _validate, configure, projects, readiness
from cep_engine.settings import load_settings
from cep_engine.store.db import Store
from tests.conftest import COORD, NOW, PM, SPONSOR, audit_count, snapshot

LATER = NOW + timedelta(hours=1)


def refused(store: Store, call: Callable[[], object], exc: type[Exception],
            audited: int) -> Exception:
    before, audit_before = snapshot(store), audit_count(store)
    with pytest.raises(exc) as info:
        call()
    assert snapshot(store) == before
    assert audit_count(store) == audit_before + audited
    return info.value


def test_text_limit_follows_the_setting(store: Store, project: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_MAX_TEXT_LENGTH", "120")
    configure(load_settings())
    assert _validate.max_text_length() == 120
    err = refused(store, lambda: readiness.add_task(store, project, "cutover", "x" * 121,
                                                    actor=COORD, now=LATER), InvalidInput, 0)
    assert str(err) == ("task text is 121 characters; the limit is 120 "
                        "(setting max_text_length); shorten it")
    refused(store, lambda: projects.fire_phase(store, project, "hold", actor=PM, now=LATER,
                                               reason="r" * 200), InvalidInput, 0)
    assert readiness.add_task(store, project, "cutover", "y" * 120, actor=COORD,
                              now=LATER).number == 5


def test_a_raised_limit_accepts_longer_text(store: Store, project: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_MAX_TEXT_LENGTH", "6000")
    configure(load_settings())
    task = readiness.add_task(store, project, "cutover", "z" * 5000, actor=COORD, now=LATER)
    assert len(task.text) == 5000


def test_names_keep_their_own_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_MAX_TEXT_LENGTH", "50000")
    configure(load_settings())
    with pytest.raises(InvalidInput, match="limit is 200"):
        _validate.name("n" * 201)


@pytest.mark.parametrize("end", ["cancel", "close"])
def test_checklists_of_a_final_project_cannot_change(store: Store, project: str,
                                                     end: str) -> None:
    readiness.set_task_done(store, project, "post_cutover", 1, actor=COORD, now=LATER)
    if end == "cancel":
        projects.fire_phase(store, project, "cancel", actor=SPONSOR, now=LATER, reason="stop")
        final = "cancelled"
    else:
        _close(store, project)
        final = "closed"
    attempts: list[Callable[[], object]] = [
        lambda: readiness.add_task(store, project, "cutover", "Late task", actor=COORD,
                                   now=LATER),
        lambda: readiness.set_task_done(store, project, "post_cutover", 1, actor=COORD,
                                        now=LATER, done=False),
    ]
    for call in attempts:
        err = refused(store, call, TransitionRefused, 1)
        assert isinstance(err, TransitionRefused) and err.guard == "project_open"
        assert f"project {project} is {final}, so its checklists can no longer change" in str(err)


def test_a_cancelled_project_takes_no_submission_or_review(store: Store, project: str) -> None:
    for n in (1, 2, 3, 4):
        readiness.set_task_done(store, project, "cutover", n, actor=COORD, now=LATER)
    readiness.submit(store, project, "cutover", signer="Casey Rivera", attestation="Done",
                     actor=COORD, now=LATER)
    projects.fire_phase(store, project, "cancel", actor=SPONSOR, now=LATER, reason="stop")
    err = refused(store, lambda: readiness.review(store, project, "cutover", "validate",
                                                  actor=PM, now=LATER), TransitionRefused, 1)
    assert "is cancelled" in str(err)


def _close(store: Store, key: str) -> None:
    from tests.integration.test_lifecycle import complete_stage

    projects.fire_phase(store, key, "advance", actor=PM, now=LATER)
    for stage in ("pre_cutover", "cutover", "post_cutover"):
        complete_stage(store, key, stage)
        if stage == "post_cutover":
            projects.record_signoff(store, key, "Casey Rivera", "Accepted", actor=COORD,
                                    now=LATER)
        projects.fire_phase(store, key, "advance", actor=PM, now=LATER)


def test_cli_refuses_oversized_text_in_one_line(tmp_path: Path, sqlite_template: Path) -> None:
    import shutil

    from typer.testing import CliRunner

    from cep_engine.cli.app import app
    from tests.conftest import staff_project

    db = tmp_path / "cli.db"
    shutil.copy(sqlite_template, db)
    store = Store.from_url(f"sqlite:///{db}")
    key = staff_project(store)
    before, audit_before = snapshot(store), audit_count(store)
    out = CliRunner().invoke(app, ["--database-url", f"sqlite:///{db}", "checklist", "add-task",
                                   key, "cutover", "t" * 101, "--actor", COORD],
                             env={"CEP_MAX_TEXT_LENGTH": "100"})
    assert isinstance(out.exception, InvalidInput) and out.exception.exit_code == 2
    assert "task text is 101 characters; the limit is 100" in str(out.exception)
    assert (snapshot(store), audit_count(store)) == (before, audit_before)
    store.dispose()


def test_imported_free_text_follows_the_setting(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cep_engine.services import imports

    monkeypatch.setenv("CEP_MAX_TEXT_LENGTH", "120")
    configure(load_settings())
    path = tmp_path / "risks.csv"
    path.write_text("title,probability,impact,mitigation\n"
                    f"Rack late,3,4,{'m' * 130}\nPower,2,2,{'p' * 120}\n", encoding="utf-8")
    with pytest.raises(imports.ImportRejected) as err:
        imports.read_rows(path, imports.RiskRow)
    [problem] = err.value.problems
    assert problem.startswith("row 2, field 'mitigation': is 130 characters; the limit is 120")
    assert problem.endswith("(got '" + "m" * 60 + "...')")
