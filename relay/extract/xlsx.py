"""Excel 2007+ workbooks: every sheet's cell values, as tables.

Cells are placed by their reference (``C7``), so the header prefix of
:mod:`relay.extract.tables` lines up with sparse rows. Strings come from the
shared-string table, inline strings and cached formula results; booleans as
TRUE/FALSE; numbers in a date format (built-in or custom) as ``dd/mm/yyyy``
(``dd/mm/yyyy HH:MM`` with a time part), honouring the 1904 date system.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
import zipfile

from relay.extract import tables
from relay.extract.budget import Budget
from relay.extract.container import Handler, parse_bytes, parse_member, read_member

_BUILTIN_DATES = frozenset((*range(14, 23), *range(27, 37), 45, 46, 47, *range(50, 59)))
_LITERAL = re.compile(r'"[^"]*"|\\.|\[[^\]]*\]')
_DATE_CODE = re.compile(r"[dmyhs]", re.I)
_MAX_COLUMNS = 16384


_COLUMNS: dict[str, int] = {}


def _column(ref: str) -> int:
    """0-based column of a cell reference ("C7" -> 2); -1 if it has no letters."""
    letters = ref.rstrip("0123456789$")
    col = _COLUMNS.get(letters)
    if col is None:
        col = _letters(letters)
        if len(_COLUMNS) < 20000:
            _COLUMNS[letters] = col
    return col


def _letters(ref: str) -> int:
    col = 0
    for ch in ref:
        if "A" <= ch <= "Z":
            col = col * 26 + (ord(ch) - 64)
        elif "a" <= ch <= "z":
            col = col * 26 + (ord(ch) - 96)
        else:
            break
    return col - 1


class _Strings(Handler):
    __slots__ = ("values", "pieces", "in_t", "skip", "budget", "size")

    def __init__(self, budget: Budget) -> None:
        self.values: list[str] = []
        self.pieces: list[str] = []
        self.in_t = False
        self.skip = 0      # phonetic runs (rPh) repeat the text
        self.budget = budget
        self.size = 0

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "t":
            self.in_t = True
        elif name == "rPh":
            self.skip += 1

    def end(self, name: str) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "t":
            self.in_t = False
        elif name == "rPh":
            self.skip -= 1
        elif name == "si":
            value = "".join(self.pieces)
            self.size += len(value)
            self.values.append(value)
            self.pieces = []

    def data(self, data: str) -> None:
        if self.in_t and not self.skip:
            self.pieces.append(data)


class _Styles(Handler):
    """Which cell style indexes (``s=``) format numbers as dates."""

    __slots__ = ("custom", "xf_formats", "in_xfs")

    def __init__(self) -> None:
        self.custom: dict[int, bool] = {}
        self.xf_formats: list[int] = []
        self.in_xfs = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "numFmt":
            code = _LITERAL.sub("", attrs.get("formatCode", ""))
            num_id = attrs.get("numFmtId", "")
            if num_id.isdigit():
                self.custom[int(num_id)] = bool(_DATE_CODE.search(code)) and "general" not in code.lower()
        elif name == "cellXfs":
            self.in_xfs = True
        elif name == "xf" and self.in_xfs:
            num_id = attrs.get("numFmtId", "0")
            self.xf_formats.append(int(num_id) if num_id.isdigit() else 0)

    def end(self, name: str) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "cellXfs":
            self.in_xfs = False

    def date_styles(self) -> frozenset[int]:
        return frozenset(i for i, f in enumerate(self.xf_formats) if self.custom.get(f, f in _BUILTIN_DATES))


class _Sheet(Handler):
    __slots__ = ("strings", "dates", "epoch", "rows", "row", "col", "ctype", "style", "value",
                 "collect", "budget", "size", "seen")

    def __init__(self, strings: list[str], dates: frozenset[int], epoch: dt.datetime, budget: Budget,
                 size: int) -> None:
        self.strings, self.dates, self.epoch, self.budget = strings, dates, epoch, budget
        self.rows: list[tables.Row] = []
        self.row: tables.Row = []
        self.col = -1
        self.ctype = ""
        self.style = 0
        self.value = ""
        self.collect = False
        self.size = size    # text kept so far in this workbook
        self.seen: dict[str, str] = {}   # date serial -> text (dates repeat)

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "c":
            ref = attrs.get("r")
            self.col = _column(ref) if ref else self.col + 1
            self.ctype = attrs.get("t", "n")
            style = attrs.get("s", "0")
            self.style = int(style) if style.isdigit() else 0
            self.value = ""
        elif name == "v" or name == "t":
            self.collect = True
        elif name == "row":
            self.row = []
            self.col = -1

    def end(self, name: str) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "v" or name == "t":
            self.collect = False
        elif name == "c":
            text = self._cell(self.value)
            if text and 0 <= self.col < _MAX_COLUMNS:
                self.row.append((self.col, tables.clean_cell(text)))
                self.size += len(text)
        elif name == "row":
            if self.row:
                self.row.sort()
                self.rows.append(self.row)
            self.row = []

    def data(self, data: str) -> None:
        if self.collect:
            self.value += data

    def done(self) -> bool:
        return self.budget.full(self.size)

    def _cell(self, raw: str) -> str:
        kind = self.ctype
        if kind == "s":
            try:
                return self.strings[int(raw)]
            except (ValueError, IndexError):
                return ""
        if kind == "b":
            return "TRUE" if raw.strip() == "1" else "FALSE"
        if kind == "n" and raw and self.style in self.dates:
            return self._date(raw)
        return raw

    def _date(self, raw: str) -> str:
        text = self.seen.get(raw)
        if text is None:
            text = self.seen[raw] = _date(raw, self.epoch)
        return text


def _date(raw: str, epoch: dt.datetime) -> str:
    try:
        serial = float(raw)
        when = epoch + dt.timedelta(seconds=round(serial * 86400))   # 14:30 is stored as 14:29:59.99...
    except (ValueError, OverflowError):
        return raw
    if serial < 1:
        return f"{when.hour:02d}:{when.minute:02d}"
    day = f"{when.day:02d}/{when.month:02d}/{when.year:04d}"
    return f"{day} {when.hour:02d}:{when.minute:02d}" if when.hour or when.minute else day


class _Workbook(Handler):
    __slots__ = ("sheets", "date1904")

    def __init__(self) -> None:
        self.sheets: list[tuple[str, str]] = []   # (name, relationship id)
        self.date1904 = False

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "sheet":
            rid = next((v for k, v in attrs.items() if k.endswith(":id")), "")
            self.sheets.append((attrs.get("name", ""), rid))
        elif name == "workbookPr":
            self.date1904 = attrs.get("date1904", "") in ("1", "true")


class _Rels(Handler):
    __slots__ = ("targets",)

    def __init__(self) -> None:
        self.targets: dict[str, str] = {}

    def start(self, name: str, attrs: dict[str, str]) -> None:
        if ":" in name:
            name = name[name.find(":") + 1:]
        if name == "Relationship":
            self.targets[attrs.get("Id", "")] = attrs.get("Target", "")


def _sheet_order(zf: zipfile.ZipFile, main: str, sheet_parts: list[str], budget: Budget) -> tuple[list[tuple[str, str]], bool]:
    book = _Workbook()
    parse_bytes(read_member(zf, main, budget), book)
    rels = _Rels()
    folder, base = posixpath.split(main)
    rels_name = posixpath.join(folder, "_rels", base + ".rels")
    if rels_name in zf.NameToInfo:
        parse_bytes(read_member(zf, rels_name, budget), rels)
    ordered: list[tuple[str, str]] = []
    for name, rid in book.sheets:
        target = rels.targets.get(rid, "")
        part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join(folder, target))
        if part in sheet_parts and part not in (p for _, p in ordered):
            ordered.append((name, part))
    seen = {p for _, p in ordered}
    ordered.extend((posixpath.basename(p), p) for p in sheet_parts if p not in seen)
    return ordered, book.date1904


def extract_xlsx(zf: zipfile.ZipFile, parts: list[tuple[str, str]], budget: Budget) -> str:
    def named(suffix: str) -> list[str]:
        return [n for n, t in parts if t.endswith(suffix) and n in zf.NameToInfo]

    main = next((n for n, t in parts if t.endswith(".main+xml") and n in zf.NameToInfo), "")
    strings = _Strings(budget)
    for name in named("spreadsheetml.sharedstrings+xml")[:1]:
        parse_member(zf, name, strings, budget)
    styles = _Styles()
    for name in named("spreadsheetml.styles+xml")[:1]:
        parse_member(zf, name, styles, budget)
    sheet_parts = named("spreadsheetml.worksheet+xml")
    order, date1904 = _sheet_order(zf, main, sheet_parts, budget) if main else ([(p, p) for p in sheet_parts], False)
    epoch = dt.datetime(1904, 1, 1) if date1904 else dt.datetime(1899, 12, 30)
    dates = styles.date_styles()
    out: list[str] = []
    size = 0
    for title, part in order:
        budget.tick()
        sheet = _Sheet(strings.values, dates, epoch, budget, size)
        parse_member(zf, part, sheet, budget)
        rendered = tables.render(sheet.rows)
        if rendered:
            out.append(f"Sheet: {title}\n{rendered}")
            size += len(rendered)
        if budget.full(size):
            break
    return "\n\n".join(out)
