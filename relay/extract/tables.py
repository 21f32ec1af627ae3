"""One rendering of table-shaped content, shared by every extractor.

A table (docx/odt/html/rtf table, xlsx/ods sheet, csv file) becomes one line
per row, cells joined by ``" | "``. When the first row looks like a header
(short text cells, not numbers or dates), every later cell is prefixed with
its column's header: ``NHS No: 943 476 5919 | DOB: 01/02/1980``. The header
row itself is kept as a plain line. Empty cells are left out of data rows
(the prefix says which column a value is from). A single-cell title row
above the header ("Patient list") is kept as a plain line and does not count
as the header. See ``relay/extract/__init__.py`` for the contract.
"""

from __future__ import annotations

import re

SEP = " | "

# A header cell: has a letter, is short, and is not a date, an amount or an id.
_DIGITS = re.compile(r"\d")
_LETTER = re.compile(r"[^\W\d_]")

Row = list[tuple[int, str]]   # (column index, cell text), columns ascending, empty cells may be absent


def clean_cell(text: str) -> str:
    """One cell's text on one line, runs of whitespace collapsed."""
    return " ".join(text.split())


def _is_header(row: Row) -> bool:
    cells = [t for _, t in row if t]
    if not cells:
        return False
    for t in cells:
        if len(t) > 60 or not _LETTER.search(t) or len(_DIGITS.findall(t)) > 4:
            return False
    return True


def render(rows: list[Row], header_hint: bool | None = None) -> str:
    """Rows to text lines. ``header_hint`` True/False overrides the header guess for the first row."""
    rows = [r for r in rows if any(t for _, t in r)]
    if not rows:
        return ""
    lines: list[str] = []
    start = 0
    width = max(len(r) for r in rows)
    # a title row (one cell over a wider table) stays a plain line
    while start < min(2, len(rows) - 2) and width > 1 and sum(1 for _, t in rows[start] if t) == 1:
        lines.append(SEP.join(t for _, t in rows[start] if t))
        start += 1
    first = rows[start]
    is_header = header_hint if header_hint is not None else (len(rows) - start > 1 and _is_header(first))
    if not is_header:
        for row in rows[start:]:
            lines.append(SEP.join(t for _, t in row if t))
        return "\n".join(lines)
    names = {col: (t[:-1].rstrip() if t.endswith(":") else t) for col, t in first if t}
    lines.append(SEP.join(t for _, t in first if t))
    for row in rows[start + 1:]:
        cells = []
        for col, t in row:
            if not t:
                continue
            name = names.get(col)
            cells.append(f"{name}: {t}" if name else t)
        lines.append(SEP.join(cells))
    return "\n".join(lines)


class Builder:
    """Collects one table's cells as a parser walks it (html, docx, pptx, odt, rtf).

    ``cell`` is the list the parser appends the current cell's text to; call
    ``start_cell`` / ``end_cell`` / ``end_row`` as the markup says, ``render()``
    at the end of the table.
    """

    __slots__ = ("rows", "row", "cell", "col", "in_cell", "header_first", "span")

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.row: Row = []
        self.cell: list[str] = []
        self.col = 0
        self.in_cell = False
        self.header_first: bool | None = None   # every cell of the first row was marked a header
        self.span = 1

    def end_cell(self) -> None:
        if self.in_cell:
            self.row.append((self.col, clean_cell("".join(self.cell))))
            self.col += self.span
            self.in_cell = False
        self.cell = []

    def start_cell(self, is_header: bool = False, span: int = 1) -> None:
        if self.in_cell or self.cell:
            self.end_cell()
        self.in_cell = True
        self.span = span if span > 1 else 1
        if not self.rows:
            self.header_first = is_header if self.header_first is None else (self.header_first and is_header)

    def end_row(self) -> None:
        self.end_cell()
        if self.row:
            self.rows.append(self.row)
        self.row = []
        self.col = 0

    def render(self) -> str:
        self.end_row()
        return render(self.rows, True if self.header_first else None)
