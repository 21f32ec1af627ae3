"""Which reader a part needs, and running it.

The type comes from the bytes first (PDF, zip, OLE and RTF signatures), then
from the declared type and the file name, and last from the bytes again: a
part of no known type, or named as a document that its bytes are not, is
read as text if it reads as text (:func:`relay.extract.plain.is_text`). A zip is an OOXML or ODF document
if its content-types or ``mimetype`` member says so; any other zip is an
archive whose members the message model already lists as child parts. An
OLE file is opened without a secret if it can be (not encrypted, or
Excel's default password): decrypted OOXML is read as such, an Excel 97-2003
workbook with xlrd, a Word 97-2003 document by :mod:`relay.extract.doc`;
PowerPoint 97-2003 and Outlook .msg are not read.
"""

from __future__ import annotations

import zipfile

from relay.extract import csv as csv_reader
from relay.extract import doc, encrypted, odf, ooxml, pdf, plain, rtf, xls
from relay.extract.budget import Budget, OutOfRoom, OutOfTime
from relay.extract.container import open_zip
from relay.extract.html import html_to_text, normalise
from relay.message import Part

_OFFICE_EXT = {
    "docx": "docx", "docm": "docx", "dotx": "docx", "dotm": "docx",
    "xlsx": "xlsx", "xlsm": "xlsx", "xltx": "xlsx", "xltm": "xlsx",
    "pptx": "pptx", "pptm": "pptx", "potx": "pptx", "ppsx": "pptx", "ppsm": "pptx",
    "odt": "odt", "ott": "odt", "ods": "ods", "ots": "ods", "odp": "odp", "otp": "odp",
}
_TEXT_EXT = frozenset(("txt", "text", "log", "md", "markdown", "json", "xml", "yaml", "yml", "ini", "cfg",
                       "vcf", "ics", "eml", "sql", "srt", "tex"))
_TEXT_TYPES = frozenset(("application/json", "application/xml", "application/sql", "application/x-yaml"))


class NoText(Exception):
    """Nothing to extract, and nothing wrong: an archive, a password-protected document."""


class Failed(Exception):
    """A reader failed on this document (``kind``: the document type); the cause is chained."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def guess(part: Part) -> str | None:
    """The reader for ``part``: a document type, "zip", "ole", or None for content without text."""
    data = part.payload
    head = data[:8]
    if head.startswith(b"%PDF-") or b"%PDF-" in data[:1024]:
        return "pdf"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if head == encrypted.OLE_MAGIC:
        return "ole"
    if data[:64].lstrip().startswith(b"{\\rtf"):
        return "rtf"
    ext, ctype = part.extension, part.content_type
    if ext in _OFFICE_EXT or ext in ("pdf", "xls", "doc", "ppt", "rtf"):
        # named as a document but not one by its bytes (the file-type scanner reports the lie):
        # text saved under a document name (a CSV or HTML export called .xls) is still read
        return "text" if plain.is_text(data) else None
    if ctype == "text/html" or ext in ("htm", "html", "xhtml"):
        return "html"
    if ctype in ("text/csv", "text/tab-separated-values") or ext in ("csv", "tsv"):
        return "csv"
    if ctype.startswith("text/") or ext in _TEXT_EXT or ctype in _TEXT_TYPES:
        return "text"
    # any other name or type (.dat, none, application/octet-stream, archive members): the bytes decide
    return "text" if plain.is_text(data) else None


def is_document(part: Part) -> bool:
    """A part with members listed (a zip) that is really an OOXML/ODF document."""
    if guess(part) != "zip":
        return False
    try:
        with open_zip(part.payload) as zf:
            return _zip_kind(zf, Budget(0, 1 << 20, float("inf")))[0] is not None
    except Exception:  # noqa: BLE001 - not a readable package: let the archive listing stand
        return False


def _failed_type(kind: str, part: Part) -> str:
    if kind in ("zip", "ole"):
        return _OFFICE_EXT.get(part.extension, part.extension if part.extension in ("xls", "doc") else "office")
    return kind


def _zip_kind(zf: zipfile.ZipFile, budget: Budget) -> tuple[str | None, list[tuple[str, str]]]:
    kind, parts = ooxml.kind_of(zf, budget)
    if kind is None:
        kind = odf.kind_of(zf, budget)
    return kind, parts


def read(kind: str, part: Part, budget: Budget) -> tuple[str, str | None]:
    """(document type, its text). Raises NoText, OutOfTime, OutOfRoom or Failed."""
    try:
        kind, text = _read(kind, part, budget)
        return kind, (normalise(text) if text and kind not in ("text", "html") else text)
    except (NoText, OutOfTime, OutOfRoom, Failed):
        raise
    except Exception as exc:  # noqa: BLE001 - hostile documents make readers raise anything
        raise Failed(_failed_type(kind, part)) from exc


def _read(kind: str, part: Part, budget: Budget) -> tuple[str, str | None]:
    data = part.payload
    if kind == "ole":
        data = encrypted.open_default(data)
        if data is None:
            raise NoText   # a real password: the protection scanner reports it
        if data.startswith(b"PK\x03\x04"):
            kind = "zip"   # decrypted OOXML
        else:
            return _read_ole(data, part, budget)
    if kind == "zip" or kind in _OFFICE_EXT.values():
        return _read_zip(data, part, budget)
    if kind == "pdf":
        try:
            return kind, pdf.extract(data, budget)
        except pdf.NeedsPassword:
            raise NoText from None
    if kind == "rtf":
        return kind, rtf.extract(data, budget)
    text = plain.decode(data, part.charset or (plain.html_charset(data) if kind == "html" else ""))
    if kind == "html":
        return kind, html_to_text(text, budget.tick)
    if kind == "csv":
        return kind, csv_reader.extract(text, budget)
    return kind, text


def _read_ole(data: bytes, part: Part, budget: Budget) -> tuple[str, str | None]:
    import olefile   # a dependency of msoffcrypto-tool and oletools

    with olefile.OleFileIO(data) as ole:
        if ole.exists("Workbook") or ole.exists("Book"):
            kind = "xls"
        elif doc.is_doc(ole):
            try:
                return "doc", doc.extract(ole, budget)
            except doc.Encrypted:
                raise NoText from None
            except (OutOfTime, OutOfRoom):
                raise
            except Exception as exc:  # noqa: BLE001 - see read()
                raise Failed("doc") from exc
        else:
            raise NoText   # PowerPoint 97-2003, Outlook .msg, ...: not read
    try:
        return kind, xls.extract(data, budget)
    except (OutOfTime, OutOfRoom):
        raise
    except Exception as exc:  # noqa: BLE001 - see read()
        raise Failed(kind) from exc


def _read_zip(data: bytes, part: Part, budget: Budget) -> tuple[str, str | None]:
    try:
        zf = open_zip(data)
    except zipfile.BadZipFile:
        if part.extension in _OFFICE_EXT:
            raise
        raise NoText from None
    with zf:
        kind, parts = _zip_kind(zf, budget)
        if kind is None:
            if part.extension in _OFFICE_EXT:
                raise ValueError("not an office package")
            raise NoText   # a plain archive: its members are parts of their own
        try:
            if kind in ("docx", "xlsx", "pptx"):
                return kind, ooxml.extract(zf, budget)
            return kind, odf.extract(zf, kind, budget)
        except odf.Encrypted:
            raise NoText from None
        except (OutOfTime, OutOfRoom):
            raise
        except Exception as exc:  # noqa: BLE001 - see read()
            raise Failed(kind) from exc
