"""Errors cep-engine raises.

Every error carries a one-line message that says what failed and what would fix it,
and an exit code the CLI returns::

    CepError                      base class                                  exit 1
    ├── ConfigError               a setting or config file is invalid         exit 2
    ├── InvalidInput              malformed input: email, text, date, CSV     exit 2
    ├── NotFound                  unknown project, person, role, guide, task  exit 3
    ├── PermissionDenied          the actor holds no role allowed to do this  exit 4
    ├── TransitionRefused         trigger invalid in this state; guard failed exit 5
    └── ConflictError             someone else changed the record first       exit 6
"""

from __future__ import annotations

from collections.abc import Sequence


class CepError(Exception):
    """Base of every error cep-engine raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(CepError):
    """A setting, environment variable or config file holds an invalid value."""

    exit_code = 2


class InvalidInput(CepError):
    """Input that is malformed: an email address, an empty or oversized text, a bad date."""

    exit_code = 2


class NotFound(CepError):
    """The named project, person, role, guide or task does not exist."""

    exit_code = 3


class PermissionDenied(CepError):
    """The actor holds none of the roles allowed to fire a trigger on this project."""

    exit_code = 4

    def __init__(
        self, message: str, *, entity: str, trigger: str, allowed: Sequence[str]
    ) -> None:
        super().__init__(message)
        self.entity = entity
        self.trigger = trigger
        self.allowed = tuple(allowed)


class TransitionRefused(CepError):
    """A trigger is not valid in the current state, or one of its guards failed."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        entity: str,
        state: str,
        trigger: str,
        guard: str | None = None,
        guards: Sequence[dict[str, object]] = (),
    ) -> None:
        super().__init__(message)
        self.entity = entity
        self.state = state
        self.trigger = trigger
        self.guard = guard
        self.guards = tuple(guards)


class ConflictError(CepError):
    """Another actor changed the same record between our read and our write."""

    exit_code = 6
