"""Context scoring: corroborating keywords, column headers, negative evidence.

A candidate's confidence starts from what its validator proves and moves with
what surrounds it:

* **corroboration**: a keyword of its type (whole words, case-insensitive)
  within ``WINDOW`` characters *before or after* it, or its label: the
  ``Header: `` right before it (relay.extract writes every table row as
  ``Header: value | Header: value``), or a column header of its type above
  it in a raw delimited table (tab, ``|``, ``;`` or ``,``);
* **negative evidence**: words that say the number is something else (order,
  invoice, ticket, ref, reference, version, ISBN, tracking, serial, ...)
  within the same window *on the candidate's own line*, or in its column header. A negative word that is
  part of a corroborating phrase ("Unique Taxpayer *Reference*") does not
  count, and when both are present the nearer one wins.

``WINDOW = 60`` characters: about one line of mail text, enough for
"NHS number: 943 476 5919" and "date of birth (DD/MM/YYYY) ... 01/02/1980",
short enough that a keyword in the next paragraph does not vouch for a number.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable

from relay.findings import Confidence

WINDOW = 60


def words(items: Iterable[str]) -> re.Pattern[str]:
    """A case-insensitive whole-word alternation; spaces match any whitespace run.

    The look-ahead on the words' first characters lets the engine pass over
    most positions without trying every word (about a third faster; same matches)."""
    items = list(items)
    alts = sorted({re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in items}, key=len, reverse=True)
    firsts = "".join(sorted({re.escape(c) for w in items for c in (w[0].lower(), w[0].upper())}))
    return re.compile(r"(?<![A-Za-z0-9])(?=[" + firsts + r"])(?:" + "|".join(alts) + r")(?![A-Za-z0-9])", re.I)


NEGATIVE = words([
    "order", "order no", "order number", "invoice", "inv", "ticket", "ref", "reference", "version",
    "isbn", "issn", "tracking", "serial", "sku", "barcode", "batch", "booking", "confirmation",
    "transaction", "txn", "receipt", "po number", "purchase order", "part number", "part no", "model",
    "build", "timestamp", "case number", "incident", "policy number", "doi", "ean", "upc",
    "consignment", "parcel", "shipment", "imei", "licence key", "license key", "product key",
])

_DELIMS = ("\t", "|", ";", ",")
_WORD_END = re.compile(r"[^A-Za-z0-9]")
_NEWLINE = re.compile("\n")
_NON_SPACE = re.compile(r"\S")
_SHORT = 8192                      # characters: up to this, a line's ends are found by searching the text


class ChunkContext:
    """One chunk's text with cached lookups for scoring its candidates."""

    __slots__ = ("text", "where", "source", "protected", "_lines", "_headers", "_tabular", "_newlines")

    def __init__(self, text: str, where: str = "body", source: str = "body", protected: bool = False):
        self.text = text
        self.where = where
        self.source = source
        self.protected = protected
        self._lines: tuple[list[int], list[int]] | None = None
        self._headers: dict[int, tuple[str, list[str]]] = {}
        self._tabular: bool | None = None
        self._newlines: list[int] | None = None

    # -------------------------------------------------------------- lines

    def line_start(self, pos: int) -> int:
        """Offset of the start of the line holding ``pos``.

        A short text is searched directly; a long one through its newline
        offsets, O(log n) a call (long one-line texts stay linear)."""
        if pos <= 0:
            return 0
        if len(self.text) <= _SHORT:
            return self.text.rfind("\n", 0, pos) + 1
        if self._newlines is None:
            self._newlines = [m.start() for m in _NEWLINE.finditer(self.text)]
        i = bisect.bisect_left(self._newlines, pos) - 1
        return self._newlines[i] + 1 if i >= 0 else 0

    def line_end(self, pos: int) -> int:
        """Offset of the newline ending the line holding ``pos`` (or the text's end)."""
        if len(self.text) <= _SHORT:
            end = self.text.find("\n", max(pos, 0))
            return len(self.text) if end < 0 else end
        if self._newlines is None:
            self._newlines = [m.start() for m in _NEWLINE.finditer(self.text)]
        i = bisect.bisect_left(self._newlines, pos)
        return self._newlines[i] if i < len(self._newlines) else len(self.text)

    # -------------------------------------------------------------- windows

    def _window(self, start: int, end: int, window: int, same_line: bool) -> tuple[int, int]:
        """[lo, hi) to search around [start, end): ``window`` characters either side, ``hi``
        extended to the end of its word (the patterns' own look-behind sees past ``lo``);
        ``same_line``: clipped to the candidate's line."""
        text = self.text
        n = len(text)
        lo = start - window if start > window else 0
        hi = end + window
        if same_line:
            ls, le = self.line_start(start), self.line_end(end)
            if ls > lo:
                lo = ls
            if le <= hi:                        # the line ends first: no word to extend to
                return lo, le
        if hi >= n:
            return lo, n
        m = _WORD_END.search(text, hi, min(n, hi + 20))
        hi = m.start() if m else min(n, hi + 20)
        return lo, (min(hi, le) if same_line else hi)

    def _nearest_in(self, pattern: re.Pattern[str], lo: int, hi: int, start: int, end: int,
                    exclude: list[tuple[int, int]] | None) -> tuple[int, list[tuple[int, int]]]:
        best, spans = -1, []
        for m in pattern.finditer(self.text, lo, hi):
            s, e = m.span()
            if s < end and e > start:          # inside the candidate itself
                continue
            if exclude and any(s < xe and e > xs for xs, xe in exclude):
                continue
            spans.append((s, e))
            dist = start - e if e <= start else s - end
            if best < 0 or dist < best:
                best = dist
        return best, spans

    def nearest(self, pattern: re.Pattern[str], start: int, end: int, window: int = WINDOW,
                exclude: list[tuple[int, int]] | None = None,
                same_line: bool = False) -> tuple[int, list[tuple[int, int]]]:
        """Distance to the nearest match of ``pattern`` around [start, end) (-1 if none), and all spans.

        ``same_line``: only on the candidate's own line (negative evidence
        and topic words describe what is on their line, not the next one).
        """
        lo, hi = self._window(start, end, window, same_line)
        return self._nearest_in(pattern, lo, hi, start, end, exclude)

    def header(self, pos: int) -> str:
        """The label of the value at ``pos``, lower case, or ''.

        Either the cell's own label ("NHS No: 943 476 5919", the extractor's
        table rows ``Header: value | Header: value``, and forms written the
        same way), or the column header above it in a delimited table
        (tab, ``|``, ``;`` or ``,``) whose rows carry no labels.
        """
        text = self.text
        ls = self.line_start(pos)
        cell = text.rfind(" | ", max(ls, pos - 200), pos)
        cs = ls if cell < 0 else cell + 3
        # a label is at most 40 characters from the cell's start: search no further (long lines stay linear)
        colon = text.rfind(": ", cs, min(pos, cs + 42))
        if colon >= 0 and not _NON_SPACE.search(text, colon + 2, pos):
            return text[cs:colon].strip().lower()
        le = self.line_end(pos)
        if le - ls > 5000:                            # not a table row
            return ""
        line = text[ls:le]
        delim = next((d for d in _DELIMS if d in line), "")
        if not delim or ls == 0:
            return ""
        above = text[self.line_start(ls - 1):ls - 1]
        if delim not in above:                        # one delimited line is prose, not a table
            return ""
        block = self._block_header(ls, delim)
        if block is None:
            return ""
        hstart, cells = block
        if hstart == ls:
            return ""
        col = line.count(delim, 0, pos - ls)
        return cells[col] if col < len(cells) else ""

    def _block_header(self, line_start: int, delim: str) -> tuple[int, list[str]] | None:
        if line_start in self._headers:
            return self._headers[line_start]
        if self._lines is None:
            self._index_lines()
        lines, tops = self._lines
        idx = bisect.bisect_right(lines, line_start) - 1
        hs = lines[tops[idx]]
        if hs in self._headers and hs != line_start:
            result = self._headers[hs]
        else:
            he = self.text.find("\n", hs)
            cells = [c.strip().lower() for c in self.text[hs:len(self.text) if he < 0 else he].split(delim)]
            digits = sum(ch.isdigit() for c in cells for ch in c)
            result = (hs, cells) if digits <= len(cells) else None
            self._headers[hs] = result
        self._headers[line_start] = result
        return result

    def _index_lines(self) -> None:
        """Line offsets, and for each line the first line of its table block
        (consecutive lines with the same delimiter), in one pass."""
        starts = [0] + [m.end() for m in re.finditer("\n", self.text)]
        tops, prev = [], ""
        for i, s in enumerate(starts):
            e = starts[i + 1] - 1 if i + 1 < len(starts) else len(self.text)
            line = self.text[s:e]
            d = next((x for x in _DELIMS if x in line), "")
            tops.append(tops[-1] if d and d == prev else i)
            prev = d
        self._lines = (starts, tops)

    # -------------------------------------------------------------- scoring

    def evidence(self, positive: re.Pattern[str] | None, header_words: re.Pattern[str] | None,
                 start: int, end: int, window: int = WINDOW, same_line: bool = False) -> tuple[bool, bool]:
        """(corroborated, negative) for a candidate at [start, end).

        ``same_line``: corroborating words count only on the candidate's line
        (for words as common as "born").
        """
        # a negative word on the candidate's own line beats corroboration from another line
        lo, hi = self._window(start, end, window, True)
        pos_dist, pos_spans = (-1, [])
        if positive is not None:
            pos_dist, pos_spans = self._nearest_in(positive, lo, hi, start, end, None)
        neg_dist, _ = self._nearest_in(NEGATIVE, lo, hi, start, end, pos_spans)
        if positive is not None and pos_dist < 0 and neg_dist < 0 and not same_line:
            pos_dist, _ = self.nearest(positive, start, end, window)
        if self._tabular is None:
            self._tabular = any(d in self.text for d in _DELIMS) or ": " in self.text
        head = self.header(start) if self._tabular else ""
        head_pos = bool(head and ((header_words is not None and header_words.search(head))
                                  or (positive is not None and positive.search(head))))
        # a label on the value's own line is already weighed as a word in the window
        inline = head and head in self.text[max(self.line_start(start), start - 200):start].lower()
        head_neg = bool(head and not head_pos and not inline and NEGATIVE.search(head))
        corroborated = head_pos or pos_dist >= 0
        negative = head_neg or (neg_dist >= 0 and not head_pos and (pos_dist < 0 or neg_dist < pos_dist))
        return corroborated, negative


def band(strong: bool, corroborated: bool, negative: bool) -> Confidence:
    """The usual ladder: a validated value is MEDIUM; corroboration (or a strong
    structure) lifts it to HIGH; negative evidence drops it one band."""
    conf = Confidence.HIGH if (strong or corroborated) else Confidence.MEDIUM
    return Confidence(conf - 1) if negative else conf


class Hit:
    """One detected value, internal to the scanner: ``value`` never leaves it."""

    __slots__ = ("kind", "type", "value", "confidence", "evidence", "start")

    def __init__(self, kind: str, type_: str, value: str, confidence: Confidence, evidence: str,
                 start: int = 0):
        self.kind = kind
        self.type = type_
        self.value = value
        self.confidence = confidence
        self.evidence = evidence
        self.start = start

    def __repr__(self) -> str:  # never shows the value
        return f"Hit({self.kind}, {self.type}, {self.confidence.name}, {self.evidence!r})"
