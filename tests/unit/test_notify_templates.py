"""Templates: every kind renders with sample data, HTML is escaped, user files win."""

from __future__ import annotations

from pathlib import Path

import pytest

from cep_engine.notify.outbox import Kind
from cep_engine.notify.samples import sample_context
from cep_engine.notify.templates import DEFAULT_DIR, RenderError, Templates, kinds, preview


@pytest.mark.parametrize("kind", kinds())
def test_every_kind_has_both_parts_and_renders_its_sample(kind: str) -> None:
    assert (DEFAULT_DIR / f"{kind}.txt").exists() and (DEFAULT_DIR / f"{kind}.html").exists()
    out = preview(kind)
    assert out.subject and "\n" not in out.subject
    assert out.text.strip() and "<html" in out.html


def test_kinds_cover_the_outbox_kinds() -> None:
    assert set(kinds()) == {k.value for k in Kind} | {"digest"}


def test_escalation_email_tells_the_sponsor_everything_the_plan_asks() -> None:
    out = preview("escalation")
    for needle in ("SDC-042", "Department of Licensing", "#7 Storage array delivery slipped",
                   "critical", "6.0 business hours", "Tess Team", "senior pm: told Sam Senior",
                   "project sponsor: told Cto", "What is asked of you: resolve the issue",
                   "cep issue ack SDC-042 7 --actor cto@cts.wa.gov"):
        assert needle in out.text, needle
    assert "cep issue ack SDC-042 7 --actor cto@cts.wa.gov" in out.html
    assert out.subject.startswith("[SDC-042] Escalated to project sponsor: issue #7")


def test_html_is_autoescaped_and_text_is_not() -> None:
    ctx = sample_context("checklist_returned")
    ctx["comment"] = "<script>alert(1)</script> & more"
    out = Templates().render("checklist_returned", ctx)
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in out.html
    assert "<script>" not in out.html
    assert "<script>alert(1)</script> & more" in out.text


def test_a_missing_value_is_an_error_not_an_empty_string() -> None:
    ctx = sample_context("phase_changed")
    del ctx["to_phase"]
    with pytest.raises(RenderError, match="to_phase"):
        Templates().render("phase_changed", ctx)


def test_user_template_dir_overrides_one_file_and_keeps_the_rest(tmp_path: Path) -> None:
    (tmp_path / "phase_changed.txt").write_text(
        "Subject: {% block subject %}Custom {{ project.key }}{% endblock %}\n\nHello\n")
    templates = Templates(tmp_path)
    out = templates.render("phase_changed", sample_context("phase_changed"))
    assert out.subject == "Custom SDC-042" and out.text == "Hello\n"
    assert "planning" in out.html
    assert Templates(tmp_path).render("digest", sample_context("digest")).subject


def test_text_template_without_subject_line_is_refused(tmp_path: Path) -> None:
    (tmp_path / "phase_changed.txt").write_text("Hello\n")
    with pytest.raises(RenderError, match="block subject"):
        Templates(tmp_path).render("phase_changed", sample_context("phase_changed"))


def test_times_are_shown_in_the_configured_zone() -> None:
    out = Templates(timezone="America/Los_Angeles").render(
        "phase_changed", sample_context("phase_changed"))
    assert "Thu 05 Nov 2026 09:00 PST" in out.text


def test_a_line_break_in_a_value_stays_in_the_subject_for_the_header_check() -> None:
    ctx = sample_context("phase_changed") | {"to_phase": "x\r\nBcc: evil@example.com"}
    out = Templates().render("phase_changed", ctx)
    assert "\r\nBcc: evil@example.com" in out.subject


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(RenderError, match="unknown notification kind"):
        preview("nope")
