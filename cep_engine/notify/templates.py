"""Email templates: Jinja2, one plain-text and one HTML template per notification kind.

Templates are ``{kind}.txt`` and ``{kind}.html`` in ``config/templates/``; a file of the same
name in the user's template folder (setting ``notify.templates_dir``) takes precedence. The
text template starts with ``Subject: {% block subject %}...{% endblock %}``; the body follows
a blank line. The subject block is rendered on its own, so a value carrying a line break
reaches the header check intact (and is refused there) instead of being cut at the break.
HTML templates are autoescaped; undefined variables are errors, never silently empty.

Every template gets the message's context plus ``project`` (key, name, agency), ``to`` and
``cc`` (lists of ``{name, email, role}``) and the ``when`` filter, which shows an ISO instant
in the configured time zone. ``digest`` is the template of a digest (``items``: rendered
messages).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    select_autoescape,
)

from cep_engine.errors import ConfigError
from cep_engine.notify.outbox import Kind
from cep_engine.settings import REPO_CONFIG_DIR

DEFAULT_DIR = REPO_CONFIG_DIR / "templates"
DIGEST = "digest"


@dataclass(frozen=True)
class Rendered:
    """A rendered email: subject, plain-text body and HTML body."""

    subject: str
    text: str
    html: str


class RenderError(ConfigError):
    """A template is missing, malformed, or needs a value the message does not carry."""


class Templates:
    """The template set in force: the user's folder first, then ``config/templates``."""

    def __init__(self, user_dir: Path | None = None, *, timezone: str = "UTC") -> None:
        self.search_path = [p for p in (user_dir, DEFAULT_DIR) if p is not None]
        self.tz = ZoneInfo(timezone)
        self.env = Environment(
            loader=FileSystemLoader(self.search_path),
            autoescape=select_autoescape(enabled_extensions=("html",), default=False),
            undefined=StrictUndefined,
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self.env.filters["when"] = functools.lru_cache(maxsize=4096)(self._when)

    def _when(self, value: str | datetime | None) -> str:
        if not value:
            return "-"
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        return instant.astimezone(self.tz).strftime("%a %d %b %Y %H:%M %Z")

    def render(self, kind: str, context: Mapping[str, Any]) -> Rendered:
        """Render ``kind`` with ``context``; raise :class:`RenderError` saying what is wrong."""
        try:
            text_template = self.env.get_template(f"{kind}.txt")
            text = text_template.render(context)
            html = self.env.get_template(f"{kind}.html").render(context)
            block = text_template.blocks.get("subject")
            if block is None:
                raise RenderError(f"template {kind}.txt has no {{% block subject %}}")
            subject = "".join(block(text_template.new_context(dict(context))))
        except TemplateNotFound as exc:
            raise RenderError(
                f"no template {exc.name} in {', '.join(map(str, self.search_path))}"
            ) from None
        except TemplateSyntaxError as exc:
            raise RenderError(f"{exc.filename}:{exc.lineno}: {exc.message}") from None
        except TemplateError as exc:
            raise RenderError(f"template {kind}: {exc.message}") from None
        prefix = f"Subject: {subject}"
        if not text.startswith(prefix):
            raise RenderError(
                f"template {kind}.txt must start with 'Subject: {{% block subject %}}'")
        return Rendered(subject=subject.strip(), text=text[len(prefix):].lstrip("\n"), html=html)


def kinds() -> list[str]:
    """Every template name: one per :class:`Kind`, plus the digest."""
    return [k.value for k in Kind] + [DIGEST]


def preview(kind: str, templates: Templates | None = None) -> Rendered:
    """Render ``kind`` with the sample data of :mod:`cep_engine.notify.samples`."""
    from cep_engine.notify.samples import sample_context

    if kind not in kinds():
        raise RenderError(f"unknown notification kind {kind!r}; kinds are: {', '.join(kinds())}")
    return (templates or Templates()).render(kind, sample_context(kind))
