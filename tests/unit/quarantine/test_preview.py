"""Masked previews (relay/quarantine/preview.py)."""

from __future__ import annotations

import pytest

from relay.quarantine.preview import mask, render, safe


@pytest.mark.parametrize("secret", [
    "AB 12 34 56 C", "AB123456C", "4111 1111 1111 1111", "4111-1111-1111-1111", "GB82 WEST 1234 5698 7654 32",
    "GB82WEST12345698765432", "943 476 5919", "+44 20 7946 0958", "07700 900123", "12/03/1985",
    "jane.doe@example.org", "SW1A 1AA", "MORGA753116SM9IJ", "12345678",
])
def test_identifiers_are_masked(secret):
    out = mask(f"before {secret} after")
    assert out.startswith("before ") and out.endswith(" after")
    assert secret not in out
    assert not any(ch.isalnum() for ch in out[len("before "):-len(" after")])


@pytest.mark.parametrize("text", ["see you at 10:30 on Friday", "about 250 people", "Room 12, floor 3"])
def test_ordinary_text_stays_readable(text):
    assert mask(text) == text


def test_safe_escapes_terminal_control_characters():
    assert safe("a\x1b[2Jb\r\nc\td\x07") == "a\\x1b[2Jb\nc\td\\x07"


def test_render_masks_subject_and_body_but_keeps_routing_headers(make_message):
    raw = make_message(subject="NI AB123456C", body="Card 4111 1111 1111 1111\nthanks\n", to="bob@example.org",
                       attachments=[("AB123456C.pdf", b"%PDF-1.4", "application/pdf")])
    text = render(raw)
    assert "To: bob@example.org" in text and "From: alice@example.ac.uk" in text
    assert "AB123456C" not in text and "4111" not in text
    assert "thanks" in text and "personal data masked" in text
    assert "application/pdf" in text
    revealed = render(raw, reveal=True)
    assert "AB123456C" in revealed and "4111 1111 1111 1111" in revealed


def test_render_html_only_and_long_bodies(make_message):
    html = "<html><body><p>Hello <b>there</b></p><script>alert(1)</script></body></html>"
    raw = (b"From: a@example.ac.uk\r\nTo: b@example.org\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/html; charset=utf-8\r\n\r\n" + html.encode() + b"\r\n")
    text = render(raw)
    assert "Hello there" in " ".join(text.split()) and "alert" not in text and "<b>" not in text
    long = render(make_message(body="word " * 2000), max_chars=100)
    assert "more characters]" in long


def test_other_header_fields_are_masked_and_bounded(make_message):
    headers = {"X-Employee-Id": "EMP 12345678", "X-Note": "\x1b[31m" + "x" * 500}
    text = render(make_message(headers=headers))
    assert "X-Employee-Id: EMP ••••••••" in text
    assert "\x1b" not in text and "x" * 301 not in text
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(100)) + make_message()
    out = render(many)
    assert "more header fields]" in out
    assert len(out.split("Parts:")[0].splitlines()) == 1 + 60 + 1  # title, 60 fields, the "more" line


AUDIT_EXAMPLE = ("Hi team,\n\nPriya Shah has been diagnosed with HIV and will be off until further notice.\n"
                 "Her address is 12 Acacia Avenue, Leeds LS6 2AB.\nBorn 3 March 1985.\n\nThanks,\nTom\n")


def test_what_the_personal_data_detector_finds_is_masked():
    out = mask(AUDIT_EXAMPLE)
    for secret in ("Priya", "Shah", "diagnosed", "HIV", "12 Acacia Avenue", "Acacia", "Leeds", "LS6", "3 March"):
        assert secret not in out, secret
    # the shape and the ordinary words around it stay for the reviewer
    assert out.startswith("Hi team,\n\n") and out.endswith("\n\nThanks,\nTom\n") and len(out) == len(AUDIT_EXAMPLE)
    assert "Her address is •• •••••• ••••••, ••••• ••• •••." in out and "Born • ••••• ••••." in out


def test_a_special_category_term_hides_the_person_in_the_lines_before_it():
    record = "Patient: Priya Shah\nWard 4\nDiagnosis: HIV positive\n\nPlease call the ward with questions.\n"
    out = mask(record)
    assert "Priya" not in out and "HIV" not in out and "Diagnosis" not in out
    assert out.endswith("\n\nPlease call the ward with questions.\n")


def test_written_out_secrets_are_masked():
    out = mask("The new password: hunter2xyz for the shared box.")
    assert "hunter2xyz" not in out and out.startswith("The new ")


@pytest.mark.parametrize("text", [
    "The quarterly report is attached. Revenue grew in March and the board meets on Friday.",
    "Mental Health Awareness Week starts on Monday: see the reading list on religion and politics.",
    "Please send the slides to the team before the meeting at 10:30 in Room 12.",
])
def test_ordinary_prose_stays_readable_with_the_detector(text):
    assert mask(text) == text


def test_render_masks_the_detected_personal_data_in_the_body_unless_revealed(make_message):
    raw = make_message(subject="Priya Shah has been diagnosed with HIV", body=AUDIT_EXAMPLE)
    text = render(raw)
    assert "Priya" not in text and "HIV" not in text and "Acacia" not in text and "March 1985" not in text
    assert "Thanks," in text
    revealed = render(raw, reveal=True)
    assert "Priya Shah has been diagnosed with HIV" in revealed and "12 Acacia Avenue" in revealed
