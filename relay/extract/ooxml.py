"""Word, Excel and PowerPoint 2007+ files (docx/docm, xlsx/xlsm, pptx/pptm).

Read with zipfile + expat callbacks (:mod:`relay.extract.container`), not
python-docx/openpyxl: see ``bench/extract.py`` for the measured difference.
What is extracted, because it is all sent data: docx body, tables, text
boxes, headers, footers, footnotes, endnotes, comments and deleted (tracked)
text; xlsx every sheet's cell values (shared, inline and formula strings;
date-formatted numbers as ``dd/mm/yyyy``), sheet by sheet under a
``Sheet: <name>`` line; pptx slides in order, their tables, then speaker notes.
Tables and sheets are rendered by :mod:`relay.extract.tables`.
"""

from __future__ import annotations

import re
import zipfile

from relay.extract.budget import Budget
from relay.extract.container import Handler, parse_bytes, parse_member, read_member
from relay.extract.flow import Flow
from relay.extract.xlsx import extract_xlsx

_TYPES = "[Content_Types].xml"
_KIND_BY_MAIN = (
    ("wordprocessingml.document.main", "docx"), ("ms-word.document.macroenabled.main", "docx"),
    ("wordprocessingml.template.main", "docx"), ("ms-word.template.macroenabledtemplate.main", "docx"),
    ("spreadsheetml.sheet.main", "xlsx"), ("ms-excel.sheet.macroenabled.main", "xlsx"),
    ("spreadsheetml.template.main", "xlsx"), ("ms-excel.template.macroenabled.main", "xlsx"),
    ("presentationml.presentation.main", "pptx"), ("ms-powerpoint.presentation.macroenabled.main", "pptx"),
    ("presentationml.slideshow.main", "pptx"), ("presentationml.template.main", "pptx"),
)
_DOCX_EXTRA = ("wordprocessingml.header+xml", "wordprocessingml.footer+xml", "wordprocessingml.footnotes+xml",
               "wordprocessingml.endnotes+xml", "wordprocessingml.comments+xml")
_NUMBER = re.compile(r"(\d+)")


class _Types(Handler):
    __slots__ = ("parts",)

    def __init__(self) -> None:
        self.parts: list[tuple[str, str]] = []   # (part name without leading /, content type lower case)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "Override":
            self.parts.append((attrs.get("PartName", "").lstrip("/"), attrs.get("ContentType", "").lower()))


def content_types(zf: zipfile.ZipFile, budget: Budget) -> list[tuple[str, str]]:
    handler = _Types()
    parse_bytes(read_member(zf, _TYPES, budget), handler)
    return handler.parts


def kind_of(zf: zipfile.ZipFile, budget: Budget) -> tuple[str | None, list[tuple[str, str]]]:
    """("docx" | "xlsx" | "pptx" | None, the package's parts) for an OOXML zip."""
    names = set(zf.namelist())
    if _TYPES not in names:
        return None, []
    parts = content_types(zf, budget)
    for _, ctype in parts:
        if ctype.endswith(".main+xml"):
            for marker, kind in _KIND_BY_MAIN:
                if marker in ctype:
                    return kind, parts
    return None, parts


def _natural(name: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in _NUMBER.split(name))


# "text": the text of an xlsx legacy comment (runs inside) or of a pptx comment (p:cm/p:text)
_TEXT = frozenset(("t", "delText", "text"))
_STARTS = frozenset((*_TEXT, "tab", "br", "cr", "tc", "gridSpan", "tr", "tbl", "Fallback"))
_ENDS = frozenset((*_TEXT, "p", "tc", "tr", "tbl", "Fallback", "comment", "cm"))


class _Flow(Flow):
    """docx (w:) and DrawingML (a:) share local names: p, t, tab, br, tbl, tr, tc."""

    __slots__ = ("in_text", "skip", "span")

    def __init__(self, budget: Budget) -> None:
        super().__init__(budget)
        self.in_text = False
        self.skip = 0       # inside mc:Fallback (a duplicate of mc:Choice)
        self.span = 1

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name not in _STARTS:
            return   # most elements are formatting: one set lookup
        if self.skip:
            if name == "Fallback":
                self.skip += 1
            return
        if name in _TEXT:
            self.in_text = True
        elif name == "tab":
            self.add("\t")
        elif name == "br" or name == "cr":
            self.newline()
        elif name == "tc":
            span = attrs.get("gridSpan")       # DrawingML puts the span on a:tc
            self.open_cell(False, int(span) if span and span.isdigit() else 1)
        elif name == "gridSpan":              # WordprocessingML puts it in w:tcPr
            val = attrs.get("w:val", "1")
            if self.stack and val.isdigit():
                self.stack[-1].span = max(1, min(int(val), 1000))
        elif name == "tr":
            self.open_row()
        elif name == "tbl":
            self.open_table()
        elif name == "Fallback":
            self.skip = 1

    def end(self, name: str) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name not in _ENDS:
            return
        if self.skip:
            if name == "Fallback":
                self.skip -= 1
            return
        if name in _TEXT:
            self.in_text = False
        elif name == "p" or name == "comment" or name == "cm":
            self.newline()
        elif name == "tc":
            self.close_cell()
        elif name == "tr":
            self.close_row()
        elif name == "tbl":
            self.close_table()

    def data(self, data: str) -> None:
        if self.in_text and not self.skip:
            self.add(data)


def _flow_parts(zf: zipfile.ZipFile, names: list[str], budget: Budget) -> str:
    flow = _Flow(budget)
    for name in names:
        budget.tick()
        parse_member(zf, name, flow, budget)
        flow.newline()
        flow.newline()
        if flow.done():
            break
    return flow.result()


def extract_docx(zf: zipfile.ZipFile, parts: list[tuple[str, str]], budget: Budget) -> str:
    main = [n for n, t in parts if t.endswith(".main+xml") and n in zf.NameToInfo]
    extra = sorted((n for n, t in parts if t.endswith(_DOCX_EXTRA) and n in zf.NameToInfo), key=_natural)
    return _flow_parts(zf, main + extra, budget)


def extract_pptx(zf: zipfile.ZipFile, parts: list[tuple[str, str]], budget: Budget) -> str:
    slides = sorted((n for n, t in parts if t.endswith("presentationml.slide+xml")), key=_natural)
    notes = sorted((n for n, t in parts if t.endswith("presentationml.notesslide+xml")), key=_natural)
    comments = sorted((n for n, t in parts if t.endswith("presentationml.comments+xml")), key=_natural)
    return _flow_parts(zf, [n for n in slides + notes + comments if n in zf.NameToInfo], budget)


def _xlsx_with_comments(zf: zipfile.ZipFile, parts: list[tuple[str, str]], budget: Budget) -> str:
    text = extract_xlsx(zf, parts, budget)
    names = sorted((n for n, t in parts if t.endswith("spreadsheetml.comments+xml") and n in zf.NameToInfo),
                   key=_natural)
    if not names or budget.full(len(text)):
        return text
    comments = _flow_parts(zf, names, budget)   # over-collection is trimmed by extract()
    return f"{text}\n\nComments:\n{comments}" if comments.strip() else text


def extract(zf: zipfile.ZipFile, budget: Budget) -> str | None:
    """Text of an OOXML package, or None if it is not one we read."""
    kind, parts = kind_of(zf, budget)
    if kind == "docx":
        return extract_docx(zf, parts, budget)
    if kind == "xlsx":
        return _xlsx_with_comments(zf, parts, budget)
    if kind == "pptx":
        return extract_pptx(zf, parts, budget)
    return None


