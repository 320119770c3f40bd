"""Delivery over TLS and with a login, against aiosmtpd on loopback.

A throw-away certificate authority and a server certificate for 127.0.0.1 are made here with
``cryptography``. The mailer verifies the server's certificate: against the system's trust
store by default, or against ``notify.smtp_ca_file`` (a private CA). The SMTP password comes
from ``CEP_SMTP_PASSWORD`` (or the keyring) and never shows in logs, errors or the outbox.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from cep_engine.errors import ConfigError
from cep_engine.notify.mailer import ServerUnavailable, SmtpMailer
from cep_engine.store.db import Store
from cep_engine.store.models import OutboxMessage
from tests.conftest import NOW
from tests.integration.test_notify import Inbox, Server, queue, run, statuses

PASSWORD = "correct horse battery staple"
WRONG = "tr0ub4dor&3-wrong"
USER = "mailer@cts.wa.gov"


@dataclass(frozen=True)
class Pki:
    """A private CA and a server certificate it signed."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert_file, self.key_file)
        return ctx


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(folder: Path, *, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> Pki:
    """A CA and a server certificate for ``hosts`` (IP addresses or DNS names), valid now."""
    start = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    end = start + dt.timedelta(days=2)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("cep test CA"))
          .issuer_name(_name("cep test CA")).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(start)
          .not_valid_after(end)
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, key_cert_sign=True, crl_sign=True,
              content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    cert = (x509.CertificateBuilder().subject_name(_name(hosts[0])).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    pki = Pki(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return pki


@dataclass
class TlsInbox(Inbox):
    """Also notes whether each message arrived over TLS, and every login tried."""

    over_tls: list[bool] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.over_tls.append(server.transport.get_extra_info("ssl_object") is not None)
        return await super().handle_DATA(server, session, envelope)

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=auth_data.password.decode() == PASSWORD, handled=False)


class TlsServer(Server):
    """aiosmtpd with implicit TLS (``mode="ssl"``) or STARTTLS required (``"starttls"``)."""

    def __init__(self, pki: Pki, mode: str, *, login: bool = False) -> None:
        inbox = TlsInbox()
        kwargs: dict[str, Any] = (
            {"ssl_context": pki.server_context()} if mode == "ssl"
            else {"tls_context": pki.server_context(), "require_starttls": True})
        if login:
            kwargs |= {"authenticator": inbox.authenticate, "auth_require_tls": True}
        super().__init__(**kwargs)
        self.inbox = inbox
        self.mode = mode

    def settings(self, **over: Any) -> Any:
        return super().settings(smtp_security=self.mode, **over)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(params=["ssl", "starttls"])
def tls_server(request: pytest.FixtureRequest, pki: Pki) -> Iterator[TlsServer]:
    server = TlsServer(pki, request.param)
    server.start()
    yield server
    server.stop()


def test_delivers_over_tls_verified_against_a_private_ca(store: Store, project: str,
                                                        tls_server: TlsServer,
                                                        pki: Pki) -> None:
    queue(store, project, 2)
    report = run(store, tls_server, smtp_ca_file=pki.ca_file)
    assert report.sent == 2, report.errors
    inbox = tls_server.inbox
    assert isinstance(inbox, TlsInbox) and inbox.over_tls == [True, True]
    assert statuses(store) == ["sent", "sent"]


def test_an_untrusted_certificate_is_refused_and_the_messages_wait(
    store: Store, project: str, tls_server: TlsServer,
) -> None:
    queue(store, project, 1)
    report = run(store, tls_server)
    assert (report.sent, report.retrying) == (0, 1)
    assert "CERTIFICATE_VERIFY_FAILED" in report.errors[0]
    assert tls_server.inbox.received == [] and statuses(store) == ["pending"]


def test_a_certificate_for_another_host_is_refused(store: Store, project: str,
                                                   tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", hosts=("mail.example.org",))
    server = TlsServer(other, "starttls")
    server.start()
    try:
        queue(store, project, 1)
        report = run(store, server, smtp_ca_file=other.ca_file)
    finally:
        server.stop()
    assert report.sent == 0 and "CERTIFICATE_VERIFY_FAILED" in report.errors[0]
    assert "127.0.0.1" in report.errors[0]


def test_a_missing_ca_file_is_a_config_error(tmp_path: Path) -> None:
    from cep_engine.notify.config import NotifySettings

    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError, match="smtp_ca_file") as err:
        SmtpMailer(NotifySettings(smtp_security="ssl", smtp_ca_file=missing))
    assert str(missing) in err.value.message


def test_login_over_starttls_uses_the_environment_password_and_never_shows_it(
    store: Store, project: str, pki: Pki, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    server = TlsServer(pki, "starttls", login=True)
    server.start()
    inbox = server.inbox
    assert isinstance(inbox, TlsInbox)
    try:
        queue(store, project, 1)
        monkeypatch.setenv("CEP_SMTP_PASSWORD", WRONG)
        report = run(store, server, smtp_user=USER, smtp_ca_file=pki.ca_file)
        assert (report.sent, report.retrying) == (0, 1)
        assert f"refused the login of {USER}: 535" in report.errors[0]
        assert "check CEP_SMTP_PASSWORD" in report.errors[0]
        mailer = SmtpMailer(server.settings(smtp_user=USER, smtp_ca_file=pki.ca_file))
        with pytest.raises(ServerUnavailable) as err:
            mailer.open()
        monkeypatch.setenv("CEP_SMTP_PASSWORD", PASSWORD)
        report = run(store, server, now=NOW + dt.timedelta(minutes=5), smtp_user=USER,
                     smtp_ca_file=pki.ca_file)
        assert report.sent == 1, report.errors
    finally:
        server.stop()
    assert set(inbox.logins[:-1]) == {(USER, WRONG)} and inbox.logins[-1] == (USER, PASSWORD)
    assert inbox.over_tls == [True]
    with store.reading() as s:
        stored = " ".join(str(v) for row in s.scalars(select(OutboxMessage))
                          for v in (row.last_error, row.context))
    out, errors = capfd.readouterr()
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("mail.log"))
    for text in (str(err.value), repr(err.value), " ".join(report.errors), stored, ours, out,
                 errors):
        assert WRONG not in text and PASSWORD not in text


def test_login_with_the_password_from_the_keyring(store: Store, project: str, pki: Pki) -> None:
    import keyring

    from tests.unit.test_notify_mailer import MemoryKeyring

    previous = keyring.get_keyring()
    keyring.set_keyring(MemoryKeyring())
    keyring.set_password("cep-engine", USER, PASSWORD)
    server = TlsServer(pki, "starttls", login=True)
    server.start()
    try:
        queue(store, project, 1)
        report = run(store, server, smtp_user=USER, smtp_ca_file=pki.ca_file)
    finally:
        server.stop()
        keyring.set_keyring(previous)
    assert report.sent == 1, report.errors
    assert isinstance(server.inbox, TlsInbox) and server.inbox.logins == [(USER, PASSWORD)]
