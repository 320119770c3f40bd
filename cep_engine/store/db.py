"""Engines, sessions and the one-transaction unit of work."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import OperationalError, ProgrammingError

from cep_engine.errors import CepError, ConfigError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "cep_read_only"
"""Execution option of the connections :meth:`Store.connect` and :meth:`Store.reading` hand
out: on SQLite their transactions begin deferred (see :func:`_sqlite_begin`)."""

SCHEMA_REVISION = "0003"
"""The Alembic head this version of cep-engine runs on (a test keeps it equal to the head)."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``. SQLite files get WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        _ensure_parent(url)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _ensure_parent(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:" and not path.startswith("file:"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    """A change takes the write lock at BEGIN (``IMMEDIATE``), so two writers queue instead
    of failing mid-way. A read begins deferred: in WAL mode it neither waits for a writer nor
    makes one wait."""
    if conn.get_execution_options().get(READ_ONLY):
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Store:
    """The database of one cep-engine installation: an engine and its sessions.

    The ORM is imported on the first session: read paths that run Core statements on a
    :meth:`connect` connection start without it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._reader = engine.execution_options(**{READ_ONLY: True})

    @cached_property
    def _sessions(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self.engine, expire_on_commit=False)

    @cached_property
    def _read_sessions(self) -> sessionmaker[Session]:
        from sqlalchemy.orm import sessionmaker

        return sessionmaker(self._reader, expire_on_commit=False)

    @classmethod
    def from_url(cls, url: str) -> Store:
        """A store on ``url`` (``sqlite:///…`` or ``postgresql+psycopg://…``)."""
        return cls(make_engine(url))

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def begin(self) -> AbstractContextManager[Connection]:
        """One transaction on a connection of its own: commit on success, roll back on any
        exception (``with store.begin() as conn``)."""
        return self.engine.begin()

    def session_on(self, conn: Connection) -> Session:
        """An ORM session inside ``conn``'s transaction: flushing writes into it, but
        committing, rolling back and closing are left to whoever began it."""
        return self._sessions(bind=conn, join_transaction_mode="rollback_only")

    def connect(self) -> AbstractContextManager[Connection]:
        """A connection for Core reads; whatever it began is rolled back when it closes
        (``with store.connect() as conn``). On SQLite it never holds the write lock."""
        return self._reader.connect()

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """A session for reads; nothing it does is committed. On SQLite it never holds the
        write lock."""
        with self._read_sessions() as session:
            yield session

    def require_schema(self) -> None:
        """Raise a clear error unless ``cep init`` brought this database to this version's
        schema revision (:data:`SCHEMA_REVISION`)."""
        where = self.engine.url.render_as_string(hide_password=True)
        try:
            with self._reader.connect() as conn:
                found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
        except OperationalError as exc:
            if "alembic_version" not in str(exc.orig):
                raise ConfigError(f"cannot open the database {where}: {exc.orig}") from None
            found = None
        except ProgrammingError:
            found = None
        if found is None:
            raise CepError(f"the database {where} has no cep-engine schema; run `cep init` first")
        if found != SCHEMA_REVISION:
            raise CepError(
                f"the database {where} is at schema revision {found}, this version needs "
                f"{SCHEMA_REVISION}; run `cep init` to upgrade it"
            )

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
