"""The mail adapter: the only module that imports yagmail.

:class:`Mailer` is the seam delivery talks to: ``open`` one connection, ``send`` each
:class:`Mail` over it, ``close``. :class:`SmtpMailer` is the real one; :class:`FakeMailer`
records messages for unit tests and can play a server that is down or refuses.

yagmail opens the connection (SSL, STARTTLS or plain, optional login). Messages are composed
here with the standard ``email`` package, because ``yagmail.SMTP.send`` reconnects for every
message and derives its text part from the HTML; we send the composed bytes over yagmail's
one open connection instead.

Errors::

    MailerError            base
    ├── ServerUnavailable  cannot connect, or the connection dropped: retry everything left
    └── MessageRefused     this message only (``permanent`` for 5xx answers)
        └── HeaderInjection  a header value holds CR, LF or another control character
"""

from __future__ import annotations

import binascii
import contextlib
import hashlib
import os
import re
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email import policy as email_policy
from email.header import Header
from email.message import Message
from email.utils import format_datetime
from typing import Any, Protocol

from cep_engine.errors import ConfigError
from cep_engine.notify.config import PASSWORD_ENV, NotifySettings

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ADDRESS = re.compile(r"^[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+$")


class MailerError(Exception):
    """A message could not be handed to the SMTP server."""


class ServerUnavailable(MailerError):
    """The server cannot be reached or dropped the connection; nothing more goes out now."""


class MessageRefused(MailerError):
    """The server (or our header check) refused this one message."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class HeaderInjection(MessageRefused):
    """A header value would inject a line into the message header; never sent."""

    def __init__(self, message: str) -> None:
        super().__init__(message, permanent=True)


@dataclass(frozen=True)
class Mail:
    """One email to send: recipients, subject, both bodies and its stable Message-ID."""

    to: tuple[str, ...]
    subject: str
    text: str
    html: str
    message_id: str
    date: datetime
    cc: tuple[str, ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every envelope recipient, To then Cc."""
        return self.to + self.cc


class Mailer(Protocol):
    """What delivery needs from a mail transport."""

    sender: str

    def open(self) -> None:
        """Connect (and log in); raise :class:`ServerUnavailable` when that fails."""

    def send(self, mail: Mail) -> list[str]:
        """Send ``mail``; return the recipients the server refused while accepting others."""

    def close(self) -> None:
        """Close the connection; never raises."""


def message_id_for(key: str, sender: str) -> str:
    """The Message-ID of the message with idempotency ``key``: the same key, the same id."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<cep.{digest}@{sender.rpartition('@')[2]}>"


def check_header(name: str, value: str) -> str:
    """``value``, or :class:`HeaderInjection` if it holds CR, LF or a control character."""
    if _CONTROL.search(value):
        raise HeaderInjection(f"header {name} holds a line break or control character; refused")
    return value


def check_address(value: str) -> str:
    """A bare address (no display name, comma or line break), else :class:`HeaderInjection`."""
    check_header("address", value)
    if not _ADDRESS.match(value):
        raise HeaderInjection(f"address {value!r} is not one bare address; refused")
    return value


def compose(mail: Mail, sender: str) -> bytes:
    """The message on the wire: multipart/alternative with the text and the HTML part.

    Every header value is checked first. The layout is fixed (two quoted-printable UTF-8
    parts), so it is written directly: the ``email`` package's generator costs a few
    milliseconds a message, this a few dozen microseconds. Tests parse the result with the
    ``email`` package.
    """
    headers = {
        "From": check_address(sender),
        "To": ", ".join(check_address(a) for a in mail.to),
        **({"Cc": ", ".join(check_address(a) for a in mail.cc)} if mail.cc else {}),
        "Subject": mail.subject,
        "Date": format_datetime(mail.date),
        "Message-ID": mail.message_id,
        **mail.headers,
    }
    boundary = "=_cep_" + hashlib.sha1(mail.message_id.encode()).hexdigest()[:24]
    lines = [f"{check_header(n, n)}: {_header_value(n, v)}" for n, v in headers.items()]
    lines += ["MIME-Version: 1.0",
              f'Content-Type: multipart/alternative; boundary="{boundary}"', ""]
    head = "\r\n".join(lines).encode("ascii")
    return b"".join([
        head, b"\r\n", _part(boundary, "plain", mail.text), _part(boundary, "html", mail.html),
        f"--{boundary}--\r\n".encode("ascii"),
    ])


def _header_value(name: str, value: str) -> str:
    check_header(name, value)
    if value.isascii():
        return value
    return Header(value, "utf-8").encode().replace("\n", "\r\n")


def _part(boundary: str, subtype: str, body: str) -> bytes:
    data = binascii.b2a_qp(body.replace("\r\n", "\n").encode("utf-8"), istext=True)
    return b"".join([
        f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n".encode("ascii"),
        data.replace(b"\n", b"\r\n"), b"\r\n",
    ])


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
