"""Verdict -> milter actions: the header edits, applied the way an MTA applies them, give exactly
the message ``tagging.tag`` makes (so the DKIM signature, computed over that, holds after delivery)."""

from __future__ import annotations

import asyncio
import re
import struct

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from relay import tagging
from relay.config import DkimKey
from relay.dkim import Signer, load_key
from relay.envelope import Envelope
from relay.milter import act
from relay.milter import protocol as p
from relay.pipeline import Decision
from relay.verdict import Action, RuleMatch, TagSpec, Verdict

RAW = (b"x-policy-action: accept\r\nFrom: Alice <alice@example.ac.uk>\r\nSubject: first\r\n"
       b"X-Policy-Action: tag\r\n\tfolded forgery\r\nSubject: =?utf-8?q?second?=\r\nTo: bob@partner.example\r\n"
       b"X-Policy-Rules: none\r\n\r\nbody\r\n")


def apply(raw: bytes, packets) -> bytes:
    """What an MTA does with header actions: CHGHEADER (1-based per name, empty deletes), INSHEADER at a position."""
    head = tagging.split_head(raw)
    fields = [f.raw for f in head.fields]

    def name_of(line: bytes) -> str:
        return line.split(b":", 1)[0].decode().lower()

    for packet in packets:
        if packet.command not in (p.CHGHEADER, p.INSHEADER):
            continue
        (index,) = struct.unpack(">I", packet.data[:4])
        name, value, _ = packet.data[4:].split(b"\0")
        line = name + b":" + value.replace(b"\n", b"\r\n") + b"\r\n"
        if packet.command == p.INSHEADER:
            fields.insert(index, line)
            continue
        same = [i for i, f in enumerate(fields) if name_of(f) == name.decode().lower()]
        if value:
            fields[same[index - 1]] = line
        else:
            del fields[same[index - 1]]
    return b"".join(fields) + head.rest


def decision(verdict: Verdict, rcpts=("bob@partner.example",)) -> Decision:
    return Decision(Envelope("alice@example.ac.uk", tuple(rcpts)), None, (), verdict)


VERDICTS = [
    Verdict(Action.ACCEPT, ()),
    Verdict(Action.TAG, (RuleMatch("r1", "4.1", Action.TAG, "x"), RuleMatch("r2", "5.4", Action.TAG, "y")),
            tag=TagSpec((("X-Note", "caf\u00e9 " * 30),), "[EXTERNAL]")),
]


@pytest.mark.parametrize("verdict", VERDICTS)
def test_edits_applied_by_an_mta_give_the_tagged_message(make_settings, verdict):
    settings = make_settings()
    outcome = asyncio.run(act.act(decision(verdict), decision(verdict).envelope, RAW,
                                  [("bob@partner.example", b"<bob@partner.example>")], settings))
    packets = p.Decoder().feed(b"".join(outcome.packets))
    assert packets[-1].command == p.CONTINUE and outcome.reply is None
    assert apply(RAW, packets) == tagging.tag(RAW, verdict, settings)


def test_dkim_signature_goes_on_top_over_the_edited_message(make_settings, tmp_path):
    pem = tmp_path / "k.pem"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    pem.chmod(0o600)
    signer = Signer((load_key(DkimKey("example.ac.uk", "s1", pem)),), ("X-Policy-Action", "X-Policy-Rules"))
    settings = make_settings()
    verdict = VERDICTS[1]
    outcome = asyncio.run(act.act(decision(verdict), decision(verdict).envelope, RAW, [], settings, signer=signer))
    packets = p.Decoder().feed(b"".join(outcome.packets))
    edited = apply(RAW, packets)
    first = edited.split(b"\r\n", 1)[0]
    assert first.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    tagged = tagging.tag(RAW, verdict, settings)
    assert edited.endswith(tagged)
    body_hash = signer.signatures(tagged)[0].split(b"bh=")[1].split(b";")[0]
    assert b"bh=" + body_hash in edited                   # signed over the same output copy
    signed = re.search(rb"\bh=([^;]+);", edited.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b"")).group(1)
    names = [n.strip().lower() for n in signed.replace(b" ", b"").split(b":")]
    assert names.count(b"x-note") == 2                  # the rule's own tag header: signed and over-signed


def test_hold_without_a_store_is_a_tempfail_not_a_discard(make_settings):
    verdict = Verdict(Action.HOLD, (RuleMatch("h", "5.2", Action.HOLD, "held"),))
    outcome = asyncio.run(act.act(decision(verdict), decision(verdict).envelope, RAW, [], make_settings()))
    assert outcome.packets == (p.encode_replycode("451 4.3.0 Message must be held but no quarantine is configured, "
                                                  "try again later"),)


def test_per_recipient_reject_refuses_the_whole_message(make_settings):
    verdict = Verdict(Action.REJECT, (RuleMatch("x", "3.5", Action.REJECT, "too many"),),
                      {"a@partner.example": Action.REJECT, "b@example.ac.uk": Action.ACCEPT})
    d = decision(verdict, ("a@partner.example", "b@example.ac.uk"))
    outcome = asyncio.run(act.act(d, d.envelope, RAW, [], make_settings()))
    assert outcome.packets == (p.encode_replycode("550 5.7.1 too many [rule x, clause 3.5]"),)
    assert outcome.reply.code == 550
