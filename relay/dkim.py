"""DKIM signing of outgoing mail: the very last change before forwarding.

:meth:`Signer.from_settings` loads every key of ``settings.signing_keys`` at
start-up and checks it (PEM, unencrypted, RSA of 2048 bits or more, or
Ed25519; a trial signature must succeed), raising :class:`ConfigError` with
the key's path otherwise. :meth:`Signer.sign` picks the key by the domain of
the From header (the longest key domain equal to it or a parent of it), or,
when ``settings.dkim_envelope_fallback`` is on and From has no key, by the
envelope sender's domain. Mail for a domain without a key goes out unsigned,
returned unchanged.

Signatures are relaxed/relaxed, made by dkimpy off the event loop. They cover
the RFC 6376 recommended fields, List-* and the relay's own X-Policy-* fields;
From, Subject, To, Date and the relay's fields are over-signed (listed once
more than they occur), so none can be added after signing without breaking it.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from pathlib import Path

import dkim as dkimpy
import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from relay.config import DkimKey, Settings
from relay.errors import ConfigError
from relay.tagging import header_domain, split_head, tag
from relay.verdict import Verdict

log = structlog.get_logger("relay.dkim")

MIN_RSA_BITS = 2048

SIGNED = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
)
OVERSIGNED = ("from", "subject", "to", "date")

_TRIAL = b"From: a@example.invalid\r\nSubject: key check\r\n\r\nkey check\r\n"


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One loaded key, ready for dkimpy. The secret never shows in a repr."""

    domain: str                 # IDNA A-labels, lower case
    selector: str
    algorithm: bytes            # b"rsa-sha256" or b"ed25519-sha256"
    bits: int
    path: Path
    secret: bytes = field(repr=False)   # PKCS#1 PEM (RSA) or base64 seed (Ed25519)


def normalise_domain(domain: str) -> str:
    """Lower case, no trailing dot, IDNA A-labels where the name allows it."""
    text = domain.strip().rstrip(".").lower()
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return text


def load_key(entry: DkimKey) -> SigningKey:
    """Read and check one configured key; :class:`ConfigError` names what is wrong."""
    where = f"DKIM key {entry.key} (domain {entry.domain!r}, selector {entry.selector!r})"
    try:
        data = entry.key.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(f"{where}: the key is encrypted; give an unencrypted PEM key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(f"{where}: not a PEM private key") from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ConfigError(f"{where}: RSA key of {key.key_size} bits; use at least {MIN_RSA_BITS}")
        secret = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                   serialization.NoEncryption())
        algorithm, bits = b"rsa-sha256", key.key_size
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        secret, algorithm, bits = base64.b64encode(raw), b"ed25519-sha256", 256
    else:
        raise ConfigError(f"{where}: unsupported key type; use RSA ({MIN_RSA_BITS} bits or more) or Ed25519")
    domain = normalise_domain(entry.domain)
    if not is_dns_name(domain) or not is_dns_name(entry.selector):
        raise ConfigError(f"{where}: domain and selector must be DNS names")
    loaded = SigningKey(domain, entry.selector, algorithm, bits, entry.key, secret)
    try:
        _sign_with(loaded, _TRIAL)
    except Exception as exc:   # dkimpy, nacl: any failure means the key cannot sign
        raise ConfigError(f"{where}: a trial signature failed ({type(exc).__name__})") from None
    return loaded


def is_dns_name(name: str) -> bool:
    labels = name.split(".")
    return 0 < len(name) <= 253 and all(
        0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum() and label.isascii()
        for label in labels
    )


def signed_header_names(raw: bytes, own: tuple[str, ...] = ()) -> list[bytes]:
    """The h= list for ``raw``: each signed field as often as it occurs, the
    over-signed ones (and ``own``) once more, so none can be added later."""
    counts: dict[str, int] = {}
    for f in split_head(raw).fields:
        if f.key:
            counts[f.key] = counts.get(f.key, 0) + 1
    over = set(OVERSIGNED) | {n.lower() for n in own}
    names = list(SIGNED) + sorted(k for k in counts if k.startswith("list-"))
    names += [n.lower() for n in own if n.lower() not in names]
    out: list[bytes] = []
    for name in names:
        out += [name.encode("ascii")] * (counts.get(name, 0) + (1 if name in over else 0))
    return out


def _sign_with(key: SigningKey, raw: bytes, own: tuple[str, ...] = ()) -> bytes:
    """The DKIM-Signature field (name, value, CRLF) for ``raw`` made with ``key``."""
    return dkimpy.sign(
        raw, key.selector.encode("ascii"), key.domain.encode("ascii"), key.secret,
        canonicalize=(b"relaxed", b"relaxed"), include_headers=signed_header_names(raw, own),
        signature_algorithm=key.algorithm,
    )


class Signer:
    """Signs messages with the key of their From domain. Build with :meth:`from_settings`."""

    def __init__(self, keys: tuple[SigningKey, ...], own_headers: tuple[str, ...] = (),
                 envelope_fallback: bool = False) -> None:
        self.keys = keys
        self.own_headers = own_headers
        self.envelope_fallback = envelope_fallback
        self._by_domain: dict[str, SigningKey] = {}
        for key in keys:
            self._by_domain.setdefault(key.domain, key)   # the first key of a domain wins

    @classmethod
    def from_settings(cls, settings: Settings) -> Signer | None:
        """A signer with every configured key loaded and checked, or None if there is none."""
        entries = settings.signing_keys
        if not entries:
            return None
        keys = tuple(load_key(entry) for entry in entries)
        return cls(keys, (settings.action_header, settings.rules_header),
                   settings.dkim_envelope_fallback)

    def key_for(self, domain: str) -> SigningKey | None:
        """The key of ``domain`` or of its nearest parent domain that has one."""
        labels = normalise_domain(domain).split(".") if domain else []
        for i in range(len(labels)):
            key = self._by_domain.get(".".join(labels[i:]))
            if key is not None:
                return key
        return None

    def choose(self, raw: bytes, mail_from: str = "") -> SigningKey | None:
        key = self.key_for(header_domain(raw, "From"))
        if key is None and self.envelope_fallback and "@" in mail_from:
            key = self.key_for(mail_from.rpartition("@")[2])
        return key

    def signature(self, raw: bytes, mail_from: str = "") -> bytes | None:
        """The DKIM-Signature field for ``raw`` (blocking), or None when it goes unsigned."""
        key = self.choose(raw, mail_from)
        if key is None or not raw.strip():
            return None
        try:
            return _sign_with(key, raw, self.own_headers)
        except dkimpy.DKIMException as exc:
            # dkimpy cannot parse this message: it goes out unsigned, as mail for
            # a domain without a key does; the policy already judged the message.
            log.warning("dkim.unsigned", domain=key.domain, selector=key.selector, error=type(exc).__name__)
            return None

    def sign_sync(self, raw: bytes, mail_from: str = "") -> bytes:
        """``raw`` with the DKIM-Signature field prepended (blocking; see :meth:`sign`)."""
        sig = self.signature(raw, mail_from)
        return raw if sig is None else sig + raw

    async def sign(self, raw: bytes, mail_from: str = "") -> bytes:
        """``raw`` with a DKIM-Signature field on top, or unchanged when there is no key
        for its domain. Runs in a worker thread: RSA signing takes about a millisecond."""
        if self.choose(raw, mail_from) is None:
            return raw
        return await asyncio.to_thread(self.sign_sync, raw, mail_from)

    def sign_header(self, raw: bytes, mail_from: str = "") -> tuple[str, str] | None:
        """(name, value) of the DKIM-Signature field for a milter's ``insheader(0, ...)``,
        or None. The value is folded with LF + space, as libmilter and Postfix expect.
        Blocking: call it through ``asyncio.to_thread`` from async code."""
        sig = self.signature(raw, mail_from)
        if sig is None:
            return None
        name, _, value = sig.decode("ascii").partition(":")
        return name, value.strip().replace("\r\n", "\n")


async def outgoing(raw: bytes, verdict: Verdict, settings: Settings, signer: Signer | None,
                   mail_from: str = "") -> bytes:
    """The act stage's whole edit of forwarded mail, and of mail a reviewer releases:
    the output copy of ``raw`` tagged (:func:`relay.tagging.tag`), then signed last."""
    out = tag(raw, verdict, settings)
    return out if signer is None else await signer.sign(out, mail_from)
