"""Reading a CSV export: every row parsed and validated before anything is written."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from cep_engine.errors import InvalidInput
from cep_engine.services.imports._rows import COLUMNS, Row

MAX_SHOWN = 50
SHOWN_CHARS = 60
R = TypeVar("R", bound=Row)


class ImportRejected(InvalidInput):
    """A file with bad rows: ``message`` is one line, ``problems`` one line per bad field."""

    def __init__(self, path: Path, problems: Sequence[str], bad_rows: int) -> None:
        super().__init__(f"{path}: {bad_rows} bad row{'s' if bad_rows != 1 else ''}; "
                         "nothing imported")
        self.problems = tuple(problems)

    @property
    def report(self) -> str:
        """The one-line message followed by the per-row lines (at most 50 shown)."""
        shown = list(self.problems[:MAX_SHOWN])
        if len(self.problems) > MAX_SHOWN:
            shown.append(f"... and {len(self.problems) - MAX_SHOWN} more")
        return "\n".join([self.message, *(f"  {p}" for p in shown)])


def read_rows(path: Path, model: type[R]) -> list[tuple[int, R]]:
    """Parse and validate every row; raise :class:`ImportRejected` listing every bad one."""
    raw = _read_csv(path, model)
    good: list[tuple[int, R]] = []
    problems: list[str] = []
    bad: set[int] = set()
    for line, data in raw:
        try:
            good.append((line, model.model_validate(data)))
        except ValidationError as exc:
            bad.add(line)
            problems.extend(_describe(line, err) for err in exc.errors())
    if problems:
        raise ImportRejected(path, problems, len(bad))
    return good


def _read_csv(path: Path, model: type[Row]) -> list[tuple[int, dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [(h or "").strip().lower() for h in reader.fieldnames or []]
            reader.fieldnames = header
            rows = [(reader.line_num, {k: v for k, v in r.items() if k}) for r in reader]
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInput(f"{path}: not a UTF-8 CSV file ({exc})") from None
    required, optional = COLUMNS[model]
    missing = [c for c in required if c not in header]
    if missing:
        raise InvalidInput(f"{path}: missing column(s) {', '.join(missing)}; required: "
                           f"{', '.join(required)}; optional: {', '.join(optional)}")
    if not rows:
        raise InvalidInput(f"{path}: no rows under the header; nothing imported")
    return _spreadsheet_rows(rows)


def _spreadsheet_rows(rows: list[tuple[int, dict[str, str]]]) -> list[tuple[int, dict[str, str]]]:
    """Number rows as a spreadsheet does (header = 1), one per record."""
    return [(i + 2, data) for i, (_, data) in enumerate(rows)]


def _describe(line: int, err: Any) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "(row)"
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str) and len(value) > SHOWN_CHARS:
        value = value[:SHOWN_CHARS] + "..."
    shown = f" (got {value!r})" if value is not None and not isinstance(value, dict) else ""
    return f"row {line}, field '{field}': {msg}{shown}"
