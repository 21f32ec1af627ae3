"""Excel 97-2003 workbooks (.xls, BIFF8) with xlrd: every sheet as a table.

Rendered like xlsx (:mod:`relay.extract.xlsx`): a ``Sheet: <name>`` line,
then the rows through :mod:`relay.extract.tables`; whole numbers without
".0", date cells as ``dd/mm/yyyy`` (with `` HH:MM`` when they have a time),
booleans TRUE/FALSE, error cells left out. xlrd's diagnostics go to a
private buffer, never to stdout.
"""

from __future__ import annotations

import io

from relay.extract import tables
from relay.extract.budget import Budget


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)


def extract(data: bytes, budget: Budget) -> str:
    import xlrd   # imported on first use

    book = xlrd.open_workbook(file_contents=data, logfile=io.StringIO(), verbosity=0, on_demand=True)
    out: list[str] = []
    size = 0
    try:
        for index in range(book.nsheets):
            sheet = book.sheet_by_index(index)
            rows: list[tables.Row] = []
            for r in range(sheet.nrows):
                if not r & 0xFF:
                    budget.tick()
                row: tables.Row = []
                for c, (ctype, value) in enumerate(zip(sheet.row_types(r), sheet.row_values(r))):
                    text = _cell(xlrd, book, ctype, value)
                    if text:
                        row.append((c, tables.clean_cell(text)))
                        size += len(text)
                rows.append(row)
                if budget.full(size):
                    break
            rendered = tables.render(rows)
            if rendered:
                out.append(f"Sheet: {sheet.name}\n{rendered}")
            book.unload_sheet(index)
            if budget.full(size):
                break
    finally:
        book.release_resources()
    return "\n\n".join(out)


def _cell(xlrd, book, ctype: int, value) -> str:
    if ctype == xlrd.XL_CELL_TEXT:
        return value
    if ctype == xlrd.XL_CELL_NUMBER:
        return _number(value)
    if ctype == xlrd.XL_CELL_DATE:
        try:
            when = xlrd.xldate_as_datetime(value, book.datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return _number(value)
        if value < 1:
            return f"{when.hour:02d}:{when.minute:02d}"
        day = f"{when.day:02d}/{when.month:02d}/{when.year:04d}"
        return f"{day} {when.hour:02d}:{when.minute:02d}" if when.hour or when.minute else day
    if ctype == xlrd.XL_CELL_BOOLEAN:
        return "TRUE" if value else "FALSE"
    return ""
