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
