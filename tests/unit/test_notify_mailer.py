"""The mail adapter: composition, header injection, Message-ID, password handling."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import KeyringLocked

from cep_engine.errors import ConfigError
from cep_engine.notify.config import NotifySettings
from cep_engine.notify.mailer import (
    FakeMailer,
    HeaderInjection,
    Mail,
    MessageRefused,
    ServerUnavailable,
    SmtpMailer,
    compose,
    message_id_for,
    smtp_password,
)
from cep_engine.settings import load_settings

NOW = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)


def _mail(**over: object) -> Mail:
    values: dict[str, object] = {
        "to": ("a@cts.wa.gov",), "cc": ("b@cts.wa.gov",), "subject": "Hello",
        "text": "plain body\n", "html": "<p>html body</p>",
        "message_id": message_id_for("k:1", "cep@cts.wa.gov"), "date": NOW,
    }
    values.update(over)
    return Mail(**values)  # type: ignore[arg-type]


def test_message_id_is_derived_from_the_key_only() -> None:
    one = message_id_for("escalation:7:project_sponsor:0", "cep@cts.wa.gov")
    assert one == message_id_for("escalation:7:project_sponsor:0", "cep@cts.wa.gov")
    assert one != message_id_for("escalation:7:executive_sponsor:0", "cep@cts.wa.gov")
    assert one.startswith("<cep.") and one.endswith("@cts.wa.gov>")


def test_compose_makes_multipart_alternative_with_both_parts() -> None:
    raw = compose(_mail(), "cep@cts.wa.gov")
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["To"] == "a@cts.wa.gov" and msg["Cc"] == "b@cts.wa.gov"
    assert msg["Message-ID"] == message_id_for("k:1", "cep@cts.wa.gov")
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert text.replace("\r\n", "\n") == "plain body\n"
    assert "<p>html body</p>" in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize("field,value", [
    ("subject", "Hi\r\nBcc: evil@example.com"),
    ("subject", "Hi\nX-Evil: 1"),
    ("subject", "Hi\rthere"),
    ("subject", "nul\x00"),
    ("to", ("a@cts.wa.gov\r\nBcc: evil@example.com",)),
    ("to", ("a@cts.wa.gov, evil@example.com",)),
    ("cc", ("Evil <evil@example.com>",)),
    ("message_id", "<x@y>\r\nBcc: evil@example.com"),
    ("headers", {"X-CEP-Key": "k\nBcc: e@x.org"}),
])
def test_header_injection_is_refused(field: str, value: object) -> None:
    with pytest.raises(HeaderInjection) as err:
        compose(_mail(**{field: value}), "cep@cts.wa.gov")
    assert err.value.permanent


def test_fake_mailer_follows_the_protocol() -> None:
    fake = FakeMailer(refuse={"b@cts.wa.gov"})
    with pytest.raises(ServerUnavailable):
        fake.send(_mail())
    fake.open()
    assert fake.send(_mail()) == ["b@cts.wa.gov"]
    with pytest.raises(MessageRefused):
        fake.send(_mail(to=("b@cts.wa.gov",), cc=()))
    fake.close()
    assert len(fake.sent) == 1 and fake.connections == 1
    with pytest.raises(ServerUnavailable):
        FakeMailer(down=True).open()


def test_password_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_SMTP_PASSWORD", "s3cret-pw")
    assert smtp_password("mailer@cts.wa.gov") == "s3cret-pw"
    monkeypatch.delenv("CEP_SMTP_PASSWORD")
    with pytest.raises(ConfigError, match="CEP_SMTP_PASSWORD") as err:
        SmtpMailer(NotifySettings(smtp_user="mailer@cts.wa.gov"))
    assert "s3cret" not in err.value.message


def test_password_in_a_config_file_is_refused_without_echoing_it(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "cep.toml"
    path.write_text('[notify]\nsmtp_host = "mail"\nsmtp_password = "hunter2-secret"\n')
    with pytest.raises(ConfigError, match="CEP_SMTP_PASSWORD") as err:
        load_settings(path)
    assert "hunter2" not in err.value.message


def test_unreachable_server_is_server_unavailable_without_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("CEP_SMTP_PASSWORD", "pw-never-shown")
    mailer = SmtpMailer(NotifySettings(smtp_host="127.0.0.1", smtp_port=port,
                                       smtp_security="plain", smtp_user="u@cts.wa.gov",
                                       smtp_timeout_seconds=2))
    with pytest.raises(ServerUnavailable) as err:
        mailer.open()
    assert "pw-never-shown" not in str(err.value)
    mailer.close()


def test_settings_backoff_doubles_and_caps() -> None:
    cfg = NotifySettings(backoff_seconds=60, backoff_max_seconds=600)
    assert [cfg.backoff(n) for n in range(1, 6)] == [60, 120, 240, 480, 600]


def test_notify_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEP_NOTIFY__SMTP_PORT", "2525")
    monkeypatch.setenv("CEP_NOTIFY__SMTP_SECURITY", "ssl")
    cfg = load_settings().notify
    assert (cfg.smtp_port, cfg.smtp_security) == (2525, "ssl")


def test_non_ascii_subject_and_bodies_survive_the_wire_format() -> None:
    raw = compose(_mail(subject="Révision — été", text="Zoë ✓\n", html="<p>Zoë ✓</p>"),
                  "cep@cts.wa.gov")
    assert raw.isascii()
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Révision — été"
    assert "Zoë ✓" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "<p>Zoë ✓</p>" in msg.get_body(("html",)).get_content()  # type: ignore[union-attr]


class MemoryKeyring(KeyringBackend):
    """An in-memory keyring backend: what ``keyring set`` would have stored."""

    priority = 1  # type: ignore[assignment]

    def __init__(self, locked: bool = False) -> None:
        super().__init__()
        self.secrets: dict[tuple[str, str], str] = {}
        self.locked = locked

    def get_password(self, service: str, username: str) -> str | None:
        if self.locked:
            raise KeyringLocked("the keyring is locked")
        return self.secrets.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.secrets[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.secrets.pop((service, username), None)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_password_comes_from_the_keyring_when_the_environment_has_none(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch,
) -> None:
    keyring.set_password("cep-engine", "mailer@cts.wa.gov", "from-the-keyring")
    assert memory_keyring.secrets == {("cep-engine", "mailer@cts.wa.gov"): "from-the-keyring"}
    assert smtp_password("mailer@cts.wa.gov") == "from-the-keyring"
    with pytest.raises(ConfigError, match=r"keyring set cep-engine other@cts\.wa\.gov"):
        smtp_password("other@cts.wa.gov")
    monkeypatch.setenv("CEP_SMTP_PASSWORD", "from-the-environment")
    assert smtp_password("mailer@cts.wa.gov") == "from-the-environment"


def test_a_locked_keyring_is_named_without_any_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    previous = keyring.get_keyring()
    locked = MemoryKeyring(locked=True)
    locked.secrets[("cep-engine", "mailer@cts.wa.gov")] = "kr-secret-value"
    keyring.set_keyring(locked)
    try:
        with pytest.raises(ConfigError) as err:
            SmtpMailer(NotifySettings(smtp_user="mailer@cts.wa.gov"))
    finally:
        keyring.set_keyring(previous)
    assert "the keyring could not be read (KeyringLocked)" in err.value.message
    assert "kr-secret-value" not in err.value.message


def test_without_the_keyring_package_the_environment_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "keyring", None)
    with pytest.raises(ConfigError, match="set CEP_SMTP_PASSWORD in the environment") as err:
        smtp_password("mailer@cts.wa.gov")
    assert "could not be read" not in err.value.message
