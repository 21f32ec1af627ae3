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
key first). A message with more than one From field is never signed (RFC 5322
3.6 allows one; RFC 7489 6.6.1: which From would the signature vouch for?).

The signatures are dkimpy's (``dkim.DKIM.sign``; RFC 6376, relaxed/relaxed;
RFC 8463 Ed25519 through PyNaCl). They cover the recommended fields, List-*,
and the relay's own tag fields (its action and rules headers, and the extra
headers a tag rule adds: the caller passes those names, see
:func:`relay.tagging.owned_names`). From, Subject, To, Date and the relay's
fields are over-signed: dkimpy signs a name listed once more than it occurs
as "absent", so none can be added after signing without breaking it.

One part of dkimpy is swapped: its RSA private-key operation. ``DKIM.gen_header``
calls the module-global ``dkim.RSASSA_PKCS1_v1_5_sign(hash, pk)``, which does
the RSA arithmetic in Python (``pow`` on 2048-bit integers, holding the GIL):
measured here about 14 ms of a 21 ms signature of a 20 KB message. Importing
this module replaces that one name with :func:`openssl_rsa_sign`, which signs
the same digest with OpenSSL (``cryptography``, PKCS#1 v1.5, under 1 ms).
PKCS#1 v1.5 is deterministic, so the signature bytes are identical to
dkimpy's own (tests/unit/test_dkim.py checks it on several keys); everything
else (header selection, canonicalisation, the field's layout) stays dkimpy's.
What is left is dkimpy's canonicalisation in regular expressions, about 0.1 s
of CPU a megabyte of body (bench/dkim_sign.py). A regular expression holds the
GIL for the whole string, so over a large body one call would stall the event
loop (and every other session) for as long as it runs, although signing runs
in a thread. So dkimpy's relaxed body canonicalisation is also replaced, by
:func:`relaxed_body`: the same dkimpy functions over line-aligned pieces of
``BODY_PIECE`` bytes (relaxed canonicalisation is line-local; only trailing
empty lines need the whole body), which lets the loop run between pieces; and
:func:`make_signature` hands dkimpy the body as it is instead of letting its
parser split the whole message into lines and join them again (the same bytes
when every line ends in CRLF, which is checked). Both give byte-identical
signatures to plain dkimpy (tests/unit/test_dkim.py).

Every signature is checked by two independent verifiers (OpenDKIM, Perl
Mail::DKIM) in ``tests/integration/test_dkim_verify.py``.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dkim as dkimpy
import dkim.canonicalization as dkimpy_canon
import dkim.crypto as dkimpy_crypto
import structlog
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from relay.config import DkimKey, Settings
from relay.errors import ConfigError
from relay.tagging import Field, Head, header_domain, owned_names, split_head, tag
from relay.verdict import Verdict

MIN_RSA_BITS = 2048

SIGNED = (
    "from", "sender", "reply-to", "to", "cc", "subject", "date", "message-id",
    "in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
)
OVERSIGNED = ("from", "subject", "to", "date")
_NEVER_SIGNED = frozenset(name.decode("ascii") for name in dkimpy.DKIM.SHOULD_NOT)   # dkimpy refuses these

_log = structlog.get_logger("relay.dkim")


# --------------------------------------------------------------------------- dkimpy's RSA, by OpenSSL


PURE_RSA_SIGN = dkimpy_crypto.RSASSA_PKCS1_v1_5_sign      # dkimpy's own, kept for hashes we do not map
_PREHASHED = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_OPENSSL_KEYS: dict[int, rsa.RSAPrivateKey] = {}           # by modulus
_MAX_CACHED_KEYS = 64


def _openssl_key(pk: dict) -> rsa.RSAPrivateKey:
    """The OpenSSL key for dkimpy's parsed key ``pk``, built once per modulus."""
    key = _OPENSSL_KEYS.get(pk["modulus"])
    if key is None:
        public = rsa.RSAPublicNumbers(pk["publicExponent"], pk["modulus"])
        key = rsa.RSAPrivateNumbers(p=pk["prime1"], q=pk["prime2"], d=pk["privateExponent"],
                                    dmp1=pk["exponent1"], dmq1=pk["exponent2"], iqmp=pk["coefficient"],
                                    public_numbers=public).private_key()
        _remember(key)
    return key


def _remember(key: rsa.RSAPrivateKey) -> None:
    if len(_OPENSSL_KEYS) >= _MAX_CACHED_KEYS:
        _OPENSSL_KEYS.clear()
    _OPENSSL_KEYS[key.public_key().public_numbers().n] = key


def openssl_rsa_sign(hash, private_key: dict) -> bytes:   # noqa: A002 - dkimpy's parameter name
    """Drop-in for ``dkim.crypto.RSASSA_PKCS1_v1_5_sign``: RSASSA-PKCS1-v1_5 over
    ``hash.digest()`` (a hashlib-like object with ``.name``) with OpenSSL."""
    algorithm = _PREHASHED.get(hash.name.lower())
    if algorithm is None:
        return PURE_RSA_SIGN(hash, private_key)
    try:
        return _openssl_key(private_key).sign(hash.digest(), padding.PKCS1v15(), utils.Prehashed(algorithm()))
    except ValueError:              # a modulus too small for the digest, as dkimpy says it
        raise dkimpy_crypto.DigestTooLargeError() from None


dkimpy.RSASSA_PKCS1_v1_5_sign = openssl_rsa_sign


# --------------------------------------------------------------------------- dkimpy's relaxed body, in pieces


BODY_PIECE = 32 * 1024          # bytes a regular expression holds the GIL over at most (about 4 ms)
PURE_RELAXED_BODY = dkimpy_canon.Relaxed.canonicalize_body


def relaxed_body(body: bytes, piece: int = BODY_PIECE) -> bytes:
    """dkimpy's relaxed body canonicalisation (RFC 6376 3.4.4), a piece of about
    ``piece`` bytes at a time, each piece ending after a line feed: trailing
    whitespace and whitespace runs never cross a line end, so the pieces'
    results joined are the whole body's; trailing empty lines are then dropped
    from the whole."""
    if len(body) <= piece:
        return PURE_RELAXED_BODY(body)
    parts, start, n = [], 0, len(body)
    while start < n:
        cut = body.find(b"\n", min(start + piece, n))
        end = n if cut < 0 else cut + 1
        parts.append(dkimpy_canon.compress_whitespace(dkimpy_canon.strip_trailing_whitespace(body[start:end])))
        start = end
    return dkimpy_canon.correct_empty_body(dkimpy_canon.strip_trailing_lines(b"".join(parts)))


dkimpy_canon.Relaxed.canonicalize_body = staticmethod(relaxed_body)


# --------------------------------------------------------------------------- keys


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One loaded key. The private key never shows in a repr."""

    domain: str                 # IDNA A-labels, lower case
    selector: str
    algorithm: str              # "rsa-sha256" or "ed25519-sha256"
    bits: int
    path: Path
    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = field(repr=False)
    secret: bytes = field(repr=False, default=b"")    # the key as dkimpy takes it (PKCS#1 PEM, base64 seed)


def dkimpy_secret(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """``key`` in the form ``dkim.DKIM.sign`` reads: PKCS#1 PEM (RSA), the base64 seed (Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                 serialization.NoEncryption())
        return base64.b64encode(seed)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


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
    if isinstance(key, rsa.RSAPrivateKey):
        _remember(key)          # openssl_rsa_sign finds it without rebuilding it
    return SigningKey(domain, entry.selector, algorithm, bits, entry.key, key, dkimpy_secret(key))


# --------------------------------------------------------------------------- signing


def signed_header_names(raw: bytes, own: Iterable[str] = (), head: Head | None = None) -> list[str]:
    """The h= list for ``raw`` (``head``: its :func:`split_head`, when the caller has it): each
    signed field as often as it occurs, the over-signed ones (and ``own``) once more, so none
    can be added later."""
    counts: dict[str, int] = {}
    for f in (head or split_head(raw)).fields:
        if f.key:
            counts[f.key] = counts.get(f.key, 0) + 1
    own_names = [n.lower() for n in own]
    over = set(OVERSIGNED) | set(own_names)
    names = list(SIGNED) + sorted(k for k in counts if k.startswith("list-"))
    names += [n for n in dict.fromkeys(own_names) if n not in names and n not in _NEVER_SIGNED]
    out: list[str] = []
    for name in names:
        out += [name] * (counts.get(name, 0) + (1 if name in over else 0))
    return out


def _for_dkimpy(fields: tuple[Field, ...], raw: bytes, rest: bytes) -> bytes:
    """``raw`` as dkimpy can parse it and as the next hop will read it, with the
    same relaxed canonical form.

    dkimpy refuses a header line without a colon and the obsolete space before
    one (``Subject : x``, RFC 5322 4.5). Relaxed canonicalisation drops that
    space, and a line that is no field can never be signed, so a copy without
    either signs exactly what goes out. A last line without CRLF gets one, as
    SMTP sends it (dkimpy would keep its trailing spaces, the verifier not)."""
    message = raw
    if not all(f.name and f.raw[len(f.name):len(f.name) + 1] == b":" for f in fields):
        kept = [f.raw[:len(f.name)] + f.raw[f.raw.index(b":"):] for f in fields if f.name]
        message = b"".join(kept) + rest
    return message if message.endswith(b"\n") else message + b"\r\n"


def dkimpy_signer(message: bytes, algorithm: bytes) -> dkimpy.DKIM:
    """dkimpy's signer for ``message``. dkimpy's parser splits the whole message into
    lines and joins the body's again with CRLF (one long hold of the GIL for a large
    message); when every line already ends in CRLF that join gives back the body as
    it is, so only the header block is parsed and the body is handed over."""
    cut = message.find(b"\r\n\r\n")
    if cut < 0 or message.startswith(b"\r\n") or message.count(b"\n") != message.count(b"\r\n"):
        return dkimpy.DKIM(message, signature_algorithm=algorithm)
    signer = dkimpy.DKIM(message[:cut + 4], signature_algorithm=algorithm)
    signer.body = message[cut + 4:]
    return signer


def make_signature(key: SigningKey, raw: bytes, own: Iterable[str] = ()) -> bytes:
    """The complete ``DKIM-Signature`` field (folded, CRLF-terminated) for ``raw``, by dkimpy."""
    head = split_head(raw)
    message = _for_dkimpy(head.fields, raw, head.rest)
    signer = dkimpy_signer(message, key.algorithm.encode("ascii"))
    return signer.sign(key.selector.encode("ascii"), key.domain.encode("ascii"),
                       key.secret or dkimpy_secret(key.private),
                       canonicalize=(b"relaxed", b"relaxed"),
                       include_headers=[n.encode("ascii") for n in signed_header_names(raw, own, head)])


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

    def signatures(self, raw: bytes, mail_from: str = "", own: Iterable[str] = ()) -> list[bytes]:
        """The DKIM-Signature fields for ``raw`` (blocking): one per key type of the
        chosen domain (RSA and Ed25519 side by side), or none. ``own`` names the
        tag headers this message carries beyond the action and rules headers
        (:func:`relay.tagging.owned_names`): they are signed and over-signed too."""
        if not raw.strip():
            return []
        keys = self.choose(raw, mail_from)
        if not keys:
            return []
        froms = len(split_head(raw).named("From"))
        if froms > 1:
            _log.warning("dkim.not_signed", reason="several From fields", from_fields=froms)
            return []
        names = tuple(dict.fromkeys((*self.own_headers, *sorted(own))))   # one h= order in every process
        out = []
        for key in keys:
            try:
                out.append(make_signature(key, raw, names))
            except dkimpy.DKIMException as exc:     # dkimpy refused the message: it goes out unsigned
                _log.error("dkim.not_signed", reason=f"dkimpy: {type(exc).__name__}", domain=key.domain,
                           selector=key.selector)
        return out

    def sign_sync(self, raw: bytes, mail_from: str = "", own: Iterable[str] = ()) -> bytes:
        """``raw`` with its DKIM-Signature fields prepended (blocking; see :meth:`sign`)."""
        sigs = self.signatures(raw, mail_from, own)
        return b"".join(sigs) + raw if sigs else raw

    async def sign(self, raw: bytes, mail_from: str = "", own: Iterable[str] = ()) -> bytes:
        """``raw`` with DKIM-Signature fields on top, or unchanged when there is no key
        for its domain. The hashing and signing run in a worker thread."""
        return await asyncio.to_thread(self.sign_sync, raw, mail_from, tuple(own))

    def sign_headers(self, raw: bytes, mail_from: str = "", own: Iterable[str] = ()) -> list[tuple[str, str]]:
        """(name, value) of each DKIM-Signature field, for a milter's ``insheader(0, ...)``.
        Values are folded with LF + space, as libmilter and Postfix expect.
        Blocking: call it through ``asyncio.to_thread`` from async code."""
        out = []
        for sig in self.signatures(raw, mail_from, own):
            name, _, value = sig.decode("ascii").partition(":")
            out.append((name, value.strip().replace("\r\n", "\n")))
        return out

    def sign_header(self, raw: bytes, mail_from: str = "", own: Iterable[str] = ()) -> tuple[str, str] | None:
        """The first of :meth:`sign_headers` (the only one unless a domain has both an
        RSA and an Ed25519 key), or None when the message goes unsigned."""
        found = self.sign_headers(raw, mail_from, own)
        return found[0] if found else None


async def outgoing(raw: bytes, verdict: Verdict, settings: Settings, signer: Signer | None,
                   mail_from: str = "") -> bytes:
    """The act stage's whole edit of forwarded mail, and of mail a reviewer releases:
    the output copy of ``raw`` tagged (:func:`relay.tagging.tag`), then signed last,
    the tag headers this verdict adds among the signed ones."""
    out = tag(raw, verdict, settings)
    return out if signer is None else await signer.sign(out, mail_from, owned_names(settings, verdict))
