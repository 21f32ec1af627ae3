"""PDF text with pypdf, page by page within the budget.

An encrypted PDF is first tried with the empty user password: that opens
every PDF protected only by an owner password (permissions, not secrecy),
whose text is then extracted like any other (not "protected"). A PDF that
needs a real user password raises :class:`NeedsPassword`: no text, no
failure; the protection scanner reports it. Tables in a PDF are not
recoverable as structure; their text comes out in reading order.
"""

from __future__ import annotations

import io
import logging

from relay.extract.budget import Budget


class NeedsPassword(Exception):
    """The PDF cannot be opened without a user password."""


def extract(data: bytes, budget: Budget) -> str:
    from pypdf import PdfReader   # imported on first use: pypdf is slow to import
    from pypdf import PasswordType

    # pypdf narrates broken files through logging, quoting names and bytes from the document:
    # document content must not reach our logs, and a broken file is already a finding
    logging.getLogger("pypdf").setLevel(logging.CRITICAL + 1)   # its module loggers inherit the level
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
        raise NeedsPassword
    out: list[str] = []
    size = 0
    for page in reader.pages:
        budget.tick()
        text = page.extract_text() or ""
        out.append(text)
        size += len(text)
        if budget.full(size):
            break
    return "\n\n".join(out)
