"""The milter codec: recorded Postfix exchanges, fragmentation, hostile packets, negotiation."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from relay.milter import protocol as p

DATA = Path(__file__).parent / "data"
FROM_POSTFIX = (DATA / "postfix-to-milter.bin").read_bytes()     # recorded from Postfix 3.7 (integration test)
TO_POSTFIX = (DATA / "milter-to-postfix.bin").read_bytes()


def commands(packets):
    return [pk.command for pk in packets]


def test_recorded_postfix_session_decodes_and_reencodes_byte_for_byte():
    packets = p.Decoder().feed(FROM_POSTFIX)
    assert b"".join(p.encode(pk.command, pk.data) for pk in packets) == FROM_POSTFIX
    events = [p.parse(pk) for pk in packets]
    offer = events[0]
    assert offer == p.OptNeg(6, 0x1FF, 0x1FFFFF)
    connect = next(e for e in events if isinstance(e, p.Connect))
    assert connect == p.Connect("[127.0.0.1]", "4", connect.port, "127.0.0.1") and connect.port > 0
    mails = [e for e in events if isinstance(e, p.Mail)]
    assert [m.sender for m in mails] == [b"<alice@example.ac.uk>"] * 2
    assert all(m.args[0].startswith("size=") for m in mails)
    rcpts = [e.recipient for e in events if isinstance(e, p.Rcpt)]
    assert rcpts == [b"<bob@partner.example>", b"<bob@partner.example>", b"<carol@example.ac.uk>"]
    headers = [e for e in events if isinstance(e, p.Header)]
    assert headers[0] == p.Header(b"From", b" Alice <alice@example.ac.uk>")         # leading space kept
    assert p.Header(b"X-Folded", b" one\n\ttwo") in headers                         # folds arrive as LF
    assert [e.chunk for e in events if isinstance(e, p.Body)] == [b"See you at noon.\r\n",
                                                                   b"NI number AB123456C for Bob Smith.\r\n"]
    macros = [e for e in events if isinstance(e, p.Macros)]
    assert ("{mail_addr}", "alice@example.ac.uk") in macros[2].values or any(
        ("{mail_addr}", "alice@example.ac.uk") in m.values for m in macros)
    assert isinstance(events[-1], p.Quit) and not events[-1].new_connection


def test_recorded_replies_are_what_the_encoders_make():
    ours = p.Decoder().feed(TO_POSTFIX)
    agreed = p.negotiate(p.OptNeg(6, 0x1FF, 0x1FFFFF))
    assert p.encode(ours[0].command, ours[0].data) == p.encode_optneg(agreed)
    assert p.encode_chgheader(1, "X-Policy-Action", "") in TO_POSTFIX
    assert p.encode_insheader(0, "X-Policy-Action", " tag") in TO_POSTFIX
    assert p.encode_delrcpt(b"<bob@partner.example>") in TO_POSTFIX
    assert commands(ours).count(p.CONTINUE) >= 2


def test_byte_by_byte_and_random_cuts_give_the_same_packets():
    whole = p.Decoder().feed(FROM_POSTFIX)
    one = p.Decoder()
    got = []
    for i in range(len(FROM_POSTFIX)):
        got += one.feed(FROM_POSTFIX[i:i + 1])
    assert got == whole and one.pending == 0
    rng = random.Random(7)
    for _ in range(20):
        cuts = sorted(rng.sample(range(1, len(FROM_POSTFIX)), 12))
        decoder, got = p.Decoder(), []
        for a, b in zip([0, *cuts], [*cuts, len(FROM_POSTFIX)]):
            got += decoder.feed(FROM_POSTFIX[a:b])
        assert got == whole


def test_a_partial_packet_waits_for_the_rest():
    decoder = p.Decoder()
    packet = p.encode(p.HELO, b"client.example\0")
    assert decoder.feed(packet[:3]) == [] and decoder.feed(packet[3:7]) == []
    assert decoder.feed(packet[7:]) == [p.Packet(p.HELO, b"client.example\0")]


@pytest.mark.parametrize("length", [0, p.MAX_PACKET + 1, 0xFFFFFFFF])
def test_bad_lengths_are_refused_before_any_data(length):
    with pytest.raises(p.ProtocolError):
        p.Decoder().feed(struct.pack(">I", length))


def test_largest_packet_is_accepted():
    data = b"x" * (p.MAX_PACKET - 1)
    assert p.Decoder().feed(p.encode(p.BODY, data)) == [p.Packet(p.BODY, data)]


@pytest.mark.parametrize("packet", [
    p.Packet(b"Z", b""),                                   # unknown command
    p.Packet(b"\x00", b""),
    p.Packet(p.OPTNEG, b"\0\0\0\6"),                       # short negotiation
    p.Packet(p.HEADER, b"Subject\0 no terminator"),
    p.Packet(p.HEADER, b"\0 value\0"),                     # no name
    p.Packet(p.HEADER, b"Subject\0"),                      # no value
    p.Packet(p.MAIL, b"<a@b>"),
    p.Packet(p.HELO, b""),
    p.Packet(p.CONNECT, b"host"),
    p.Packet(p.CONNECT, b"host\0" + b"9" + b"\0\x19127.0.0.1\0"),      # unknown family
    p.Packet(p.CONNECT, b"host\0" + b"4" + b"\0"),                      # short address
    p.Packet(p.MACRO, b""),
    p.Packet(p.MACRO, b"Mname\0"),                         # odd: a name without its value
])
def test_malformed_packets_raise_protocol_error(packet):
    with pytest.raises(p.ProtocolError):
        p.parse(packet)


def test_connect_of_an_unknown_family_and_a_unix_socket():
    assert p.parse(p.Packet(p.CONNECT, b"localhost\0U")) == p.Connect("localhost", "U", 0, "")
    assert p.parse(p.Packet(p.CONNECT, b"h\0L\0\0/run/x\0")) == p.Connect("h", "L", 0, "/run/x")


def test_negotiation_takes_what_the_mta_offers_and_refuses_too_little():
    agreed = p.negotiate(p.OptNeg(6, 0x1FF, p.SMFIP_NR_HDR | p.SMFIP_NODATA))
    assert agreed.steps == p.SMFIP_NR_HDR | p.SMFIP_NODATA
    assert not agreed.replies_to(p.HEADER) and agreed.replies_to(p.MAIL) and agreed.replies_to(p.BODY)
    assert not agreed.leading_space
    with pytest.raises(p.ProtocolError, match="version 2"):
        p.negotiate(p.OptNeg(2, 0x1FF, 0x7F))
    with pytest.raises(p.ProtocolError, match="actions"):
        p.negotiate(p.OptNeg(6, p.SMFIF_ADDHDRS, 0x1FFFFF))


def test_replycode_is_checked_and_percent_doubled():
    assert p.encode_replycode("550 5.7.1 100% sure") == p.encode(p.REPLYCODE, b"550 5.7.1 100%% sure\0")
    for bad in ("250 2.0.0 ok", "abc", ""):
        with pytest.raises(ValueError):
            p.encode_replycode(bad)
    with pytest.raises(ValueError):
        p.encode_addheader("X-A", "a\0b")
