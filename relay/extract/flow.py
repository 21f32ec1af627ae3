"""Text flow shared by the XML document extractors: paragraphs, breaks, tables.

An extractor's expat handler calls ``add`` for text, ``newline`` at paragraph
ends and breaks, and the table calls as the markup opens and closes tables,
rows and cells; ``text()`` gives the result. Text inside a table cell goes to
that cell (newlines in a cell become spaces); a finished table is rendered by
:mod:`relay.extract.tables` into the enclosing flow. Tables nested past
``MAX_NESTED`` flow as plain text so nesting cannot make the work quadratic.
"""

from __future__ import annotations

from relay.extract import tables
from relay.extract.budget import Budget
from relay.extract.container import Handler

MAX_NESTED = 8


class Flow(Handler):
    __slots__ = ("budget", "out", "sink", "stack", "size", "over")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.out: list[str] = []
        self.sink = self.out
        self.stack: list[tables.Builder] = []
        self.size = 0
        self.over = 0   # open tables past MAX_NESTED

    def add(self, text: str) -> None:
        self.sink.append(text)
        self.size += len(text)

    def newline(self) -> None:
        self.sink.append("\n")

    def done(self) -> bool:
        return self.budget.full(self.size)

    def open_table(self) -> None:
        if len(self.stack) >= MAX_NESTED:
            self.over += 1
            self.newline()
            return
        self.stack.append(tables.Builder())
        self.sink = self.stack[-1].cell

    def close_table(self) -> None:
        if self.over:
            self.over -= 1
            self.newline()
        elif self.stack:
            rendered = self.stack.pop().render()
            self.sink = self.stack[-1].cell if self.stack else self.out
            self.sink.append(f"\n{rendered}\n")

    def open_row(self) -> None:
        if self.stack and not self.over:
            self.stack[-1].end_row()
            self.sink = self.stack[-1].cell

    def close_row(self) -> None:
        self.open_row()

    def open_cell(self, is_header: bool = False, span: int = 1) -> None:
        if self.stack and not self.over:
            table = self.stack[-1]
            table.start_cell(is_header, span)
            self.sink = table.cell
        else:
            self.sink.append(" ")

    def close_cell(self) -> None:
        if self.stack and not self.over:
            table = self.stack[-1]
            table.end_cell()
            self.sink = table.cell

    def result(self) -> str:
        while self.stack:
            self.close_table()
        return "".join(self.out)
