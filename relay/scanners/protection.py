"""Protected content: encrypted or signed messages, password-protected files (clauses 5.1, 5.3).

Both sides are reported, and the policy decides: a protected document cannot
be scanned (clause 5.1) *and* is how personal data should travel (clause
5.3); protection that keeps nothing secret is named as such.

Message level (the message's own MIME tree; forwarded messages inside
``message/rfc822`` are not the message). ``encrypted_message`` means the
*whole* message is encrypted, since the policy relaxes the personal-data
rules for it:

- S/MIME: the root is ``application/(x-)pkcs7-mime`` with
  ``smime-type=enveloped-data`` or ``authEnveloped-data`` (or, without the
  parameter, an envelopedData OID in the DER) -> ``encrypted_message smime``;
  ``signed-data`` -> ``signed_message smime``; ``multipart/signed`` with a
  pkcs7-signature protocol -> ``signed_message smime``.
- PGP/MIME: the root is ``multipart/encrypted`` (``application/pgp-encrypted``)
  -> ``encrypted_message pgp``; ``multipart/signed`` with
  ``application/pgp-signature`` -> ``signed_message pgp``.
- A ``multipart/signed`` root whose signed body is one of the above (signed
  after encrypting) is an encrypted message too.
- Inline PGP: every leaf of the message is a text body that is one armoured
  ``-----BEGIN PGP MESSAGE-----`` ... ``-----END PGP MESSAGE-----`` block (or
  an OpenPGP-encrypted file) -> ``encrypted_message pgp``; a body that merely
  mentions the armour line is not encrypted. A body containing
  ``-----BEGIN PGP SIGNED MESSAGE-----`` -> ``signed_message pgp``.
- An encrypted part beside readable ones (an attached ``.p7m``, a
  ``multipart/encrypted`` inside ``multipart/mixed``) is ``encrypted_content
  smime|pgp`` of that part: the rest of the message travels readable.

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

import io
from collections.abc import Iterator, Sequence

from relay.findings import Confidence, Finding
from relay.message import ParsedMessage, Part
from relay.scanners import run_sized

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


def _encryption(part: Part) -> str:
    """"smime" or "pgp" if this MIME part is itself encrypted (S/MIME enveloped, PGP/MIME), else ""."""
    ctype = part.content_type
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        params, head = _params(part), part.payload[:64]
        if "smime-type=enveloped-data" in params or "smime-type=authenveloped-data" in params \
                or _ENVELOPED_OID in head or _AUTH_ENVELOPED_OID in head:
            return "smime"
    elif ctype == "multipart/encrypted" and "pgp-encrypted" in _params(part):
        return "pgp"
    return ""


def _signing(part: Part) -> str:
    ctype, params = part.content_type, _params(part)
    if ctype in ("application/pkcs7-mime", "application/x-pkcs7-mime"):
        if not _encryption(part) and ("smime-type=signed-data" in params or _SIGNED_OID in part.payload[:64]):
            return "smime"
    elif ctype == "multipart/signed":
        if "pkcs7-signature" in params:
            return "smime"
        if "pgp-signature" in params:
            return "pgp"
    elif ctype.startswith("text/") and _is_body(part) and b"-----BEGIN PGP SIGNED MESSAGE-----" in part.payload:
        return "pgp"
    return ""


def _armoured(part: Part) -> bool:
    """A text body that is one PGP message and nothing else."""
    if not (part.content_type.startswith("text/") and _is_body(part)):
        return False
    text = part.payload.strip()
    return text.startswith(b"-----BEGIN PGP MESSAGE-----") and text.endswith(b"-----END PGP MESSAGE-----")


def _message_encryption(message: ParsedMessage) -> tuple[str, Part | None]:
    """The encryption of the *whole* message, and the part that carries it.

    Only the root counts (or the body of a ``multipart/signed`` root: signed
    after encrypting); an encrypted part beside plain ones is encrypted
    content of that part (:func:`file_protection`), since the plain parts
    still travel readable. Inline PGP counts when every leaf of the message
    is an armoured body or an OpenPGP-encrypted file, at least one a body.
    """
    root = message.root
    kind = _encryption(root)
    if kind:
        return kind, root
    if root.content_type == "multipart/signed" and root.children:
        kind = _encryption(root.children[0])
        if kind:
            return kind, root.children[0]
    leaves = [p for p in _own_parts(root) if not p.content_type.startswith("multipart/")]
    bodies = [p for p in leaves if _armoured(p)]
    if bodies and all(p in bodies or (not _is_body(p) and pgp_file(p)) for p in leaves):
        return "pgp", bodies[0]
    return "", None


def message_protection(message: ParsedMessage) -> list[Finding]:
    found: dict[tuple[str, str], str] = {}
    kind, carrier = _message_encryption(message)
    if carrier is not None:
        found[("encrypted_message", kind)] = carrier.label
    for part in _own_parts(message.root):
        signing = _signing(part)
        if signing:
            found.setdefault(("signed_message", signing), part.label)
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
    _, carrier = _message_encryption(message)
    for part in message.walk():
        kind = _encryption(part) if part.origin == "mime" and part is not carrier else ""
        if kind and id(part) not in inside_pgp:
            out.append(Finding("encrypted_content", kind, Confidence.HIGH, 1, part.label))
            continue
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


class ProtectionScanner:
    name = "protection"

    def __init__(self, settings=None) -> None:
        self.settings = settings

    async def scan(self, ctx) -> Sequence[Finding]:
        return await run_sized(ctx.message, scan_message)

    def scan_sync(self, ctx) -> list[Finding]:
        return scan_message(ctx.message)
