"""RTF to text: a small linear tokenizer, no dependency.

Why not striprtf: it drops header, footer, footnote and comment
destinations (all sent data) and writes table cells as bare ``|`` with no
row structure; here tables go through :mod:`relay.extract.tables` like
every other format. Handled: groups, ``\\*`` and known non-text
destinations skipped (font/colour/style tables, pictures, objects, info),
``\\par``/``\\line``/``\\tab``, ``\\'hh`` bytes in the document code page
(``\\ansicpg``), ``\\uN`` with ``\\ucN`` fallback skipping, tables
(``\\cell``, ``\\row``, ``\\nestcell``). One regex ``finditer`` pass.
"""

from __future__ import annotations

import re

from relay.extract import tables
from relay.extract.budget import Budget
from relay.extract.flow import Flow

CELL, ROW = "\x1f", "\x1e"   # unit and record separators: never text in RTF (nor in .doc after mapping)

_TOKEN = re.compile(
    rb"\\([a-zA-Z]{1,32})(-?\d{1,10})? ?"   # control word with optional parameter
    rb"|\\'([0-9a-fA-F]{2})"                # hex byte
    rb"|\\([^a-zA-Z'])"                     # control symbol
    rb"|([{}])"                             # group
    rb"|[\r\n]+"                            # ignorable line ends
    rb"|([^\\{}\r\n]+)"                     # text
)
_SKIP = frozenset(
    b"fonttbl colortbl stylesheet listtable listoverridetable revtbl rsidtbl info pict object objdata "
    b"themedata colorschememapping datastore latentstyles xmlnstbl generator fldinst datafield "
    b"filetbl pgdsctbl mmathPr bkmkstart bkmkend".split()
)
_SYMBOLS = {b"~": " ", b"-": "", b"_": "-", b"\\": "\\", b"{": "{", b"}": "}", b"\n": "\n", b"\r": "\n"}
_MAX_DEPTH = 200
_SURROGATE = re.compile("[\ud800-\udfff]")


def extract(data: bytes, budget: Budget) -> str:
    flow = Flow(budget)
    codepage = "cp1252"
    skip_stack: list[bool] = []
    skipping = False
    uc = 1                       # \ucN: bytes to skip after \uN
    pending_skip = 0
    star = False
    hexbuf = bytearray()
    n = 0

    def flush_hex() -> None:
        if hexbuf:
            if not skipping:
                flow.add(hexbuf.decode(codepage, errors="replace"))
            hexbuf.clear()

    for m in _TOKEN.finditer(data):
        n += 1
        if n & 0xFFF == 0:
            budget.tick()
            if flow.done():
                break
        word, param, hexbyte, symbol, group, text = m.groups()
        if hexbyte is not None:
            if pending_skip:
                pending_skip -= 1
            else:
                hexbuf.append(int(hexbyte, 16))
            continue
        flush_hex()
        if text is not None:
            if pending_skip:
                skip = min(pending_skip, len(text))
                pending_skip -= skip
                text = text[skip:]
            if text and not skipping:
                flow.add(text.decode(codepage, errors="replace"))
            continue
        pending_skip = 0
        if group is not None:
            if group == b"{":
                if len(skip_stack) >= _MAX_DEPTH:
                    break
                skip_stack.append(skipping)
                star = False
            elif skip_stack:
                skipping = skip_stack.pop()
            continue
        if symbol is not None:
            if symbol == b"*":
                star = True
                skipping = True
            elif not skipping:
                flow.add(_SYMBOLS.get(symbol, ""))
            continue
        if word is None:
            continue  # line ends
        if word in _SKIP or star:
            skipping = True
            star = False
            continue
        if skipping:
            continue
        if word == b"par" or word == b"line" or word == b"sect" or word == b"page":
            flow.newline()
        elif word == b"tab":
            flow.add("\t")
        elif word == b"cell":
            flow.add(CELL)
        elif word == b"row":
            flow.add(ROW)
        elif word == b"nestcell" or word == b"nestrow":
            flow.add(" ")          # a nested table flows into its outer cell
        elif word == b"u" and param is not None:
            code = int(param)
            flow.add(chr(code + 65536 if code < 0 else code) if -32768 <= code < 1114112 else "")
            pending_skip = uc
        elif word == b"uc" and param is not None:
            uc = max(0, min(int(param), 10))
        elif word == b"ansicpg" and param is not None:
            codepage = _codepage(param)
    flush_hex()
    text = flow.result()
    if _SURROGATE.search(text):  # \uN pairs spell characters outside the BMP
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return tables_from_marks(text)


def tables_from_marks(text: str) -> str:
    """Turn CELL/ROW marks into table lines; a cell's text comes *before* its mark (RTF, .doc)."""
    if ROW not in text:
        return text.replace(CELL, " ")
    out: list[str] = []
    rows: list[tables.Row] = []
    segments = text.split(ROW)
    for segment in segments[:-1]:
        first = segment.find(CELL)
        cut = segment.rfind("\n", 0, first) + 1 if first >= 0 else len(segment)
        before, row = segment[:cut], segment[cut:]
        if before.strip():
            if rows:
                out.append(tables.render(rows))
                rows = []
            out.append(before)
        cells = row.split(CELL)
        if len(cells) > 1 and not cells[-1].strip():
            cells.pop()
        rows.append([(i, tables.clean_cell(c)) for i, c in enumerate(cells)])
    if rows:
        out.append(tables.render(rows))
    out.append(segments[-1].replace(CELL, " "))
    return "\n".join(out)


def _codepage(param: bytes) -> str:
    name = f"cp{int(param)}"
    try:
        "".encode(name)
    except LookupError:
        return "cp1252"
    return name
