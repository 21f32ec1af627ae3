"""CSV and TSV attachments as tables.

The delimiter is the most frequent of ``, ; TAB |`` outside quotes in the
first line (what spreadsheet exports use); rows are parsed by the stdlib
``csv`` module and rendered by :mod:`relay.extract.tables`, so a header row
labels every value below it.
"""

from __future__ import annotations

import csv
import io

from relay.extract import tables
from relay.extract.budget import Budget

_DELIMITERS = (",", ";", "\t", "|")
_FIELD_LIMIT = 1 << 20


def _delimiter(text: str) -> str:
    line = text[: text.find("\n")] if "\n" in text[:65536] else text[:65536]
    unquoted = "".join(line.split('"')[::2])
    counts = [(unquoted.count(d), d) for d in _DELIMITERS]
    best = max(counts)
    return best[1] if best[0] else ","


def extract(text: str, budget: Budget) -> str:
    if csv.field_size_limit() < _FIELD_LIMIT:
        csv.field_size_limit(_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text), delimiter=_delimiter(text))
    rows: list[tables.Row] = []
    size = 0
    for n, record in enumerate(reader):
        row = [(i, tables.clean_cell(cell)) for i, cell in enumerate(record)]
        rows.append(row)
        size += sum(len(c) for _, c in row) + 3 * len(row)
        if n & 0x3FF == 0:
            budget.tick()
        if budget.full(size):
            break
    return tables.render(rows)
