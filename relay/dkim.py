"""DKIM signing of outgoing mail: the very last change before forwarding.

:meth:`Signer.from_settings` loads every key of ``settings.signing_keys`` at
start-up and checks it (PEM, unencrypted, RSA of 2048 bits or more, or
Ed25519), raising :class:`ConfigError` with the key's path otherwise.
:meth:`Signer.sign` picks the keys by the domain of the From header (the
keys whose domain is that domain or its nearest parent), or, when
``settings.dkim_envelope_fallback`` is on and From has no key, by the envelope
sender's domain. Mail for a domain without a key goes out unsigned, returned
unchanged. A domain with both an RSA and an Ed25519 key gets both signatures
(dual signing, the usual practice while few receivers verify Ed25519); of
several keys of one type, the first configured signs (rotation: list the new
key first).

Signatures (RFC 6376, relaxed/relaxed; RFC 8463 for Ed25519) cover the
recommended fields, List-* and the relay's own X-Policy-* fields. From,
Subject, To, Date and the relay's fields are over-signed (listed once more
than they occur), so none can be added after signing without breaking it.
The message must be CRLF-clean, as the SMTP front guarantees (it refuses bare
CR and LF): the signature covers the bytes exactly as they go out.

Why not dkimpy's ``dkim.sign``: it does RSA in pure Python (``pow`` on
2048-bit numbers, about 50-100 ms a message here) and canonicalises the body
with regular expressions that touch every space (about 0.3 s a megabyte),
both holding the GIL, so the event loop would stall even with signing in a
worker thread. Here the RSA and Ed25519 operations are OpenSSL's (through
``cryptography``, about 1 ms), hashing releases the GIL, and the body pass
only touches the whitespace relaxed canonicalisation changes. Every signature
is checked by two independent verifiers (OpenDKIM, Perl Mail::DKIM) in
``tests/integration/test_dkim_verify.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from relay.config import DkimKey, Settings
from relay.errors import ConfigError
from relay.tagging import Field, header_domain, split_head, tag
from relay.verdict import Verdict

MIN_RSA_BITS = 2048

SIGNED = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
)
OVERSIGNED = ("from", "subject", "to", "date")

_LINE_BREAK = re.compile(rb"\r\n|\n|\r")
_WSP = re.compile(rb"[\t ]+")
_SPACES = re.compile(rb"  +")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One loaded key. The private key never shows in a repr."""

    domain: str                 # IDNA A-labels, lower case
    selector: str
    algorithm: str              # "rsa-sha256" or "ed25519-sha256"
    bits: int
    path: Path
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)

    def sign(self, data: bytes) -> bytes:
        if isinstance(self.private, rsa.RSAPrivateKey):
            return self.private.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return self.private.sign(hashlib.sha256(data).digest())     # RFC 8463: Ed25519 over the SHA-256


def normalise_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA A-labels where the name allows it."""
    text = domain.strip().rstrip(".").lower()
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


def is_dns_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and label.isascii() and label.replace("-", "").replace("_", "").isalnum()
        for label in labels
    )


def load_key(entry: DkimKey) -> SigningKey:
    """Read and check one configured key; :class:`ConfigError` names what is wrong."""
    where = f"DKIM key {entry.key} (domain {entry.domain!r}, selector {entry.selector!r})"
    try:
        data = entry.key.read_bytes()
        mode = entry.key.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    if mode & 0o077:
        structlog.get_logger("relay.dkim").warning("dkim.key_readable_by_others", path=str(entry.key),
                                                   mode=oct(mode & 0o777))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{where}: the key is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where}: not a PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where}: RSA key of {key.key_size} bits; use at least {MIN_RSA_BITS}")
        algorithm, bits = "rsa-sha256", key.key_size
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        algorithm, bits = "ed25519-sha256", 256
    else:
        raise ConfigError(f"{where}: unsupported key type; use RSA ({MIN_RSA_BITS} bits or more) or Ed25519")
    domain = normalise_domain(entry.domain)
    if not is_dns_name(domain) or not is_dns_name(entry.selector):
        raise ConfigError(f"{where}: domain and selector must be DNS names")
    return SigningKey(domain, entry.selector, algorithm, bits, entry.key, key)


# --------------------------------------------------------------------------- RFC 6376 relaxed


def _relax_lines(chunk: bytes, last: bool) -> bytes:
    """Relaxed canonicalisation of whole lines (trailing empty lines left in)."""
    chunk = chunk.replace(b"\t", b" ")
    if b"  " in chunk:
        chunk = _SPACES.sub(b" ", chunk)
    chunk = chunk.replace(b" \r\n", b"\r\n")
    if last and chunk.endswith(b" "):       # an unterminated last line
        chunk = chunk[:-1]
    return chunk


def _without_trailing_crlfs(data: bytes) -> bytes:
    end = len(data)
    while data.endswith(b"\r\n", 0, end):
        end -= 2
    return data[:end]


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4: runs of WSP become one SP, none at line ends, no empty lines at the end.

    Written with bytes.replace and one literal-prefixed pattern: a character-class
    regex over the whole body costs about ten times more (measured in bench/dkim_sign.py)."""
    body = _without_trailing_crlfs(_relax_lines(body, last=True))
    return body + b"\r\n" if body else b""


BODY_CHUNK = 1 << 20


def body_hash(body: bytes, chunk: int = BODY_CHUNK) -> bytes:
    """SHA-256 of :func:`relaxed_body` (``body``), a megabyte of whole lines at a time,
    so a 25 MB message never holds the GIL for more than a few milliseconds at once."""
    digest = hashlib.sha256()
    pending = 0                # CRLFs held back: they are dropped if nothing follows them
    wrote = False
    pos = 0
    while pos < len(body):
        cut = body.find(b"\r\n", pos + chunk)
        end = len(body) if cut < 0 else cut + 2
        part = _relax_lines(body[pos:end], last=end == len(body))
        kept = _without_trailing_crlfs(part)
        if kept:
            digest.update(b"\r\n" * pending)
            digest.update(kept)
            pending, wrote = 0, True
        pending += (len(part) - len(kept)) // 2
        pos = end
    if wrote:
        digest.update(b"\r\n")
    return digest.digest()


def relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 3.4.2: ``name:value`` lower-case name, unfolded, WSP runs as one SP, trimmed."""
    name, _, value = raw.partition(b":")
    value = _WSP.sub(b" ", _LINE_BREAK.sub(b"", value)).strip(b" ")
    return name.strip(b" \t").lower() + b":" + value


def signed_header_names(raw: bytes, own: tuple[str, ...] = ()) -> list[str]:
    """The h= list for ``raw``: each signed field as often as it occurs, the
    over-signed ones (and ``own``) once more, so none can be added later."""
    counts: dict[str, int] = {}
    for f in split_head(raw).fields:
        if f.key:
            counts[f.key] = counts.get(f.key, 0) + 1
    over = set(OVERSIGNED) | {n.lower() for n in own}
    names = list(SIGNED) + sorted(k for k in counts if k.startswith("list-"))
    names += [n.lower() for n in own if n.lower() not in names]
    out: list[str] = []
    for name in names:
        out += [name] * (counts.get(name, 0) + (1 if name in over else 0))
    return out


def _selected(fields: tuple[Field, ...], names: list[str]) -> list[bytes]:
    """The fields h= names, in h= order, each name taking its instances bottom-up (RFC 6376 5.4.2)."""
    by_name: dict[str, list[Field]] = {}
    for f in fields:
        by_name.setdefault(f.key, []).append(f)
    out = []
    for name in names:
        if by_name.get(name):
            out.append(relaxed_header(by_name[name].pop().raw))
    return out


def _fold(pieces: list[str], first: str) -> str:
    """Join ``pieces`` after ``first``, breaking lines (CRLF SP) before 78 columns."""
    lines, line = [], first
    for piece in pieces:
        if len(line) + len(piece.rstrip()) > 78 and line.strip():
            lines.append(line.rstrip())
            line = " "
        line += piece
    lines.append(line)
    return "\r\n".join(lines)


def make_signature(key: SigningKey, raw: bytes, own: tuple[str, ...] = (), now: int | None = None) -> bytes:
    """The complete ``DKIM-Signature`` field (folded, CRLF-terminated) for ``raw``."""
    head = split_head(raw)
    rest = head.rest
    body = rest[2:] if rest.startswith(b"\r\n") else rest[1:] if rest[:1] in (b"\n", b"\r") else rest
    bh = base64.b64encode(body_hash(body)).decode("ascii")
    names = signed_header_names(raw, own)
    stamp = int(time.time()) if now is None else now
    pieces = ["v=1; ", f"a={key.algorithm}; ", "c=relaxed/relaxed; ", f"d={key.domain}; ",
              f"s={key.selector}; ", f"t={stamp}; ", "h="]
    pieces += [n + ":" for n in names[:-1]] + [names[-1] + "; ", f"bh={bh}; ", "b="]
    unsigned = _fold(pieces, "DKIM-Signature: ")
    data = b"".join(h + b"\r\n" for h in _selected(head.fields, names))
    data += relaxed_header(unsigned.encode("ascii"))      # b= empty, no CRLF (RFC 6376 3.7)
    signature = base64.b64encode(key.sign(data)).decode("ascii")
    room = 78 - len(unsigned.rsplit("\r\n", 1)[-1])
    if room < 16:                          # start the value on a line of its own
        unsigned, room = unsigned + "\r\n ", 77
    chunks = [signature[:room]] + [signature[i:i + 76] for i in range(room, len(signature), 76)]
    return (unsigned + "\r\n ".join(chunks) + "\r\n").encode("ascii")


# --------------------------------------------------------------------------- the signer


class Signer:
    """Signs messages with the keys of their From domain. Build with :meth:`from_settings`."""

    def __init__(self, keys: tuple[SigningKey, ...], own_headers: tuple[str, ...] = (),
                 envelope_fallback: bool = False) -> None:
        self.keys = keys
        self.own_headers = own_headers
        self.envelope_fallback = envelope_fallback
        self._by_domain: dict[str, tuple[SigningKey, ...]] = {}
        for key in keys:      # one key per algorithm and domain: the first configured one
            have = self._by_domain.get(key.domain, ())
            if all(k.algorithm != key.algorithm for k in have):
                self._by_domain[key.domain] = have + (key,)

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer | None:
        """A signer with every configured key loaded and checked, or None if there is none."""
        entries = settings.signing_keys
        if not entries:
            return None
        keys = tuple(load_key(entry) for entry in entries)
        return cls(keys, (settings.action_header, settings.rules_header), settings.dkim_envelope_fallback)

    def keys_for(self, domain: str) -> tuple[SigningKey, ...]:
        """The keys of ``domain``, or of its nearest parent domain that has some."""
        labels = normalise_domain(domain).split(".") if domain else []
        for i in range(len(labels)):
            keys = self._by_domain.get(".".join(labels[i:]))
            if keys:
                return keys
        return ()

    def choose(self, raw: bytes, mail_from: str = "") -> tuple[SigningKey, ...]:
        """The keys that sign ``raw``: its From domain's, else (if allowed) the envelope sender's."""
        keys = self.keys_for(header_domain(raw, "From"))
        if not keys and self.envelope_fallback and "@" in mail_from:
            keys = self.keys_for(mail_from.rpartition("@")[2])
        return keys

    def signatures(self, raw: bytes, mail_from: str = "") -> list[bytes]:
        """The DKIM-Signature fields for ``raw`` (blocking): one per key type of the
        chosen domain (RSA and Ed25519 side by side), or none."""
        if not raw.strip():
            return []
        return [make_signature(key, raw, self.own_headers) for key in self.choose(raw, mail_from)]

    def sign_sync(self, raw: bytes, mail_from: str = "") -> bytes:
        """``raw`` with its DKIM-Signature fields prepended (blocking; see :meth:`sign`)."""
        sigs = self.signatures(raw, mail_from)
        return b"".join(sigs) + raw if sigs else raw

    async def sign(self, raw: bytes, mail_from: str = "") -> bytes:
        """``raw`` with DKIM-Signature fields on top, or unchanged when there is no key
        for its domain. The hashing and signing run in a worker thread."""
        return await asyncio.to_thread(self.sign_sync, raw, mail_from)

    def sign_headers(self, raw: bytes, mail_from: str = "") -> list[tuple[str, str]]:
        """(name, value) of each DKIM-Signature field, for a milter's ``insheader(0, ...)``.
        Values are folded with LF + space, as libmilter and Postfix expect.
        Blocking: call it through ``asyncio.to_thread`` from async code."""
        out = []
        for sig in self.signatures(raw, mail_from):
            name, _, value = sig.decode("ascii").partition(":")
            out.append((name, value.strip().replace("\r\n", "\n")))
        return out

    def sign_header(self, raw: bytes, mail_from: str = "") -> tuple[str, str] | None:
        """The first of :meth:`sign_headers` (the only one unless a domain has both an
        RSA and an Ed25519 key), or None when the message goes unsigned."""
        found = self.sign_headers(raw, mail_from)
        return found[0] if found else None


async def outgoing(raw: bytes, verdict: Verdict, settings: Settings, signer: Signer | None,
                   mail_from: str = "") -> bytes:
    """The act stage's whole edit of forwarded mail, and of mail a reviewer releases:
    the output copy of ``raw`` tagged (:func:`relay.tagging.tag`), then signed last."""
    out = tag(raw, verdict, settings)
    return out if signer is None else await signer.sign(out, mail_from)
