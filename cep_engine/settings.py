"""Settings, validated by pydantic.

Precedence, highest first: a command-line flag (passed as ``overrides``), a ``CEP_*``
environment variable, the config file (``--config FILE``, else ``CEP_CONFIG``, else
``config/cep.toml`` of this checkout), then the defaults below.
"""

from __future__ import annotations

import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cep_engine.errors import ConfigError
from cep_engine.notify.config import NotifySettings

REPO_CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
"""The ``config/`` folder shipped beside the package."""

_config_file: ContextVar[Path | None] = ContextVar("cep_config_file", default=None)


def default_data_dir() -> Path:
    """``$XDG_DATA_HOME/cep-engine``, else ``~/.local/share/cep-engine``."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "cep-engine"


class Schedules(BaseModel):
    """When the served deployments run (``cep serve``, ``cep up``).

    Table ``[schedules]`` in the config file, or ``CEP_SCHEDULES__<FIELD>`` in the environment.
    Daily crons are read in the ``timezone`` setting.
    """

    model_config = {"extra": "forbid"}

    sweep_every_minutes: int = Field(default=5, ge=1, le=1440)
    delivery_every_seconds: int = Field(default=60, ge=10, le=86_400)
    reminders_cron: str = "0 7 * * *"
    risk_check_every_minutes: int = Field(default=60, ge=1, le=10_080)

    @field_validator("reminders_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("not a cron expression of five fields such as '0 7 * * *'")
        return value


class Settings(BaseSettings):
    """Every setting of cep-engine; see the README's "Configuration" table."""

    model_config = SettingsConfigDict(env_prefix="CEP_", extra="forbid", env_nested_delimiter="__")

    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str = ""
    config_dir: Path = REPO_CONFIG_DIR
    timezone: str = "America/Los_Angeles"
    max_text_length: int = Field(default=4000, ge=100, le=100_000)
    schedules: Schedules = Field(default_factory=Schedules)
    notify: NotifySettings = Field(default_factory=NotifySettings)

    @field_validator("data_dir", "config_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("not an IANA time zone such as America/Los_Angeles") from exc
        return value

    @property
    def effective_database_url(self) -> str:
        """``database_url``, or a SQLite file in ``data_dir`` when it is empty."""
        return self.database_url or f"sqlite:///{self.data_dir / 'cep.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _config_file.get()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


def config_file_path(explicit: Path | None = None) -> Path | None:
    """The config file in force: ``explicit``, else ``CEP_CONFIG``, else the repo's file."""
    if explicit is not None:
        return explicit
    if env := os.environ.get("CEP_CONFIG"):
        return Path(env)
    default = REPO_CONFIG_DIR / "cep.toml"
    return default if default.exists() else None


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Build the settings; a bad value raises :class:`ConfigError` naming where it came from."""
    path = config_file_path(config_file)
    if path is not None:
        _check_toml(path)
    flags = {k: v for k, v in overrides.items() if v is not None}
    token = _config_file.set(path)
    try:
        return Settings(**flags)
    except ValidationError as exc:
        raise _config_error(exc, path, flags) from None
    finally:
        _config_file.reset(token)


def _check_toml(path: Path) -> None:
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found; pass an existing --config") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc}); fix the file") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read config file ({exc.strerror}); pass a readable --config"
        ) from None


def _config_error(exc: ValidationError, path: Path | None, flags: dict[str, Any]) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"]]
    field = ".".join(loc) or "?"
    value = err.get("input")
    env_name = "CEP_" + "__".join(loc).upper()
    if field in flags:
        origin = f"--{field.replace('_', '-')}"
    elif env_var := next((k for k in os.environ if k.upper() == env_name), None):
        origin = f"environment {env_var}"
    else:
        origin = str(path) if path else "defaults"
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting; see the README's Configuration table"
    return ConfigError(f"{origin}: field '{field}' has invalid value {value!r}: {msg}")
