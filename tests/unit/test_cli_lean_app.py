"""``cep`` builds click commands only for the command a run names (``app.app_for``)."""

from __future__ import annotations

import typer.main
from typer.testing import CliRunner

from cep_engine.cli.app import app, app_for


def _top_level(a: typer.Typer) -> list[str]:
    return sorted(typer.main.get_command(a).commands)  # type: ignore[attr-defined]


def test_every_top_level_name_gets_an_app_of_that_name_alone() -> None:
    names = _top_level(app)
    assert {"project", "history", "init", "docs", "escalate"} <= set(names)
    for name in names:
        assert _top_level(app_for(["--database-url", "sqlite:///x.db", name, "--json"])) == [name]


def test_an_option_value_that_is_a_command_name_only_adds_that_command() -> None:
    lean = app_for(["--data-dir", "history", "project", "list"])
    assert _top_level(lean) == ["history", "project"]


def test_help_no_command_or_an_unknown_one_get_the_whole_app() -> None:
    for args in (["--help"], [], ["bogus"], ["project", "list", "--help"]):
        assert app_for(args) is app


def test_the_whole_app_is_left_as_it_was() -> None:
    before = _top_level(app)
    app_for(["project", "list"])
    assert _top_level(app) == before


def test_a_lean_run_answers_like_the_whole_app() -> None:
    args = ["project", "frobnicate"]
    lean, whole = CliRunner().invoke(app_for(args), args), CliRunner().invoke(app, args)
    assert lean.exit_code == whole.exit_code == 2
    assert lean.output == whole.output
