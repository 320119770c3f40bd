"""Email messages on the wire: :class:`Mail`, its stable Message-ID, header checks and
composition, and the errors of sending.

Messages are composed here with the standard library, because ``yagmail.SMTP.send``
reconnects for every message and derives its text part from the HTML; the mail adapter
(:mod:`cep_engine.notify.mailer`) sends the composed bytes over one open connection.

Errors::

    MailerError            base
    ├── ServerUnavailable  cannot connect, or the connection dropped: retry everything left
    └── MessageRefused     this message only (``permanent`` for 5xx answers)
        └── HeaderInjection  a header value holds CR, LF or another control character
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.header import Header
from email.utils import format_datetime

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
