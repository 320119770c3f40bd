"""Settings of notification delivery: table ``[notify]``, or ``CEP_NOTIFY__<FIELD>``.

The SMTP password is not a setting: it comes from the ``CEP_SMTP_PASSWORD`` environment
variable (or the system keyring), never from a config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PASSWORD_ENV = "CEP_SMTP_PASSWORD"


class NotifySettings(BaseModel):
    """SMTP connection, retry policy, digest threshold and template overrides."""

    model_config = ConfigDict(extra="forbid")

    smtp_host: str = "localhost"
    smtp_port: int = Field(default=25, ge=1, le=65_535)
    smtp_security: Literal["ssl", "starttls", "plain"] = "starttls"
    smtp_user: str = ""
    smtp_ca_file: Path | None = None
    smtp_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    sender: str = "cep-engine@localhost"
    max_attempts: int = Field(default=6, ge=1, le=100)
    backoff_seconds: int = Field(default=60, ge=1, le=86_400)
    backoff_max_seconds: int = Field(default=6 * 3600, ge=1, le=7 * 86_400)
    digest_threshold: int = Field(default=5, ge=1, le=10_000)
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    lease_seconds: int = Field(default=600, ge=10, le=86_400)
    commit_every: int = Field(default=200, ge=1, le=10_000)
    templates_dir: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_password_here(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in [k for k in data if "password" in str(k).lower()]:
                data.pop(name)
                raise ValueError(
                    f"the SMTP password is never read from settings; set {PASSWORD_ENV} "
                    "in the environment (or store it in the keyring) and remove this key"
                )
        return data

    @field_validator("sender", "smtp_host", "smtp_user")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if any(c in value for c in "\r\n\x00"):
            raise ValueError("must be one line")
        return value.strip()

    @field_validator("sender")
    @classmethod
    def _an_address(cls, value: str) -> str:
        local, _, domain = value.rpartition("@")
        if not local or not domain or " " in value or "<" in value:
            raise ValueError("not a bare address such as cep-engine@cts.wa.gov")
        return value

    @field_validator("templates_dir", "smtp_ca_file")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    def backoff(self, attempts: int) -> int:
        """Seconds to wait before the next try after ``attempts`` failed tries."""
        exponent = max(0, min(attempts - 1, 30))
        return int(min(self.backoff_seconds * 2**exponent, self.backoff_max_seconds))
