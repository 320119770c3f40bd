"""What CLI commands share: settings, the store, the clock and output helpers.

Imported lazily by the commands, so that ``cep --help`` and ``cep diagram`` stay fast.
"""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from cep_engine.errors import CepError
from cep_engine.settings import Settings, load_settings
from cep_engine.store.db import Store

if TYPE_CHECKING:
    from rich.console import Console


class _LazyConsole:
    """Stands for the rich ``Console``, built (and rich imported, ~0.1-0.2 s) on first use:
    ``--json`` output never needs it."""

    _real: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            from rich.console import Console

            real = Console(highlight=False)
            if not real.is_terminal:
                real.width = 100_000
            type(self)._real = real
        return getattr(self._real, name)


console = cast("Console", _LazyConsole())


@dataclass
class Runtime:
    """Settings and store of one CLI invocation, built on first use."""

    config: Path | None = None
    database_url: str | None = None
    data_dir: Path | None = None

    @cached_property
    def settings(self) -> Settings:
        """Settings with this invocation's flags on top, applied to the use cases."""
        from cep_engine.services import configure

        resume_gc()
        settings = load_settings(self.config, database_url=self.database_url,
                                 data_dir=self.data_dir)
        configure(settings)
        return settings

    def store(self, *, require_schema: bool = True) -> Store:
        """The store; by default refuse to run on a database ``cep init`` has not prepared
        (and never create a SQLite file for it)."""
        url = self.settings.effective_database_url
        if require_schema:
            _refuse_missing_sqlite_file(url)
        store = Store.from_url(url)
        if require_schema:
            store.require_schema()
        return store


def resume_gc() -> None:
    """Turn the garbage collector back on if the entry point paused it for the start-up,
    freezing what the start-up imported (modules live as long as the process) so that later
    passes skip it."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _refuse_missing_sqlite_file(url: str) -> None:
    """A read or change on a SQLite file that does not exist would create an empty one."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path == ":memory:":
        return
    if path.startswith("file:") or parsed.query.get("uri"):
        return
    if not Path(path).exists():
        raise CepError(f"no database at {path}; run `cep init` to create it")


def now() -> datetime:
    """The wall clock, read only here at the entry point."""
    return datetime.now(UTC)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    print(json.dumps(data, indent=2, default=str))


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a rich table."""
    from rich.table import Table

    out = Table(title=title, title_justify="left", show_lines=False)
    for col in columns:
        out.add_column(col)
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    console.print(out)


def show(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """``--json`` prints JSON, otherwise ``render`` prints tables."""
    if as_json:
        emit_json(data)
    else:
        render(data)


def done(message: str) -> None:
    """One line saying what a state-changing command did."""
    console.print(message)


def short_time(value: str | None) -> str:
    """An ISO instant shortened to minutes, in UTC, for tables."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")
