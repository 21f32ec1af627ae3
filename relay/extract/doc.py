"""Word 97-2003 documents (.doc): the text of the piece table, tables as rows.

The File Information Block (FIB) at the start of the ``WordDocument``
stream names the table stream (``0Table``/``1Table``) and where the CLX
lies in it; the CLX's piece table maps character positions to runs of
either 8-bit (windows-1252) or UTF-16 text in ``WordDocument``. All pieces
are read in order: body, footnotes, headers, comments, text boxes -- all
sent data. Word's marks are then mapped: paragraph/line/page ends to
newlines, field instructions (``HYPERLINK ...``) dropped and field results
kept, cell marks (``\\x07``; two end a row) to table rows rendered by
:mod:`relay.extract.tables` (as RTF does, through :func:`rtf.tables_from_marks`).
"""

from __future__ import annotations

import re
import struct

from relay.extract import rtf
from relay.extract.budget import Budget

_FIELD = re.compile("\x13[^\x13\x14\x15]*(?:\x14|\x15)")   # a field's instructions (innermost first)
_MARKS = str.maketrans({"\r": "\n", "\x0b": "\n", "\x0c": "\n", "\x1e": "-", "\x1f": None, "\x15": None,
                        "\x01": None, "\x02": None, "\x05": None, "\x08": None, "\x13": None, "\x14": None})


class Encrypted(Exception):
    """The document needs a password."""


def is_doc(ole) -> bool:
    return ole.exists("WordDocument")


def extract(ole, budget: Budget) -> str:
    word = ole.openstream("WordDocument").read()
    if len(word) < 0x1AA or struct.unpack_from("<H", word, 0)[0] != 0xA5EC:
        raise ValueError("not a Word 97-2003 document")
    flags = struct.unpack_from("<H", word, 0x0A)[0]
    if flags & 0x0100:
        raise Encrypted
    table = ole.openstream("1Table" if flags & 0x0200 else "0Table").read()
    fc_clx, lcb_clx = struct.unpack_from("<II", word, 0x01A2)
    clx = table[fc_clx:fc_clx + lcb_clx]
    pos = 0
    while pos < len(clx) and clx[pos] == 0x01:                # Prc: formatting, skipped
        pos += 3 + struct.unpack_from("<h", clx, pos + 1)[0]
    if pos + 5 > len(clx) or clx[pos] != 0x02:
        raise ValueError("no piece table")
    lcb = struct.unpack_from("<I", clx, pos + 1)[0]
    plc = clx[pos + 5:pos + 5 + lcb]
    n = (len(plc) - 4) // 12
    if n < 1:
        return ""
    cps = struct.unpack_from(f"<{n + 1}I", plc, 0)
    pieces: list[str] = []
    size = 0
    for i in range(n):
        if not i & 0xFF:
            budget.tick()
        count = max(0, cps[i + 1] - cps[i])
        fc = struct.unpack_from("<I", plc, 4 * (n + 1) + 8 * i + 2)[0]
        if fc & 0x40000000:
            start = (fc & 0x3FFFFFFF) // 2
            piece = word[start:start + count].decode("cp1252", "replace")
        else:
            piece = word[fc:fc + 2 * count].decode("utf-16-le", "replace")
        pieces.append(piece)
        size += len(piece)
        if budget.full(size):
            break
    return _clean("".join(pieces))


def _clean(text: str) -> str:
    for _ in range(8):   # nested fields, innermost first; a bounded number of levels
        text, found = _FIELD.subn("", text)
        if not found:
            break
    text = text.translate(_MARKS)
    text = text.replace("\x07\x07", rtf.CELL + rtf.ROW).replace("\x07", rtf.CELL)
    return rtf.tables_from_marks(text)
