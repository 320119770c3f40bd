"""Use cases: each state-changing function runs in one transaction and takes ``now``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cep_engine.settings import Settings


def configure(settings: Settings) -> None:
    """Apply the settings the use cases read (the free-text limit); entry points call this."""
    from cep_engine.services import _validate

    _validate.set_max_text_length(settings.max_text_length)
