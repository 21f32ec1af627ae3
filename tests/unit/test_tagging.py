"""relay.tagging: forged relay headers go, ours come on top, everything else stays byte for byte."""

from __future__ import annotations

import email
import email.header
import email.policy
import re

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from relay.tagging import (
    clean_text,
    forged_header_indexes,
    header_domain,
    render_field,
    split_head,
    strip_forged,
    tag,
)
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

BODY = b"\r\nLine one\r\n\r\n.leading dot\r\n\xc3\xa9t\xc3\xa9 8-bit\r\n  trailing   \r\n"


def verdict(action=Action.TAG, rules=("contract-ext",), headers=(), prefix="", monitor=()):
    matches = tuple(RuleMatch(r, "4.1", action, "reason") for r in rules)
    matches += tuple(RuleMatch(r, "9.9", action, "reason", monitor=True) for r in monitor)
    return Verdict(action, matches, tag=TagSpec(tuple(headers), prefix))


def lines_of(head: bytes) -> list[bytes]:
    return head.split(b"\r\n")


def header_section(out: bytes) -> bytes:
    return out.split(b"\r\n\r\n", 1)[0] + b"\r\n"


def parsed(out: bytes):
    return email.message_from_bytes(out, policy=email.policy.compat32)


@pytest.fixture
def settings(make_settings):
    return make_settings()


# --------------------------------------------------------------------------- split


def test_split_head_keeps_every_byte():
    raw = b"From: a@b.c\r\nSubject: x\r\n y\r\n\tz\r\nNoColonLine\r\n" + BODY
    head = split_head(raw)
    assert [f.name for f in head.fields] == ["From", "Subject", ""]
    assert head.join() == raw
    assert head.fields[1].value() == "x y\tz"
    assert head.eol == b"\r\n"


def test_split_head_message_without_body_or_headers():
    assert split_head(b"From: a@b.c\r\n").join() == b"From: a@b.c\r\n"
    empty = split_head(b"\r\nbody only\r\n")
    assert empty.fields == () and empty.rest == b"\r\nbody only\r\n"


def test_split_head_lf_message_keeps_lf(settings):
    raw = b"From: a@b.c\nSubject: x\n\nbody\n"
    out = tag(raw, verdict(), settings)
    assert b"\r" not in out
    assert out.endswith(b"From: a@b.c\nSubject: x\n\nbody\n")


# --------------------------------------------------------------------------- forged headers


FORGED = (
    b"X-Policy-Action: accept\r\n",
    b"x-policy-action:accept\r\n",
    b"X-POLICY-ACTION : accept\r\n",
    b"X-Policy-Rules:\r\n none,\r\n\tfolded-too\r\n",
    b"x-pOlIcY-rUlEs: forged\r\n",
)


def test_forged_headers_in_every_casing_and_folding_are_removed(settings):
    raw = b"From: a@example.ac.uk\r\n" + FORGED[0] + b"To: b@example.org\r\n" + b"".join(FORGED[1:]) + \
        b"Subject: hi\r\n" + BODY
    out = tag(raw, verdict(Action.ACCEPT, rules=()), settings)
    head = split_head(out)
    actions = head.named("X-Policy-Action")
    rules = head.named("X-Policy-Rules")
    assert [f.raw for f in actions] == [b"X-Policy-Action: accept\r\n"]
    assert [f.raw for f in rules] == [b"X-Policy-Rules:\r\n"]
    assert b"forged" not in out and b"folded-too" not in out and b"none," not in out
    assert out.endswith(b"From: a@example.ac.uk\r\nTo: b@example.org\r\nSubject: hi\r\n" + BODY)


def test_forged_header_behind_bare_cr_is_removed(settings):
    # Python's parser (and others) end a header line at a bare CR.
    raw = b"Subject: hi\rX-Policy-Action: accept\r\nFrom: a@b.c\r\n" + BODY
    out = strip_forged(raw, settings)
    assert b"X-Policy-Action" not in out
    assert parsed(tag(raw, verdict(), settings)).get_all("X-Policy-Action") == ["tag"]


def test_strip_forged_uses_configured_names(make_settings):
    settings = make_settings(action_header="X-Relay-Verdict", rules_header="X-Relay-Why")
    raw = b"x-relay-verdict: accept\r\nX-Policy-Action: keep me\r\nX-RELAY-WHY:\r\n x\r\n" + BODY
    assert strip_forged(raw, settings) == b"X-Policy-Action: keep me\r\n" + BODY
    out = tag(raw, verdict(), settings)
    assert out.startswith(b"X-Relay-Verdict: tag\r\nX-Relay-Why: contract-ext\r\n")


def test_forged_header_indexes_for_milter(settings):
    raw = (b"X-Policy-Action: a\r\nFrom: x@y.z\r\nx-policy-action: b\r\nX-Policy-Rules: r\r\n"
           b"X-POLICY-ACTION:\r\n c\r\n" + BODY)
    got = forged_header_indexes(raw, settings)
    # 1-based per name, highest first so deleting in order never shifts a later index
    assert got == [("X-POLICY-ACTION", 3), ("x-policy-action", 2), ("X-Policy-Action", 1), ("X-Policy-Rules", 1)]
    assert forged_header_indexes(b"From: x@y.z\r\n" + BODY, settings) == []


# --------------------------------------------------------------------------- our headers


def test_tag_adds_action_and_enforced_rules_on_top_and_keeps_the_rest(settings):
    raw = b"Received: by x\r\nFrom: a@example.ac.uk\r\nSubject: hi\r\n" + BODY
    out = tag(raw, verdict(rules=("r1", "r2", "r1"), monitor=("watch-only",)), settings)
    assert out == b"X-Policy-Action: tag\r\nX-Policy-Rules: r1, r2\r\n" + raw
    assert raw.startswith(b"Received")       # the input is untouched


@pytest.mark.parametrize("action, word", [(Action.ACCEPT, b"accept"), (Action.TAG, b"tag"), (Action.HOLD, b"tag")])
def test_action_words(settings, action, word):
    out = tag(b"From: a@b.c\r\n" + BODY, verdict(action), settings)
    assert out.startswith(b"X-Policy-Action: " + word + b"\r\n")


def test_hostile_rule_ids_and_values_are_sanitised(settings):
    evil = "line\r\nBcc: victim@example.org\x00\x1b[31mred\x1b[0m\u2028é"
    v = verdict(rules=(evil, "ok"), headers=(("X-Policy-Note", evil * 50), ("Bad Name", "x"),
                                             ("From", "mallory@evil.example"), ("X-Policy-Action", "accept")))
    out = tag(b"From: a@example.ac.uk\r\n" + BODY, v, settings)
    head = header_section(out)
    assert b"\x00" not in head and b"\x1b" not in head
    assert all(0x20 <= c < 0x7f or c in (9, 10, 13) for c in head)                 # ASCII only
    for line in lines_of(head):
        assert len(line) <= 78, line                                                # folded
        assert b"\r" not in line and b"\n" not in line
    msg = parsed(out)
    assert msg.get_all("Bcc") is None
    assert msg.get_all("From") == ["a@example.ac.uk"]
    assert msg.get_all("X-Policy-Action") == ["tag"]
    assert msg.get_all("Bad Name") is None
    rules = msg["X-Policy-Rules"]
    assert re.fullmatch(r"[A-Za-z0-9._:/+@=, -]+", rules) and rules.endswith(", ok")
    note = str(email.header.make_header(email.header.decode_header(msg["X-Policy-Note"])))
    assert "é" in note and "\n" not in note and "\x1b" not in note
    assert len(note) <= 900


def test_long_ascii_value_is_folded_at_spaces():
    field = render_field("X-Policy-Note", "word " * 300)
    lines = field.split(b"\r\n")
    assert lines[-1] == b""
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(b" ") for line in lines[1:-1])
    assert len(field) < 1000


def test_clean_text():
    assert clean_text("a\r\n\tb\x00c\x1b[0m") == "a b c [0m"
    assert len(clean_text("x" * 5000)) == 900 and clean_text("x" * 5000).endswith("...")


# --------------------------------------------------------------------------- subject prefix


def subject_of(out: bytes) -> str:
    return str(email.header.make_header(email.header.decode_header(parsed(out)["Subject"])))


def test_subject_prefix_added_once(settings):
    raw = b"From: a@b.c\r\nSubject: Quarterly figures\r\n" + BODY
    once = tag(raw, verdict(prefix="[EXTERNAL]"), settings)
    assert b"\r\nSubject: [EXTERNAL] Quarterly figures\r\n" in once
    twice = tag(once, verdict(prefix="[EXTERNAL]"), settings)
    assert twice.count(b"[EXTERNAL]") == 1
    reply = b"From: a@b.c\r\nSubject: Re: [external] Quarterly figures\r\n" + BODY
    assert tag(reply, verdict(prefix="[EXTERNAL]"), settings).count(b"[EXTERNAL]") == 0


def test_subject_prefix_keeps_encoded_words_and_folding(settings):
    raw = (b"From: a@b.c\r\nSubject: =?UTF-8?B?w4l0w6kgZMOpasOg?=\r\n =?UTF-8?Q?_vu_=E2=82=AC?=\r\n"
           b"To: b@c.d\r\n" + BODY)
    out = tag(raw, verdict(prefix="[EXTERNAL]"), settings)
    assert b"Subject: [EXTERNAL] =?UTF-8?B?w4l0w6kgZMOpasOg?=\r\n =?UTF-8?Q?_vu_=E2=82=AC?=\r\nTo:" in out
    assert subject_of(out) == "[EXTERNAL] Été déjà vu €"
    # already there, seen through the encoding
    enc = b"From: a@b.c\r\nSubject: =?utf-8?q?=5BEXTERNAL=5D_caf=C3=A9?=\r\n" + BODY
    assert tag(enc, verdict(prefix="[EXTERNAL]"), settings).count(b"Subject:") == 1
    assert b"[EXTERNAL]" not in header_section(tag(enc, verdict(prefix="[EXTERNAL]"), settings))


def test_non_ascii_prefix_is_encoded_and_keeps_its_space(settings):
    raw = b"From: a@b.c\r\nSubject: =?UTF-8?B?w4l0w6k=?=\r\n" + BODY
    out = tag(raw, verdict(prefix="[Externe – Prüfen]"), settings)
    assert header_section(out).isascii()
    assert subject_of(out) == "[Externe – Prüfen] Été"


def test_subject_prefix_on_long_or_empty_or_missing_subject(settings):
    long = b"From: a@b.c\r\nSubject: " + b"x" * 70 + b"\r\n" + BODY
    out = tag(long, verdict(prefix="[EXT]"), settings)
    assert b"Subject: [EXT]\r\n " + b"x" * 70 + b"\r\n" in out
    empty = tag(b"From: a@b.c\r\nSubject:\r\n" + BODY, verdict(prefix="[EXT]"), settings)
    assert b"\r\nSubject: [EXT]\r\n" in empty
    missing = tag(b"From: a@b.c\r\n" + BODY, verdict(prefix="[EXT]\r\nBcc: x"), settings)
    assert parsed(missing)["Subject"] == "[EXT] Bcc: x"
    assert parsed(missing).get_all("Bcc") is None


def test_eight_bit_subject_kept_and_prefixed(settings):
    raw = "From: zoë@example.ac.uk\r\nSubject: Grüße aus Köln\r\n".encode() + BODY
    out = tag(raw, verdict(prefix="[EXT]"), settings)
    assert "Subject: [EXT] Grüße aus Köln\r\n".encode() in out
    assert out.endswith(BODY)


def test_no_prefix_leaves_subject_alone(settings):
    raw = b"From: a@b.c\r\nSubject:   spaced  \r\n" + BODY
    assert tag(raw, verdict(), settings).endswith(raw)


# --------------------------------------------------------------------------- From domain


@pytest.mark.parametrize("value, domain", [
    (b"Alice <alice@Dept.Example.AC.UK>", "dept.example.ac.uk"),
    (b"=?utf-8?q?Zo=C3=AB?= <zoe@example.org>", "example.org"),
    ("zoë@exämple.org".encode(), "exämple.org"),
    (b"\"a@evil.example\" <real@good.example>", "good.example"),
    (b"undisclosed-recipients:;", ""),
])
def test_header_domain(value, domain):
    assert header_domain(b"From: " + value + b"\r\n" + BODY) == domain


def test_header_domain_without_from():
    assert header_domain(b"Subject: x\r\n" + BODY) == ""


# --------------------------------------------------------------------------- extra headers are ours too


def test_client_copies_of_our_extra_headers_are_replaced(settings):
    raw = b"X-Policy-Note: all clear\r\nFrom: a@b.c\r\nx-policy-note:\r\n folded forgery\r\n" + BODY
    v = verdict(headers=(("X-Policy-Note", "contract language"),))
    out = tag(raw, v, settings)
    assert parsed(out).get_all("X-Policy-Note") == ["contract language"]
    # without that header in the verdict, the client's X-Policy-Note is just a header
    assert tag(raw, verdict(), settings).endswith(raw)


# --------------------------------------------------------------------------- milter form


def test_header_edits_match_tag(settings):
    from relay.tagging import header_edits

    raw = (b"X-Policy-Action: accept\r\nFrom: a@b.c\r\nSubject: first\r\nX-Policy-Note: forged\r\n"
           b"Subject: [EXT] second\r\nSubject: " + b"x" * 70 + b"\r\nx-policy-action:\r\n again\r\n" + BODY)
    v = verdict(rules=("r1",), headers=(("X-Policy-Note", "long note " * 12),), prefix="[EXT]")
    edits = header_edits(raw, v, settings)
    assert edits.delete == (("x-policy-action", 2), ("X-Policy-Action", 1), ("X-Policy-Note", 1))
    assert [name for name, _ in edits.insert] == ["X-Policy-Action", "X-Policy-Rules", "X-Policy-Note"]
    assert edits.insert[:2] == (("X-Policy-Action", "tag"), ("X-Policy-Rules", "r1"))
    note = edits.insert[2][1]
    assert "\r" not in note and "\n " in note and note.replace("\n", "") == ("long note " * 12).strip()
    assert edits.change == (("Subject", 1, "[EXT] first"), ("Subject", 3, "[EXT]\n " + "x" * 70))
    # applying the edits gives what tag() writes
    out = tag(raw, v, settings)
    msg = parsed(out)
    assert msg.get_all("Subject") == ["[EXT] first", "[EXT] second", "[EXT]\r\n " + "x" * 70]
    assert msg["X-Policy-Note"].replace("\r\n", "\n") == note


def test_header_edits_when_nothing_to_change(settings):
    from relay.tagging import header_edits

    edits = header_edits(b"From: a@b.c\r\nSubject: hi\r\n" + BODY, verdict(Action.ACCEPT, rules=()), settings)
    assert edits.delete == () and edits.change == ()
    assert edits.insert == (("X-Policy-Action", "accept"), ("X-Policy-Rules", ""))


# --------------------------------------------------------------------------- any input


_PIECES = [b"X-Policy-Action: accept", b"x-policy-rules:", b"X-POLICY-ACTION :", b"Subject: hi", b"From: a@b.c",
           b"=?utf-8?q?x?=", b"\xc3\xa9", b"\xff", b" ", b"\t", b":", b"\r\n", b"\r\n ", b"\n", b"\r", b"\x00",
           b"\r\n\r\n", b"body"]


@given(st.lists(st.sampled_from(_PIECES), max_size=30), st.text(max_size=40), st.text(max_size=20))
@hsettings(max_examples=300, deadline=None)
def test_any_input_gets_exactly_our_verdict(parts, note, prefix):
    from relay.config import Settings

    raw = b"".join(parts)
    settings = Settings()
    out = tag(raw, verdict(rules=("r1", note), headers=(("X-Policy-Note", note),), prefix=prefix), settings)
    head = split_head(out)
    assert [f.raw.rstrip(b"\r\n") for f in head.named("X-Policy-Action")] == [b"X-Policy-Action: tag"]
    assert len(head.named("X-Policy-Rules")) == 1 and len(head.named("X-Policy-Note")) <= 1
    assert out.endswith(split_head(raw).rest)
    for f in head.named("X-Policy-Rules") + head.named("X-Policy-Note"):
        text = f.raw.replace(head.eol, b"")
        assert text.isascii() and not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", text), f.raw
    assert parsed(out).get_all("X-Policy-Action") == ["tag"]


def test_leading_continuation_line_cannot_extend_our_headers(settings):
    raw = b" forged-rule, X-Injected: 1\r\nFrom: a@b.c\r\n" + BODY
    out = tag(raw, verdict(rules=("r1",)), settings)
    assert parsed(out)["X-Policy-Rules"] == "r1"
    assert b"forged-rule" not in out and out.endswith(b"From: a@b.c\r\n" + BODY)
