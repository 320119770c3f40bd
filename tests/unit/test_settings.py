"""Settings: flag > CEP_* environment variable > config file > defaults, and errors that say
where a bad value came from."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from cep_engine.errors import ConfigError
from cep_engine.settings import Settings, load_settings

# field: (value in the file, in the environment, as a flag), as each source spells it
LAYERS: dict[str, tuple[Any, str, Any]] = {
    "timezone": ("Europe/Paris", "Asia/Tokyo", "UTC"),
    "database_url": ("sqlite:///file.db", "sqlite:///env.db", "postgresql+psycopg://u@h/flag"),
    "max_text_length": (5000, "6000", 7000),
}
DEFAULTS = {"timezone": "America/Los_Angeles", "database_url": "", "max_text_length": 4000}


def toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value)


def write_config(path: Path, **values: Any) -> Path:
    path.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in values.items()))
    return path


def field_of(settings: Settings, name: str) -> Any:
    return getattr(settings, name)


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "empty.toml")


@pytest.fixture
def file_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "cep.toml", **{k: v[0] for k, v in LAYERS.items()})


def test_defaults(empty_config: Path) -> None:
    settings = load_settings(empty_config)
    assert {k: field_of(settings, k) for k in DEFAULTS} == DEFAULTS
    assert settings.effective_database_url.endswith("cep.db")


@pytest.mark.parametrize("name", list(LAYERS))
def test_each_layer_overrides_the_one_below(
    name: str, file_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    in_file, in_env, as_flag = LAYERS[name]
    expected_env = int(in_env) if name == "max_text_length" else in_env
    assert field_of(load_settings(file_config), name) == in_file
    monkeypatch.setenv(f"CEP_{name.upper()}", in_env)
    assert field_of(load_settings(file_config), name) == expected_env
    assert field_of(load_settings(file_config, **{name: as_flag}), name) == as_flag
    assert field_of(load_settings(file_config, **{name: None}), name) == expected_env


def test_config_flag_beats_cep_config_which_beats_the_repo_file(
    tmp_path: Path, file_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write_config(tmp_path / "other.toml", timezone="Africa/Nairobi")
    monkeypatch.setenv("CEP_CONFIG", str(other))
    assert load_settings().timezone == "Africa/Nairobi"
    assert load_settings(file_config).timezone == "Europe/Paris"
    monkeypatch.delenv("CEP_CONFIG")
    assert load_settings().timezone == DEFAULTS["timezone"]  # config/cep.toml of the checkout


BAD = {"timezone": "Mars/Olympus", "database_url": "mysql://db", "max_text_length": 50}


@pytest.mark.parametrize("name", list(BAD))
@pytest.mark.parametrize("origin", ["file", "env", "flag"])
def test_a_bad_value_names_its_origin_field_and_value(
    name: str, origin: str, tmp_path: Path, file_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value: Any = BAD[name]
    config, flags = file_config, {}
    if origin == "file":
        config = write_config(tmp_path / "bad.toml", **{name: value})
        where = str(config)
    elif origin == "env":
        value = str(value)
        monkeypatch.setenv(f"CEP_{name.upper()}", value)
        where = f"CEP_{name.upper()}"
    else:
        flags = {name: value}
        where = f"--{name.replace('_', '-')}"
    with pytest.raises(ConfigError) as info:
        load_settings(config, **flags)
    message = str(info.value)
    assert message.startswith(where) or message.startswith(f"environment {where}"), message
    assert f"field '{name}'" in message
    assert repr(value) in message
    assert "\n" not in message


def test_unknown_key_in_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path / "cep.toml", colour="red")
    with pytest.raises(ConfigError, match="field 'colour' has invalid value 'red'") as info:
        load_settings(path)
    assert str(info.value).startswith(str(path))
    assert "unknown setting" in str(info.value)


def test_malformed_toml(tmp_path: Path) -> None:
    path = tmp_path / "cep.toml"
    path.write_text("timezone = \n")
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_settings(path)
    assert str(info.value).startswith(str(path))
    assert "line 1" in str(info.value)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_cep_environment_variables_are_ignored(
    empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CEP_ACTOR", "pat.pm@cts.wa.gov")
    assert load_settings(empty_config).timezone == DEFAULTS["timezone"]


def test_config_file_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "cep.toml"
    path.write_bytes(b"timezone = \"\xff\"\n")
    with pytest.raises(ConfigError, match=re.escape(str(path))):
        load_settings(path)


def test_config_path_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape(str(tmp_path))):
        load_settings(tmp_path)


def test_lower_case_environment_variable_is_named_as_origin(
    empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("cep_timezone", "Mars/Olympus")
    with pytest.raises(ConfigError) as info:
        load_settings(empty_config)
    assert str(info.value).startswith("environment"), str(info.value)


def test_the_cli_reports_a_bad_setting_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    bad = write_config(tmp_path / "bad.toml", timezone="Mars/Olympus")
    broken = tmp_path / "broken.toml"
    broken.write_text("[unclosed\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CEP_")}
    env["CEP_DATA_DIR"] = str(tmp_path / "data")
    runs: list[tuple[list[str], dict[str, str], list[str]]] = [
        (["--config", str(bad), "project", "list"], env,
         [str(bad), "field 'timezone'", "'Mars/Olympus'"]),
        (["project", "list"], {**env, "CEP_CONFIG": str(broken)},
         [str(broken), "not valid TOML"]),
        (["--database-url", "mysql://db", "project", "list"], env,
         ["--database-url", "field 'database_url'", "'mysql://db'"]),
        (["project", "list"], {**env, "CEP_MAX_TEXT_LENGTH": "50"},
         ["environment CEP_MAX_TEXT_LENGTH", "field 'max_text_length'", "'50'"]),
    ]

    def run(args: list[str], run_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cep_engine.cli", *args], env=run_env,
                              capture_output=True, text=True, timeout=120, check=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        procs = list(pool.map(lambda r: run(r[0], r[1]), runs))
    for (args, _, fragments), proc in zip(runs, procs, strict=True):
        assert proc.returncode == 2, (args, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines[0])
    assert not (tmp_path / "data").exists()
