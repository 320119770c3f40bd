"""Input checks shared by the use cases: each raises :class:`InvalidInput` saying what to fix."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import TypeVar

from cep_engine.errors import InvalidInput
from cep_engine.roles import Role
from cep_engine.states import Stage

E = TypeVar("E", bound=StrEnum)

PROJECT_KEY = re.compile(r"^[A-Z][A-Z0-9]{1,9}-\d{1,6}$")
MAX_NAME = 200
DEFAULT_MAX_TEXT = 4000
"""The ``max_text_length`` setting's default."""

_max_text = DEFAULT_MAX_TEXT


def set_max_text_length(limit: int) -> None:
    """Accept free text up to ``limit`` characters (the ``max_text_length`` setting).

    Entry points call this, through :func:`cep_engine.services.configure`, once they have
    loaded the settings; until then the default applies.
    """
    global _max_text
    _max_text = limit


def max_text_length() -> int:
    """The longest free text accepted now."""
    return _max_text


def project_key(key: str) -> str:
    """An upper-cased key such as ``SDC-042``."""
    norm = key.strip().upper()
    if not PROJECT_KEY.match(norm):
        raise InvalidInput(
            f"project key {key!r} is malformed; use letters, a dash and a number, e.g. SDC-042"
        )
    return norm


def email(address: str) -> str:
    """A syntactically valid email address, normalised to lower case."""
    from email_validator import EmailNotValidError, validate_email

    try:
        info = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"email address {address!r} is malformed: {exc}") from None
    return info.normalized.lower()


def text(value: str, what: str, *, limit: int | None = None, required: bool = True) -> str:
    """Stripped text, refused when empty (if ``required``) or longer than ``limit`` (by
    default the ``max_text_length`` setting)."""
    limit = _max_text if limit is None else limit
    stripped = value.strip()
    if required and not stripped:
        raise InvalidInput(f"{what} is empty; give some text")
    if len(stripped) > limit:
        raise InvalidInput(f"{what} is {len(stripped)} characters; the limit is {limit} "
                           "(setting max_text_length); shorten it")
    if "\x00" in stripped:
        raise InvalidInput(f"{what} contains a NUL character; remove it")
    return stripped


def name(value: str, what: str = "name") -> str:
    """A person's, project's or agency's name: one line, at most 200 characters."""
    cleaned = text(value, what, limit=MAX_NAME)
    if "\n" in cleaned or "\r" in cleaned:
        raise InvalidInput(f"{what} must be one line")
    return cleaned


def choice(kind: type[E], value: str, what: str, *, plural: str | None = None) -> E:
    """``value`` as a member of the string enum ``kind``, case-insensitive, dashes read as
    underscores; else :class:`InvalidInput` listing the accepted names."""
    try:
        return kind(value.strip().lower().replace("-", "_"))
    except ValueError:
        names = ", ".join(member.value for member in kind)
        raise InvalidInput(
            f"unknown {what} {value!r}; {plural or what + 's'} are: {names}"
        ) from None


def role(value: str) -> Role:
    """A role name as the plan spells it (dashes or underscores)."""
    return choice(Role, value, "role")


def aware(now: datetime) -> datetime:
    """Refuse naive datetimes: every instant cep-engine handles is timezone-aware."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidInput(f"time {now.isoformat()} has no time zone; give an offset or Z")
    return now


def stage(value: str) -> Stage:
    """A readiness stage name: pre_cutover, cutover or post_cutover (dashes accepted)."""
    return choice(Stage, value, "readiness stage", plural="stages")
