"""OpenDocument files: odt, ods, odp (and their templates).

Same reading as OOXML (zipfile + expat callbacks, DTDs refused). Text comes
from paragraphs and headings of ``content.xml`` (tables, notes, comments,
hidden paragraphs included) and of ``styles.xml`` (page headers and
footers). Spreadsheet sheets (``table:table`` in an ods) appear under a
``Sheet: <name>`` line; every table goes through :mod:`relay.extract.tables`.
A cell repeated N times (``number-columns-repeated``) is written once and
moves the column on by N, so a sheet padded to a million columns costs
nothing. A package whose manifest lists encryption data is password
protected: no text (the protection scanner reports it).
"""

from __future__ import annotations

import zipfile

from relay.extract.budget import Budget
from relay.extract.container import parse_member, read_member
from relay.extract.flow import Flow

KINDS = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.text-template": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.spreadsheet-template": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/vnd.oasis.opendocument.presentation-template": "odp",
}


class Encrypted(Exception):
    """The package needs a password."""


def kind_of(zf: zipfile.ZipFile, budget: Budget) -> str | None:
    if "mimetype" not in zf.NameToInfo:
        return None
    mimetype = read_member(zf, "mimetype", budget, 200).decode("ascii", "replace").strip()
    return KINDS.get(mimetype)


def _count(value: str | None) -> int:
    if value is None or not value.isdigit():
        return 1
    n = int(value)
    return n if 1 <= n <= 1 << 20 else (1 if n < 1 else 1 << 20)


_STARTS = frozenset(("p", "h", "s", "tab", "line-break", "table-cell", "covered-table-cell", "table-row", "table"))
_ENDS = frozenset(("p", "h", "table-cell", "covered-table-cell", "table-row", "table"))


class _Flow(Flow):
    __slots__ = ("depth", "sheets", "value")

    def __init__(self, budget: Budget, sheets: bool) -> None:
        super().__init__(budget)
        self.depth = 0          # open text:p / text:h
        self.sheets = sheets    # ods: name each table
        self.value = ""         # office:value of the open cell, used when it has no paragraph

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name not in _STARTS:
            return
        if name == "p" or name == "h":
            self.depth += 1
        elif name == "s":
            self.add(" ")
        elif name == "tab":
            self.add("\t")
        elif name == "line-break":
            self.newline()
        elif name == "table-cell" or name == "covered-table-cell":
            span = 1
            if attrs:
                repeated, spanned = attrs.get("table:number-columns-repeated"), attrs.get("table:number-columns-spanned")
                if repeated is not None or spanned is not None:
                    span = max(_count(repeated), _count(spanned))
                self.value = (attrs.get("office:date-value") or attrs.get("office:value")
                              or attrs.get("office:string-value", ""))
            self.open_cell(False, span)
        elif name == "table-row":
            self.open_row()
        elif name == "table":
            if self.sheets and not self.stack:
                self.newline()
                self.add(f"Sheet: {attrs.get('table:name', '')}")
                self.newline()
            self.open_table()

    def end(self, name: str) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name not in _ENDS:
            return
        if name == "p" or name == "h":
            self.depth -= 1
            self.newline()
        elif name == "table-cell" or name == "covered-table-cell":
            if self.value and self.stack and not "".join(self.stack[-1].cell).strip():
                self.add(self.value)
            self.value = ""
            self.close_cell()
        elif name == "table-row":
            self.close_row()
        elif name == "table":
            self.close_table()

    def data(self, data: str) -> None:
        if self.depth > 0:
            self.add(data)


def extract(zf: zipfile.ZipFile, kind: str, budget: Budget) -> str:
    if "META-INF/manifest.xml" in zf.NameToInfo:
        if b"encryption-data" in read_member(zf, "META-INF/manifest.xml", budget, 4 << 20):
            raise Encrypted
    flow = _Flow(budget, kind == "ods")
    for name in ("content.xml", "styles.xml"):
        if name in zf.NameToInfo and not flow.done():
            budget.tick()
            parse_member(zf, name, flow, budget)
            flow.newline()
    return flow.result()
