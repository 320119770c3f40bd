"""The mail adapter: the only module that imports yagmail.

:class:`Mailer` is the seam delivery talks to: ``open`` one connection, ``send`` each
:class:`Mail` over it, ``close``. :class:`SmtpMailer` is the real one; :class:`FakeMailer`
records messages for unit tests and can play a server that is down or refuses. Messages and
the errors of sending live in :mod:`cep_engine.notify.message` (re-exported here).

yagmail opens the connection (SSL or STARTTLS with the server's certificate verified, or
plain; optional login); the composed bytes go over that one connection. The SMTP password
comes from ``CEP_SMTP_PASSWORD`` or the system keyring, never from settings.
"""

from __future__ import annotations

import contextlib
import os
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import message_from_bytes
from email import policy as email_policy
from email.message import Message
from typing import Any, Protocol

from cep_engine.errors import ConfigError
from cep_engine.notify.config import PASSWORD_ENV, NotifySettings
from cep_engine.notify.message import (
    HeaderInjection,
    Mail,
    MailerError,
    MessageRefused,
    ServerUnavailable,
    check_address,
    check_header,
    compose,
    message_id_for,
)

__all__ = [
    "FakeMailer",
    "HeaderInjection",
    "Mail",
    "Mailer",
    "MailerError",
    "MessageRefused",
    "ServerUnavailable",
    "SmtpMailer",
    "check_address",
    "check_header",
    "compose",
    "message_id_for",
    "smtp_password",
    "tls_context",
]


class Mailer(Protocol):
    """What delivery needs from a mail transport."""

    sender: str

    def open(self) -> None:
        """Connect (and log in); raise :class:`ServerUnavailable` when that fails."""

    def send(self, mail: Mail) -> list[str]:
        """Send ``mail``; return the recipients the server refused while accepting others."""

    def close(self) -> None:
        """Close the connection; never raises."""


KEYRING_SERVICE = "cep-engine"
"""The keyring service name the SMTP password is stored under (``keyring set cep-engine USER``)."""


def smtp_password(user: str) -> str:
    """The SMTP password of ``user``: ``CEP_SMTP_PASSWORD``, else the system keyring (when
    the optional ``keyring`` package is installed), else refuse with :class:`ConfigError`."""
    if secret := os.environ.get(PASSWORD_ENV):
        return secret
    found, trouble = _keyring_password(user)
    if found:
        return found
    raise ConfigError(
        f"SMTP login user {user} is set but no password: set {PASSWORD_ENV} in the environment "
        f"(or `keyring set {KEYRING_SERVICE} {user}`){trouble}"
    )


def _keyring_password(user: str) -> tuple[str | None, str]:
    """The keyring's password for ``user``, and why none could be read (for the error)."""
    try:
        import keyring
        from keyring.errors import NoKeyringError
    except ImportError:
        return None, ""
    try:
        found = keyring.get_password(KEYRING_SERVICE, user)
    except NoKeyringError:
        return None, ""
    except Exception as exc:
        return None, f"; the keyring could not be read ({type(exc).__name__})"
    return (found, "") if isinstance(found, str) and found else (None, "")


def tls_context(settings: NotifySettings) -> ssl.SSLContext | None:
    """The TLS context of ``ssl`` and ``starttls`` connections: the server's certificate and
    host name are verified, against ``smtp_ca_file`` when set (a private CA), else against the
    system's trust store. ``None`` for ``plain``."""
    if settings.smtp_security == "plain":
        return None
    try:
        return ssl.create_default_context(cafile=settings.smtp_ca_file)
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"notify.smtp_ca_file {settings.smtp_ca_file}: cannot load CA certificates "
            f"({reason}); name a readable PEM file"
        ) from None


class SmtpMailer:
    """Sends over one SMTP connection, opened by yagmail, per delivery run."""

    def __init__(self, settings: NotifySettings) -> None:
        self.settings = settings
        self.sender = settings.sender
        self._password = smtp_password(settings.smtp_user) if settings.smtp_user else None
        self._tls = tls_context(settings)
        self._client: Any = None

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def open(self) -> None:
        """Connect, STARTTLS or SSL (verifying the certificate) as configured, and log in
        when a user is set. A failed attempt leaves no socket open."""
        cfg = self.settings
        client = self._client_for(cfg)
        try:
            client.login()
        except smtplib.SMTPAuthenticationError as exc:
            _drop(client)
            raise ServerUnavailable(
                f"SMTP server {cfg.smtp_host}:{cfg.smtp_port} refused the login of "
                f"{cfg.smtp_user}: {exc.smtp_code} {self._scrub(_answer(exc))}; check "
                f"{PASSWORD_ENV} (or the keyring)"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            _drop(client)
            raise ServerUnavailable(
                f"cannot reach SMTP server {cfg.smtp_host}:{cfg.smtp_port}: "
                f"{type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        self._client = client

    def _client_for(self, cfg: NotifySettings) -> Any:
        """A yagmail client, not yet connected, with this mailer's TLS context."""
        import yagmail  # type: ignore[import-untyped]

        tls = cfg.smtp_security
        client = yagmail.SMTP(
            user=cfg.smtp_user or self.sender, password=self._password,
            host=cfg.smtp_host, port=cfg.smtp_port, smtp_ssl=tls == "ssl",
            smtp_starttls={"context": self._tls} if tls == "starttls" else False,
            smtp_skip_login=not cfg.smtp_user, soft_email_validation=False,
            timeout=cfg.smtp_timeout_seconds, **({"context": self._tls} if tls == "ssl" else {}),
        )
        client.set_logging(None)
        return client

    def send(self, mail: Mail) -> list[str]:
        """Send ``mail`` over the open connection; classify what the server says."""
        data = compose(mail, self.sender)
        if self._client is None:
            raise ServerUnavailable("no open SMTP connection")
        try:
            refused = self._client.smtp.sendmail(self.sender, list(mail.recipients), data)
        except smtplib.SMTPServerDisconnected as exc:
            self._client = None
            raise ServerUnavailable(f"SMTP server disconnected: {self._scrub(str(exc))}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise MessageRefused(
                f"every recipient refused: {_answers(exc.recipients)}",
                permanent=all(c >= 500 for c in codes),
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise MessageRefused(
                f"server answered {exc.smtp_code} {self._scrub(_answer(exc))}",
                permanent=exc.smtp_code >= 500,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            self._client = None
            raise ServerUnavailable(f"{type(exc).__name__}: {self._scrub(str(exc))}") from None
        return sorted(refused)

    def close(self) -> None:
        """Say QUIT; ignore a connection that is already gone."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()


def _answer(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    return error.decode(errors="replace") if isinstance(error, bytes) else str(error)


def _drop(client: Any) -> None:
    """Close the socket of a client whose connection or login failed (no QUIT)."""
    client.is_closed = True
    if client.smtp is not None:
        with contextlib.suppress(Exception):
            client.smtp.close()


def _answers(refused: Mapping[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{addr}: {code} {msg.decode(errors='replace')}" for addr, (code, msg) in refused.items()
    )


@dataclass
class FakeMailer:
    """An in-memory mailer for unit tests, composing exactly as :class:`SmtpMailer` does."""

    sender: str = "cep-engine@cts.wa.gov"
    down: bool = False
    refuse: set[str] = field(default_factory=set)
    reject_subject: str | None = None
    sent: list[Message] = field(default_factory=list)
    connections: int = 0
    is_open: bool = False

    def open(self) -> None:
        """Connect, unless the fake server is ``down``."""
        if self.down:
            raise ServerUnavailable("cannot reach SMTP server (fake server is down)")
        self.connections += 1
        self.is_open = True

    def send(self, mail: Mail) -> list[str]:
        """Record ``mail``; refuse addresses in ``refuse`` and subjects containing
        ``reject_subject``."""
        msg = message_from_bytes(compose(mail, self.sender), policy=email_policy.default)
        if not self.is_open:
            raise ServerUnavailable("no open connection")
        if self.reject_subject and self.reject_subject in mail.subject:
            raise MessageRefused("server answered 554 message refused", permanent=True)
        accepted = [a for a in mail.recipients if a not in self.refuse]
        if not accepted:
            raise MessageRefused("every recipient refused: 550 no such user", permanent=True)
        self.sent.append(msg)
        return sorted(set(mail.recipients) - set(accepted))

    def close(self) -> None:
        """Close the fake connection."""
        self.is_open = False
