"""Protected content: encrypted or signed messages, password-protected files (clauses 5.1, 5.3).

Both sides are reported, and the policy decides: a protected document cannot
be scanned (clause 5.1) *and* is how personal data should travel (clause
5.3); protection that keeps nothing secret is named as such.

Message level (the message's own MIME tree; forwarded messages inside
``message/rfc822`` are not the message):

- S/MIME: ``application/(x-)pkcs7-mime`` with ``smime-type=enveloped-data``
  or ``authEnveloped-data`` (or, without the parameter, an envelopedData
  OID in the DER) -> ``encrypted_message smime``; ``signed-data`` ->
  ``signed_message smime``; ``multipart/signed`` with a pkcs7-signature
  protocol -> ``signed_message smime``.
- PGP/MIME: ``multipart/encrypted`` (``application/pgp-encrypted``) ->
  ``encrypted_message pgp``; ``multipart/signed`` with
  ``application/pgp-signature`` -> ``signed_message pgp``; inline armour in
  a text body: ``-----BEGIN PGP MESSAGE-----`` -> ``encrypted_message pgp``,
  ``-----BEGIN PGP SIGNED MESSAGE-----`` -> ``signed_message pgp``.

Files (every leaf, archive members included):

- Office (OLE2 ``EncryptedPackage`` or legacy RC4/XOR encryption, via
  msoffcrypto-tool): ``encrypted_content office``; if the default
  ``VelvetSweatshop`` password opens it: ``weak_protection
  office_default_password`` instead.
- PDF (pypdf): needs a user password -> ``encrypted_content pdf``; opens with
  the empty user password but is encrypted (an owner password restricts it)
  -> ``weak_protection pdf_owner_password``.
- OpenPGP-encrypted attachments (armour, or binary packets named .gpg, .pgp,
  .asc) outside a PGP/MIME message -> ``encrypted_content pgp``; inline
  armour in a *body* is the message's own encryption (above).
- Archive members flagged encrypted (zip, 7z, rar; a 7z whose names are
  encrypted too) -> ``encrypted_content <format>``, one finding per archive,
  count = encrypted members.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator, Sequence

from relay.findings import Confidence, Finding
from relay.message import ParsedMessage, Part

CFB = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
DEFAULT_OFFICE_PASSWORD = "VelvetSweatshop"
MAX_PASSWORD_TRIES = 8   # key derivation costs ~0.3 s per agile-encrypted file: bound it per message
_ENVELOPED_OID = bytes.fromhex("06092a864886f70d010703")
_SIGNED_OID = bytes.fromhex("06092a864886f70d010702")
_AUTH_ENVELOPED_OID = bytes.fromhex("060b2a864886f70d0109100117")


def _params(part: Part) -> str:
    return (part.header("Content-Type") or "").lower().replace(" ", "").replace('"', "")


def _own_parts(part: Part) -> Iterator[Part]:
    """The message's own MIME parts: not those of attached messages, not archive members."""
    yield part
    if part.content_type == "message/rfc822" or part.origin != "mime":
        return
    for child in part.children:
        if child.origin == "mime":
            yield from _own_parts(child)


def message_protection(message: ParsedMessage) -> list[Finding]:
    found: dict[tuple[str, str], str] = {}
    for part in _own_parts(message.root):
        ctype, params, where = part.content_type, _params(part), part.label
        if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
            head = part.payload[:64]
            if "smime-type=enveloped-data" in params or "smime-type=authenveloped-data" in params \
                    or _ENVELOPED_OID in head or _AUTH_ENVELOPED_OID in head:
                found.setdefault(("encrypted_message", "smime"), where)
            elif "smime-type=signed-data" in params or _SIGNED_OID in head:
                found.setdefault(("signed_message", "smime"), where)
        elif ctype == "multipart/signed":
            if "pkcs7-signature" in params:
                found.setdefault(("signed_message", "smime"), where)
            elif "pgp-signature" in params:
                found.setdefault(("signed_message", "pgp"), where)
        elif ctype == "multipart/encrypted" and "pgp-encrypted" in params:
            found.setdefault(("encrypted_message", "pgp"), where)
        elif ctype.startswith("text/") and _is_body(part) and b"-----BEGIN PGP " in part.payload:
            if b"-----BEGIN PGP MESSAGE-----" in part.payload:
                found.setdefault(("encrypted_message", "pgp"), where)
            if b"-----BEGIN PGP SIGNED MESSAGE-----" in part.payload:
                found.setdefault(("signed_message", "pgp"), where)
    return [Finding(kind, type_, Confidence.HIGH, 1, where) for (kind, type_), where in found.items()]


def _is_body(part: Part) -> bool:
    return not part.filename and part.disposition != "attachment" and part.origin == "mime"


def _inside_pgp_mime(message: ParsedMessage) -> set[int]:
    """ids of the parts under a multipart/encrypted (their protection is the message's)."""
    inside: set[int] = set()
    stack = [(message.root, False)]
    while stack:
        part, under = stack.pop()
        if under:
            inside.add(id(part))
        under = under or part.content_type == "multipart/encrypted"
        stack.extend((child, under) for child in part.children)
    return inside


_OPENPGP_FIRST = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C, 0x8D, 0xC1, 0xC3})


def pgp_file(part: Part) -> bool:
    """An attached OpenPGP-encrypted file: ASCII armour, or binary packets named .gpg/.pgp/.asc."""
    head = part.payload[:1024]
    if b"-----BEGIN PGP MESSAGE-----" in head:
        return True
    return part.extension in ("gpg", "pgp", "asc") and bool(head) and head[0] in _OPENPGP_FIRST


def office(data: bytes, try_default: bool = True) -> str:
    """Empty (not encrypted), "encrypted" or "default_password"."""
    import msoffcrypto
    try:
        doc = msoffcrypto.OfficeFile(io.BytesIO(data))
        if not doc.is_encrypted():
            return ""
    except Exception:  # noqa: BLE001 - not an Office file msoffcrypto knows
        return ""
    if not try_default:
        return "encrypted"
    try:
        try:
            doc.load_key(password=DEFAULT_OFFICE_PASSWORD, verify_password=True)  # OOXML: check the verifier
        except TypeError:
            doc.load_key(password=DEFAULT_OFFICE_PASSWORD)  # doc/xls/ppt 97: load_key verifies itself
        return "default_password"
    except Exception:  # noqa: BLE001 - wrong password, or a scheme msoffcrypto can only detect
        return "encrypted"


def pdf(data: bytes) -> str:
    """Empty (not encrypted), "encrypted" (user password needed) or "owner_password"."""
    if b"/Encrypt" not in data:
        return ""
    import pypdf
    from pypdf.errors import PyPdfError
    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if not reader.is_encrypted:
            return ""
        result = reader.decrypt("")
    except (PyPdfError, ValueError, KeyError, TypeError, NotImplementedError) as exc:
        # encrypted but unreadable (unknown handler, missing crypto): treat as needing a password
        return "encrypted" if "crypt" in str(exc).lower() or isinstance(exc, NotImplementedError) else ""
    except Exception:  # noqa: BLE001 - a broken PDF: the file type scanner and extraction report that
        return ""
    return "owner_password" if result else "encrypted"


def file_protection(message: ParsedMessage) -> list[Finding]:
    out: list[Finding] = []
    members: dict[str, list] = {}   # archive label -> [format, count]
    tries = 0
    inside_pgp = _inside_pgp_mime(message)
    for part in message.walk():
        for child in part.children:
            if child.origin == "archive" and child.encrypted:
                entry = members.setdefault(part.label, [part.archive or "archive", 0])
                entry[1] += 1
        data = part.payload
        if not data or part.children and part.archive:
            continue
        if data[:8] == CFB:
            state = office(data, tries < MAX_PASSWORD_TRIES)
            tries += state != ""
            if state == "default_password":
                out.append(Finding("weak_protection", "office_default_password", Confidence.HIGH, 1, part.label))
            elif state == "encrypted":
                out.append(Finding("encrypted_content", "office", Confidence.HIGH, 1, part.label))
        elif not _is_body(part) and id(part) not in inside_pgp and pgp_file(part):
            out.append(Finding("encrypted_content", "pgp", Confidence.HIGH, 1, part.label))
        elif b"%PDF-" in data[:1024]:
            state = pdf(data)
            if state == "owner_password":
                out.append(Finding("weak_protection", "pdf_owner_password", Confidence.HIGH, 1, part.label))
            elif state == "encrypted":
                out.append(Finding("encrypted_content", "pdf", Confidence.HIGH, 1, part.label))
    for label, (fmt, count) in members.items():
        out.append(Finding("encrypted_content", fmt, Confidence.HIGH, count, label))
    return out


def scan_message(message: ParsedMessage) -> list[Finding]:
    return message_protection(message) + file_protection(message)


INLINE_BYTES = 256 * 1024


class ProtectionScanner:
    name = "protection"

    def __init__(self, settings=None) -> None:
        self.settings = settings

    async def scan(self, ctx) -> Sequence[Finding]:
        message = ctx.message
        if message.size <= INLINE_BYTES and next(message.attachments(), None) is None:
            return scan_message(message)  # text bodies only: microseconds, less than a thread hop
        return await asyncio.to_thread(scan_message, message)
