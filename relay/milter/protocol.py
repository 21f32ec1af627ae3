"""The milter wire protocol (version 6, as Sendmail's libmilter and Postfix speak it): a sans-I/O codec.

Every packet, both ways, is a 4-byte big-endian length, then one command byte,
then ``length - 1`` bytes of data. The MTA sends commands (``SMFIC_*``); the
filter answers with responses (``SMFIR_*``) and, at end of body, modification
actions first. Strings on the wire are NUL-terminated.

:class:`Decoder` turns received bytes (any fragmentation) into :class:`Packet`
values and refuses a length of 0 or one past ``max_packet``; :func:`parse`
turns a packet into a typed command event or raises :class:`ProtocolError`
(unknown command, missing NUL, short fields). The ``encode_*`` functions
build the filter's responses. Nothing here does I/O, logs or knows the policy.

Why a packet may be larger than 64 KiB: body chunks are at most 65,535
bytes (no ``SMFIP_MDS_*`` is negotiated), but Postfix sends one header
field in one packet and its ``header_size_limit`` is 100 KiB. So the bound is
64 KiB of body plus 64 KiB of slack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

VERSION = 6
MAX_BODY_CHUNK = 65535
MAX_PACKET = 65536 + 65536          # see the module docstring

# --------------------------------------------------------------------------- commands (MTA -> filter)
ABORT = b"A"
BODY = b"B"
CONNECT = b"C"
MACRO = b"D"
BODYEOB = b"E"
HELO = b"H"
QUIT_NC = b"K"
HEADER = b"L"
MAIL = b"M"
EOH = b"N"
OPTNEG = b"O"
QUIT = b"Q"
RCPT = b"R"
DATA = b"T"
UNKNOWN = b"U"

# --------------------------------------------------------------------------- responses (filter -> MTA)
ADDRCPT = b"+"
DELRCPT = b"-"
ACCEPT = b"a"
CONTINUE = b"c"
DISCARD = b"d"
ADDHEADER = b"h"
INSHEADER = b"i"
CHGHEADER = b"m"
PROGRESS = b"p"
QUARANTINE = b"q"
REJECT = b"r"
TEMPFAIL = b"t"
REPLYCODE = b"y"

# --------------------------------------------------------------------------- actions (SMFIF_*)
SMFIF_ADDHDRS = 0x01
SMFIF_CHGBODY = 0x02
SMFIF_ADDRCPT = 0x04
SMFIF_DELRCPT = 0x08
SMFIF_CHGHDRS = 0x10
SMFIF_QUARANTINE = 0x20

# --------------------------------------------------------------------------- protocol steps (SMFIP_*)
SMFIP_NOCONNECT = 0x01
SMFIP_NOHELO = 0x02
SMFIP_NOMAIL = 0x04
SMFIP_NORCPT = 0x08
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_SKIP = 0x400
SMFIP_RCPT_REJ = 0x800
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_UNKN = 0x20000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000
SMFIP_HDR_LEADSPC = 0x100000

# The relay's wishes. Actions: add and change/delete headers, delete recipients
# (held for some), nothing else. Steps: no DATA or unknown-command events; no
# replies to connect, HELO, MAIL, each header and end of headers (nothing to
# say there: the verdict needs the whole message); replies to RCPT (recipient
# cap) and to each body chunk (size cap). Header values with their leading space.
WANTED_ACTIONS = SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_DELRCPT
WANTED_STEPS = (SMFIP_NODATA | SMFIP_NOUNKNOWN | SMFIP_NR_CONN | SMFIP_NR_HELO | SMFIP_NR_MAIL
                | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_HDR_LEADSPC)

# Which command a no-reply step flag silences.
NO_REPLY_FLAGS = {
    CONNECT: SMFIP_NR_CONN, HELO: SMFIP_NR_HELO, MAIL: SMFIP_NR_MAIL, RCPT: SMFIP_NR_RCPT,
    HEADER: SMFIP_NR_HDR, EOH: SMFIP_NR_EOH, BODY: SMFIP_NR_BODY, DATA: SMFIP_NR_DATA, UNKNOWN: SMFIP_NR_UNKN,
}

_LENGTH = struct.Struct(">I")
_OPTNEG = struct.Struct(">III")


class ProtocolError(Exception):
    """The peer broke the protocol; the connection must be closed. The text is safe to log."""


@dataclass(frozen=True, slots=True)
class Packet:
    command: bytes           # one byte
    data: bytes


class Decoder:
    """Packets out of a byte stream cut anywhere. ``feed`` raises :class:`ProtocolError`
    for a zero length or one past ``max_packet`` (checked before the data arrives)."""

    def __init__(self, max_packet: int = MAX_PACKET) -> None:
        self.max_packet = max_packet
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes received that do not make a whole packet yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        out: list[Packet] = []
        pos = 0
        buf = self._buffer
        while len(buf) - pos >= 4:
            (length,) = _LENGTH.unpack_from(buf, pos)
            if length == 0:
                raise ProtocolError("packet of length 0")
            if length > self.max_packet:
                raise ProtocolError(f"packet of {length} bytes is over the limit of {self.max_packet}")
            if len(buf) - pos - 4 < length:
                break
            start = pos + 4
            out.append(Packet(bytes(buf[start:start + 1]), bytes(buf[start + 1:start + length])))
            pos = start + length
        if pos:
            del buf[:pos]
        return out


def encode(command: bytes, data: bytes = b"") -> bytes:
    return _LENGTH.pack(len(data) + 1) + command + data


# --------------------------------------------------------------------------- command events


@dataclass(frozen=True, slots=True)
class OptNeg:
    version: int
    actions: int
    steps: int


@dataclass(frozen=True, slots=True)
class Macros:
    stage: bytes                         # the command these macros come with, e.g. b"C", b"M"
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class Connect:
    hostname: str
    family: str                          # "4", "6", "L" (unix socket) or "U" (unknown)
    port: int
    address: str


@dataclass(frozen=True, slots=True)
class Helo:
    name: str


@dataclass(frozen=True, slots=True)
class Mail:
    sender: bytes                        # as sent, angle brackets included
    args: tuple[str, ...]                # ESMTP parameters, e.g. ("SIZE=1234", "BODY=8BITMIME")


@dataclass(frozen=True, slots=True)
class Rcpt:
    recipient: bytes
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Header:
    name: bytes
    value: bytes                         # with its leading space when HDR_LEADSPC was negotiated


@dataclass(frozen=True, slots=True)
class EndOfHeaders:
    pass


@dataclass(frozen=True, slots=True)
class Body:
    chunk: bytes


@dataclass(frozen=True, slots=True)
class EndOfBody:
    chunk: bytes                         # normally empty; libmilter treats data here as body


@dataclass(frozen=True, slots=True)
class Abort:
    pass


@dataclass(frozen=True, slots=True)
class Quit:
    new_connection: bool = False         # SMFIC_QUIT_NC: the MTA reuses this connection


@dataclass(frozen=True, slots=True)
class Data:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    command: bytes


Event = (OptNeg | Macros | Connect | Helo | Mail | Rcpt | Header | EndOfHeaders | Body | EndOfBody | Abort
         | Quit | Data | Unknown)


def _strings(data: bytes, what: str, minimum: int = 1) -> list[bytes]:
    """NUL-terminated strings filling ``data`` exactly."""
    if not data.endswith(b"\0"):
        raise ProtocolError(f"{what}: data does not end with NUL")
    parts = data[:-1].split(b"\0")
    if len(parts) < minimum:
        raise ProtocolError(f"{what}: expected {minimum} strings, got {len(parts)}")
    return parts


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def parse(packet: Packet) -> Event:
    """The event a packet carries; :class:`ProtocolError` if it is malformed or unknown."""
    cmd, data = packet.command, packet.data
    if cmd == OPTNEG:
        if len(data) < _OPTNEG.size:
            raise ProtocolError("option negotiation: short packet")
        return OptNeg(*_OPTNEG.unpack_from(data))
    if cmd == MACRO:
        if not data:
            raise ProtocolError("macro: no stage")
        stage, rest = data[:1], data[1:]
        parts = _strings(rest, "macro", 0) if rest else []
        if len(parts) % 2:
            raise ProtocolError("macro: a name without a value")
        return Macros(stage, tuple((_text(parts[i]), _text(parts[i + 1])) for i in range(0, len(parts), 2)))
    if cmd == CONNECT:
        end = data.find(b"\0")
        if end < 0 or end + 1 >= len(data):
            raise ProtocolError("connect: malformed")
        hostname, family = _text(data[:end]), chr(data[end + 1])
        if family == "U":
            return Connect(hostname, family, 0, "")
        rest = data[end + 2:]
        if family not in "46L" or len(rest) < 3:
            raise ProtocolError("connect: malformed address")
        (port,) = struct.unpack_from(">H", rest)
        address = _strings(rest[2:], "connect address")
        return Connect(hostname, family, port, _text(address[0]))
    if cmd == HELO:
        return Helo(_text(_strings(data, "helo")[0]))
    if cmd in (MAIL, RCPT):
        parts = _strings(data, "mail" if cmd == MAIL else "rcpt")
        args = tuple(_text(p) for p in parts[1:] if p)
        return Mail(parts[0], args) if cmd == MAIL else Rcpt(parts[0], args)
    if cmd == HEADER:
        end = data.find(b"\0")
        if end <= 0 or end == len(data) - 1 or not data.endswith(b"\0"):
            raise ProtocolError("header: malformed")
        return Header(data[:end], data[end + 1:-1])
    if cmd == EOH:
        return EndOfHeaders()
    if cmd == BODY:
        return Body(data)
    if cmd == BODYEOB:
        return EndOfBody(data)
    if cmd == ABORT:
        return Abort()
    if cmd in (QUIT, QUIT_NC):
        return Quit(cmd == QUIT_NC)
    if cmd == DATA:
        return Data()
    if cmd == UNKNOWN:
        return Unknown(data.rstrip(b"\0"))
    raise ProtocolError(f"unknown command 0x{cmd.hex()}")


# --------------------------------------------------------------------------- negotiation


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both sides agreed: the actions we may take and the steps the MTA will skip or not await."""

    version: int
    actions: int
    steps: int

    def replies_to(self, command: bytes) -> bool:
        """Whether the MTA waits for an answer to ``command``."""
        flag = NO_REPLY_FLAGS.get(command)
        return flag is None or not self.steps & flag

    @property
    def leading_space(self) -> bool:
        return bool(self.steps & SMFIP_HDR_LEADSPC)


def negotiate(offer: OptNeg, actions: int = WANTED_ACTIONS, steps: int = WANTED_STEPS) -> Negotiated:
    """The answer to the MTA's offer: our wishes within what it offers.

    A version below 6 is refused (Postfix 2.6+ and Sendmail 8.14+ speak 6). An
    action we need and it does not offer is refused too: without header
    changes the relay could not tag nor remove a forged verdict.
    """
    if offer.version < VERSION:
        raise ProtocolError(f"MTA speaks milter protocol version {offer.version}; version {VERSION} is needed")
    if offer.actions & actions != actions:
        raise ProtocolError(f"MTA does not allow the actions needed (offered 0x{offer.actions:x}, "
                            f"needed 0x{actions:x})")
    return Negotiated(VERSION, actions, steps & offer.steps)


def encode_optneg(agreed: Negotiated) -> bytes:
    return encode(OPTNEG, _OPTNEG.pack(agreed.version, agreed.actions, agreed.steps))


# --------------------------------------------------------------------------- responses


def _z(value: bytes | str) -> bytes:
    raw = value.encode("utf-8") if isinstance(value, str) else value
    if b"\0" in raw:
        raise ValueError("NUL inside a milter string")
    return raw + b"\0"


def encode_continue() -> bytes:
    return encode(CONTINUE)


def encode_accept() -> bytes:
    return encode(ACCEPT)


def encode_discard() -> bytes:
    return encode(DISCARD)


def encode_tempfail() -> bytes:
    return encode(TEMPFAIL)


def encode_progress() -> bytes:
    return encode(PROGRESS)


def encode_replycode(reply: str) -> bytes:
    """``SMFIR_REPLYCODE``: a complete SMTP reply (``550 5.7.1 text``; lines joined by CRLF).

    ``%`` is doubled: the MTA uses the text as a format (libmilter's smfi_setreply rule)."""
    if not reply[:1] in ("4", "5") or not reply[:3].isdigit():
        raise ValueError("a milter reply code must be 4xx or 5xx")
    return encode(REPLYCODE, _z(reply.replace("%", "%%")))


def encode_addheader(name: str, value: str) -> bytes:
    return encode(ADDHEADER, _z(name) + _z(value))


def encode_insheader(index: int, name: str, value: str) -> bytes:
    return encode(INSHEADER, _LENGTH.pack(index) + _z(name) + _z(value))


def encode_chgheader(index: int, name: str, value: str) -> bytes:
    """Change the ``index``-th (1-based) field called ``name``; an empty value deletes it."""
    return encode(CHGHEADER, _LENGTH.pack(index) + _z(name) + _z(value))


def encode_delrcpt(recipient: bytes) -> bytes:
    return encode(DELRCPT, _z(recipient))


def encode_quarantine(reason: str) -> bytes:
    return encode(QUARANTINE, _z(reason))
