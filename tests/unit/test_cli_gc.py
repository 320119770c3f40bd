"""``cep`` pauses the cyclic garbage collector for its start-up only."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from cep_engine.cli import app as cli_app
from cep_engine.cli._runtime import Runtime


@pytest.fixture(autouse=True)
def _restore_gc() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.enable()


def test_loading_the_settings_turns_the_collector_back_on(tmp_path: Path) -> None:
    gc.disable()
    runtime = Runtime(data_dir=tmp_path)
    assert not gc.isenabled()
    assert runtime.settings.data_dir == tmp_path
    assert gc.isenabled()
    assert gc.get_freeze_count() > 0


def test_main_pauses_the_collector_and_leaves_it_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[bool] = []
    real = cli_app.app_for

    def spy(args: list[str]) -> object:
        seen.append(gc.isenabled())
        return real(args)

    monkeypatch.setattr(cli_app, "app_for", spy)
    monkeypatch.setattr("sys.argv", ["cep", "diagram", "phase"])
    with pytest.raises(SystemExit) as done:
        cli_app.main()
    assert done.value.code == 0
    assert "stateDiagram" in capsys.readouterr().out
    assert seen == [False]
    assert gc.isenabled()
