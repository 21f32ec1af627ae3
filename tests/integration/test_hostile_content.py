"""Hostile message content through ``relay serve`` with the shipped policy, a real clamd and a real next hop.

Header injection through every place the relay writes text (policy fields,
rule reasons filled from attachment names, the sender notice), NUL bytes,
oversized headers and lines, decompression bombs, deep MIME and malformed
encodings: each gets a precise reply (250 held for review with the rule, 552,
550 with the rule) and nothing the attacker wrote becomes a header or a second
log line. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import email.parser
import email.policy
import io
import json
import zipfile
from pathlib import Path

import aiosmtplib
import pytest

from relay.errors import PolicyError
from relay.policy import load_policy
from tests.data.attachments import samples

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = (ROOT / "policies" / "icmp-email-use.yaml").read_text(encoding="utf-8")
HEAD = b"From: alice@example.ac.uk\r\nTo: carol@example.ac.uk\r\nSubject: files\r\nMessage-ID: <c1@example.ac.uk>\r\n"

HOSTILE_POLICY = """\
name: hostile
organisation: {{name: Example, internal_domains: [example.ac.uk]}}
rules:
  - id: "{id}"
    clause: "{clause}"
    reason: "{reason}"
    when: {{external_recipients: true}}
    action: tag
    tag:
      headers: {{"{hname}": "{hvalue}"}}
      subject_prefix: "{prefix}"
"""
SAFE = {"id": "r1", "clause": "4.1", "reason": "ok", "hname": "X-Note", "hvalue": "v", "prefix": "[EXT] "}


@pytest.mark.parametrize(("field", "value"), [
    ("id", "r1\\r\\nBcc: x@evil.example"), ("clause", "4.1\\r\\nBcc: x@evil.example"),
    ("reason", "why\\r\\nBcc: x@evil.example"), ("reason", "why \\u001b[31mred"),
    ("hname", "Bcc"), ("hname", "X-A\\r\\nBcc"), ("hname", "From"), ("hvalue", "v\\r\\nBcc: x@evil.example"),
    ("hvalue", "v\\u0000"), ("prefix", "[EXT]\\r\\nBcc: x@evil.example "), ("prefix", "\\u001b[2J"),
])
def test_a_hostile_policy_cannot_write_headers_it_is_refused_with_the_field_named(tmp_path, field, value):
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE_POLICY.format(**{**SAFE, field: value}), encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policy(path)
    assert "rules[0]" in str(refused.value) and "Traceback" not in str(refused.value)
    path.write_text(HOSTILE_POLICY.format(**SAFE), encoding="utf-8")
    load_policy(path)                                          # the same policy with safe values loads


# --------------------------------------------------------------------------- through the relay


def send(port: int, mail_from: str, rcpt_tos: list[str], raw: bytes, timeout: float = 60) -> tuple[int, str]:
    async def go():
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=timeout, start_tls=False)
        await smtp.connect()
        try:
            await smtp.ehlo()
            await smtp.mail(mail_from)
            for r in rcpt_tos:
                await smtp.rcpt(r)
            reply = await smtp.data(raw)
            return reply.code, reply.message
        except aiosmtplib.SMTPResponseException as exc:
            return exc.code, exc.message
        finally:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException:
                smtp.close()

    return asyncio.run(asyncio.wait_for(go(), timeout + 30))


def headers_of(data: bytes) -> list[tuple[str, str]]:
    msg = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(data, headersonly=True)
    return [(k.lower(), str(v)) for k, v in msg.items()]


@pytest.mark.clamd
def test_attachment_name_in_a_rule_reason_stays_one_reply_line_one_log_line_and_no_header(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=SHIPPED)
    evil = "evil%0D%0ABcc%3A%20x%40evil.example%1B%5B31m.exe"
    exe = base64.encodebytes(samples.testfile("clam.exe")).replace(b"\n", b"\r\n")
    raw = (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
           b"Content-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Disposition: attachment; filename*=utf-8''" + evil.encode() + b"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + exe + b"--B--\r\n")
    code, text = send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], raw)
    assert code == 550 and text.startswith("5.7.1 ") and "[rule " in text, text
    assert "\r" not in text and "\n" not in text and "\x1b" not in text
    [event] = relay.wait_for_event("decision")
    for line in relay.log_path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            json.loads(line)
    assert b"\x1b" not in relay.log_path.read_bytes()
    for rule in event["rules"]:
        assert "\r" not in rule["reason"] and "\n" not in rule["reason"] and "\x1b" not in rule["reason"], rule
    assert sink.messages == []


@pytest.mark.clamd
def test_sender_notice_headers_cannot_be_injected_through_message_id_or_sender(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=SHIPPED)
    macro = base64.encodebytes(samples.macro_xlsm()).replace(b"\n", b"\r\n")
    raw = (b"From: alice@example.ac.uk\r\nTo: carol@example.ac.uk\r\nSubject: =?utf-8?q?s=0D=0ABcc:_x@evil.example?=\r\n"
           b"Message-ID: =?utf-8?q?<m=0D=0ABcc:_x@evil.example>?=\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nbook\r\n--B\r\n"
           b"Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"book.xlsm\"\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\n" + macro + b"--B--\r\n")
    code, text = send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], raw)
    assert code == 250 and text.startswith("2.0.0 held for review q-"), text
    [notice] = sink.wait_for_messages(1, timeout=20)
    names = [k for k, _ in headers_of(notice.data)]
    assert "bcc" not in names and "in-reply-to" not in names        # the hostile id is not echoed
    assert b"evil.example" not in notice.data
    assert notice.rcpt_tos == ("alice@example.ac.uk",)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _nested_bomb(levels: int, fanout: int) -> bytes:
    """42.zip in small: zips of zips, the innermost full of zeros."""
    data = _zip({f"z{n}.bin": b"\0" * (4 * 1024 * 1024) for n in range(fanout)})
    for level in range(levels):
        data = _zip({f"l{level}-{n}.zip": data for n in range(fanout)})
    return data


def _attach(name: str, data: bytes, extra: bytes = b"") -> bytes:
    return (HEAD + b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\n"
            b"Content-Type: text/plain\r\n\r\nsee attached\r\n--B\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"" + name.encode() + b"\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n" + extra + b"\r\n"
            + base64.encodebytes(data).replace(b"\n", b"\r\n") + b"--B--\r\n")


def _leaf(cte: bytes, body: bytes, ctype: bytes = b"text/plain; charset=utf-8") -> bytes:
    return (HEAD + b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\nContent-Transfer-Encoding: " + cte
            + b"\r\n\r\n" + body + b"\r\n")


HELD = [  # (name, raw, the finding type the decision must show)
    ("zip-bomb", _attach("bomb.zip", _zip({"z.bin": b"\0" * (20 * 1024 * 1024)})), "max_compression_ratio"),
    ("nested-zip-bomb", _attach("42.zip", _nested_bomb(4, 4)), None),
    ("deep-mime", samples.nested(200).replace(b"a@example.org", b"alice@example.ac.uk")
     .replace(b"b@example.org", b"carol@example.ac.uk"), "max_mime_depth"),
    ("many-parts", samples.many_parts(3000).replace(b"a@example.org", b"alice@example.ac.uk"), "max_parts"),
    ("bad-base64", _leaf(b"base64", b"SGVsbG8*&^%$!!!=\r\n==x"), "bad_base64"),
    ("unknown-cte", _leaf(b"x-evil", b"hello"), "bad_transfer_encoding"),
    ("encoded-multipart", _leaf(b"base64", b"LS1CDQo=", b"multipart/mixed; boundary=B"), None),
    ("nul-in-header", HEAD.replace(b"Subject: files", b"Subject: fi\x00les") + b"\r\nhello\r\n", "nul_in_header"),
    ("nul-in-body", HEAD + b"\r\nthe NHS number is 9\x0043 476 5\x00919\r\n", "nul_in_text"),
    ("no-boundary", _leaf(b"7bit", b"--B\r\nContent-Type: text/plain\r\n\r\nx", b"multipart/mixed"), "broken_boundary"),
]


@pytest.mark.clamd
@pytest.mark.slow
def test_bombs_deep_mime_and_malformed_encodings_are_held_with_the_rule_never_a_crash(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=SHIPPED)
    for n, (name, raw, finding) in enumerate(HELD, 1):
        code, text = send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], raw)
        assert (code, text.split(" q-")[0]) == (250, "2.0.0 held for review"), (name, code, text)
        event = relay.wait_for_event("decision", n, timeout=60)[-1]
        assert event["action"] == "hold" and "malformed-message" in [r["id"] for r in event["rules"]], (name, event)
        types = {f["type"] for f in event["findings"] if f["kind"] in ("malformed", "limit_exceeded")}
        assert types and (finding is None or finding in types), (name, types)
    assert sink.messages == []                                 # held, not delivered (no notice rule)


@pytest.mark.clamd
def test_oversized_header_is_552_and_a_huge_body_line_goes_through_whole(start_relay, make_sink):
    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=SHIPPED)
    folded = b"X-Long: a\r\n" + b" b\r\n" * 400_000                  # 1.6 MB of one folded header
    code, text = send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], HEAD + folded + b"\r\nhi\r\n")
    assert (code, text) == (552, "5.3.4 Message header size exceeds fixed maximum header size")
    line = b"word " * 60_000                                       # one 300 KB body line
    raw = HEAD + b"\r\n" + line + b"\r\n"
    code, text = send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], raw)
    assert code == 250, text
    [captured] = sink.wait_for_messages(1)
    assert captured.data.endswith(b"\r\n\r\n" + line + b"\r\n")
    assert [e["reply"][:3] for e in relay.events("decision")] == ["552", "250"]


@pytest.mark.clamd
def test_detected_personal_data_never_reaches_the_log_the_headers_the_quarantine_list_or_the_notice(
        start_relay, make_sink):
    """Invariant 7 end to end: personal data in the subject and body, tagged (internal) and held (external)."""
    import subprocess
    import sys

    sink = make_sink()
    relay = start_relay({"RELAY_UPSTREAM": f"127.0.0.1:{sink.port}"}, policy=SHIPPED)
    values = ["943 476 5919", "JG 10 37 59 A"]
    forms = values + [v.replace(" ", "") for v in values]
    body = (b"Subject: patient 943 476 5919\r\nMIME-Version: 1.0\r\n\r\nThe patient's NHS number is 943 476 5919 and "
            b"her national insurance number is JG 10 37 59 A.\r\n")
    internal = b"From: alice@example.ac.uk\r\nTo: carol@example.ac.uk\r\nMessage-ID: <pd1@example.ac.uk>\r\n" + body
    external = b"From: alice@example.ac.uk\r\nTo: bob@partner.example.com\r\nMessage-ID: <pd2@example.ac.uk>\r\n" + body
    assert send(relay.port, "alice@example.ac.uk", ["carol@example.ac.uk"], internal)[0] == 250
    code, text = send(relay.port, "alice@example.ac.uk", ["bob@partner.example.com"], external)
    assert code == 250 and "held for review" in text, text
    events = relay.wait_for_event("decision", 2)
    assert {e["action"] for e in events} == {"tag", "hold"}
    assert any(f["kind"] == "personal_data" for e in events for f in e["findings"])
    log = relay.log_path.read_text(encoding="utf-8")
    listed = subprocess.run([sys.executable, "-m", "relay.cli", "quarantine", "list", "--json"], capture_output=True,
                            text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=ROOT,
                            env={"PATH": "/usr/bin:/bin", "RELAY_QUARANTINE": f"sqlite:///{relay.log_path.parent}/quarantine.sqlite3"})
    assert listed.returncode == 0 and json.loads(listed.stdout), listed.stderr
    delivered = sink.wait_for_messages(1)
    headers_out = b"".join(m.data.partition(b"\r\n\r\n")[0] for m in delivered)
    ours = b"\r\n".join(line for line in headers_out.split(b"\r\n") if line.lower().startswith(b"x-policy"))
    assert ours                                                   # the tag headers are there ...
    for form in forms:                                            # ... and carry none of it; nor do log and list
        assert form not in log, form
        assert form not in listed.stdout, form
        assert form.encode() not in ours, form

