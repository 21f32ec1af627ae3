"""Office files in an OLE "EncryptionInfo" wrapper (encrypted OOXML, RC4 xls/doc).

Excel saves a workbook that is only write-protected encrypted with the
well-known default password ``VelvetSweatshop``; such a file keeps nothing
secret, so it is decrypted (msoffcrypto-tool) and read like any other.
Any other password: :func:`decrypt_default` returns None (no text; the
protection scanner reports the file).
"""

from __future__ import annotations

import io

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
DEFAULT_PASSWORD = "VelvetSweatshop"


def open_default(data: bytes) -> bytes | None:
    """``data`` readable without a secret: itself if not encrypted, decrypted if the
    default password opens it, None if it needs a real password."""
    import msoffcrypto   # imported on first use
    from msoffcrypto.exceptions import FileFormatError

    try:
        if not msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted():
            return data
    except (FileFormatError, NotImplementedError):
        return data   # an OLE file msoffcrypto does not know (Outlook .msg, ...): not encrypted by Office
    return decrypt_default(data)


def decrypt_default(data: bytes) -> bytes | None:
    """The decrypted file if ``data`` is encrypted with the default password, else None."""
    import msoffcrypto   # imported on first use
    from msoffcrypto.exceptions import DecryptionError, FileFormatError, InvalidKeyError, ParseError
    from msoffcrypto.format.ooxml import OOXMLFile

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        if not office.is_encrypted():
            return None
        if isinstance(office, OOXMLFile):
            office.load_key(password=DEFAULT_PASSWORD, verify_password=True)
        else:
            office.load_key(password=DEFAULT_PASSWORD)
        out = io.BytesIO()
        office.decrypt(out)
    except (InvalidKeyError, DecryptionError, FileFormatError, ParseError, NotImplementedError):
        return None
    return out.getvalue()
