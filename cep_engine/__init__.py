"""cep-engine: the Customer Engagement Plan of State Data Center implementations, as software.

The public surface is small: the error hierarchy, the roles, the machine tables and the
settings loader. Use cases live in :mod:`cep_engine.services`; the CLI in
:mod:`cep_engine.cli`.
"""

from cep_engine.errors import (
    CepError,
    ConfigError,
    ConflictError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    TransitionRefused,
)
from cep_engine.roles import Role

__version__ = "0.1.0"

__all__ = [
    "CepError",
    "ConfigError",
    "ConflictError",
    "InvalidInput",
    "NotFound",
    "PermissionDenied",
    "Role",
    "TransitionRefused",
    "__version__",
]
