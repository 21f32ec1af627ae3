"""Bytes to text for text parts: declared charset, BOMs, and the usual lies.

Order of trust: a byte-order mark (UTF-8/16/32) wins; then the declared
charset if the bytes decode strictly with it; then UTF-8; then windows-1252
(which is what ``iso-8859-1`` and ``us-ascii`` labels mean in practice, as in
the WHATWG encoding standard), with replacement characters for the five
bytes it leaves undefined. Unknown charset names fall through the same way.
Never raises.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)
# Labels that really mean windows-1252 (WHATWG), and labels that mean utf-8.
_AS_1252 = {"iso-8859-1", "iso8859-1", "latin1", "latin-1", "l1", "us-ascii", "ascii", "ansi_x3.4-1968",
            "cp1252", "windows-1252", "iso_8859-1", "cp819", "ibm819"}
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.I)


def _codec(name: str) -> str | None:
    name = name.strip().strip('"\'').lower()
    if not name:
        return None
    if name in _AS_1252:
        return "cp1252"
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):      # ValueError: a NUL or a lone surrogate in the name
        return None


SNIFF = 8 * 1024
# C0 controls text does not use (tab, newlines, form feed and escape are allowed), and DEL
_CONTROL = re.compile(rb"[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")
_CONTROL_CHAR = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f]")


def is_text(data: bytes) -> bool:
    """Whether ``data`` reads as text: its first 8 KiB hold no NUL or other control byte that text
    does not use, and decode as UTF-8 (a character cut at the 8 KiB edge allowed), or as UTF-16
    after a byte-order mark."""
    head = data[:SNIFF]
    final = len(data) <= SNIFF
    try:
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            text = codecs.getincrementaldecoder("utf-16")().decode(head, final)
            return bool(text) and not _CONTROL_CHAR.search(text)
        return bool(head) and not _CONTROL.search(head) and (
            codecs.getincrementaldecoder("utf-8")().decode(head, final) != "" or not final)
    except UnicodeDecodeError:
        return False


def decode(data: bytes, charset: str = "") -> str:
    """Decode ``data`` declared as ``charset`` ("" if none), CRLF as LF; see the module docstring."""
    text = _decode(data, charset)
    return text.replace("\r\n", "\n") if "\r" in text else text


def _decode(data: bytes, charset: str) -> str:
    if not data:
        return ""
    if data[0] in (0xEF, 0xFE, 0xFF, 0x00):
        for bom, codec in _BOMS:
            if data.startswith(bom):
                return data.decode(codec, errors="replace")
    declared = _codec(charset) if charset else None
    if declared is None and 0 in data[:512] and _looks_utf16(data):
        return data.decode("utf-16-le" if data[1] == 0 else "utf-16-be", errors="replace")
    if declared and declared not in ("utf-8", "cp1252"):
        try:
            return data.decode(declared)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return data.decode("cp1252", errors="replace")


def _looks_utf16(data: bytes) -> bool:
    """BOM-less UTF-16 of mostly ASCII text: every other byte NUL."""
    head = data[:512]
    if len(head) < 4:
        return False
    even, odd = head[0::2].count(0), head[1::2].count(0)
    half = len(head) // 2
    return max(even, odd) > half * 0.8 and min(even, odd) < half * 0.1


def html_charset(data: bytes) -> str:
    """The charset an HTML document declares in a ``<meta>`` near its start, or ""."""
    m = _META_CHARSET.search(data, 0, 2048)
    return m.group(1).decode("ascii") if m else ""
