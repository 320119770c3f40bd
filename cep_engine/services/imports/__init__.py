"""Import an Issues Log, Risk Log or Action Items Log from a spreadsheet's CSV export.

Every row is validated first (pydantic, then the owners against the people on record). One
bad row rejects the whole file: :class:`ImportRejected` reports each bad row and field, and
nothing is imported. Row numbers are the spreadsheet's: the header is row 1. Columns the
importer does not know are ignored; empty cells are blank optional fields.

Imported issues keep their ``opened_at`` and ``last_activity_at``, so the escalation clock
runs from where the spreadsheet left off (the next sweep may climb several rungs at once).

Modules: ``_rows`` (the row models and their columns), ``_read`` (CSV to validated rows),
``_apply`` (owners checked, entries written in one transaction).
"""

from cep_engine.services.imports._apply import (
    Imported,
    import_actions,
    import_issues,
    import_risks,
)
from cep_engine.services.imports._read import ImportRejected, read_rows
from cep_engine.services.imports._rows import COLUMNS, ActionRow, IssueRow, RiskRow

__all__ = [
    "COLUMNS",
    "ActionRow",
    "ImportRejected",
    "Imported",
    "IssueRow",
    "RiskRow",
    "import_actions",
    "import_issues",
    "import_risks",
    "read_rows",
]
