"""Context scoring: corroborating keywords, column headers, negative evidence.

A candidate's confidence starts from what its validator proves and moves with
what surrounds it:

* **corroboration**: a keyword of its type (whole words, case-insensitive)
  within ``WINDOW`` characters *before or after* it, or a column header of
  its type above it in a table (delimited lines: tab, ``|``, ``;`` or ``,``);
* **negative evidence**: words that say the number is something else (order,
  invoice, ticket, ref, reference, version, ISBN, tracking, serial, ...)
  within the same window or in its column header. A negative word that is
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
    """A case-insensitive whole-word alternation; spaces match any whitespace run."""
    alts = sorted({re.escape(w).replace(r"\ ", r"[\s_\-]+") for w in items}, key=len, reverse=True)
    return re.compile(r"(?<![A-Za-z0-9])(?:" + "|".join(alts) + r")(?![A-Za-z0-9])", re.I)


NEGATIVE = words([
    "order", "order no", "order number", "invoice", "inv", "ticket", "ref", "reference", "version",
    "isbn", "issn", "tracking", "serial", "sku", "barcode", "batch", "booking", "confirmation",
    "transaction", "txn", "receipt", "po number", "purchase order", "part number", "part no", "model",
    "build", "timestamp", "case number", "incident", "policy number", "doi", "ean", "upc",
    "consignment", "parcel", "shipment", "imei", "licence key", "license key", "product key",
])

_DELIMS = ("\t", "|", ";", ",")


class ChunkContext:
    """One chunk's text with cached lookups for scoring its candidates."""

    __slots__ = ("text", "where", "source", "protected", "_lines", "_headers")

    def __init__(self, text: str, where: str = "body", source: str = "body", protected: bool = False):
        self.text = text
        self.where = where
        self.source = source
        self.protected = protected
        self._lines: list[int] | None = None
        self._headers: dict[int, tuple[str, list[str]]] = {}

    # -------------------------------------------------------------- windows

    def _bounds(self, start: int, end: int, window: int) -> tuple[int, int]:
        lo = max(0, start - window)
        hi = min(len(self.text), end + window)
        # do not cut a word in two at the edges
        while lo > 0 and lo > start - window - 20 and self.text[lo - 1].isalnum():
            lo -= 1
        while hi < len(self.text) and hi < end + window + 20 and self.text[hi].isalnum():
            hi += 1
        return lo, hi

    def nearest(self, pattern: re.Pattern[str], start: int, end: int, window: int = WINDOW,
                exclude: list[tuple[int, int]] | None = None) -> tuple[int, list[tuple[int, int]]]:
        """Distance to the nearest match of ``pattern`` around [start, end) (-1 if none), and all spans."""
        lo, hi = self._bounds(start, end, window)
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

    def header(self, pos: int) -> str:
        """The column header above ``pos`` in a delimited table, lower case, or ''."""
        text = self.text
        ls = text.rfind("\n", 0, pos) + 1
        le = text.find("\n", pos)
        le = len(text) if le < 0 else le
        line = text[ls:le]
        delim = next((d for d in _DELIMS if d in line), "")
        if not delim:
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
            self._lines = [0] + [m.end() for m in re.finditer("\n", self.text)]
        idx = bisect.bisect_right(self._lines, line_start) - 1
        top = idx
        for _ in range(5000):                     # bounded walk up the table
            if top == 0:
                break
            prev_s = self._lines[top - 1]
            prev = self.text[prev_s:self._lines[top] - 1]
            if delim not in prev:
                break
            top -= 1
        hs = self._lines[top]
        he = self.text.find("\n", hs)
        cells = [c.strip().lower() for c in self.text[hs:len(self.text) if he < 0 else he].split(delim)]
        digits = sum(ch.isdigit() for c in cells for ch in c)
        result = (hs, cells) if digits <= len(cells) else None
        self._headers[line_start] = result
        return result

    # -------------------------------------------------------------- scoring

    def evidence(self, positive: re.Pattern[str] | None, header_words: re.Pattern[str] | None,
                 start: int, end: int, window: int = WINDOW) -> tuple[bool, bool]:
        """(corroborated, negative) for a candidate at [start, end)."""
        pos_dist, pos_spans = (-1, [])
        if positive is not None:
            pos_dist, pos_spans = self.nearest(positive, start, end, window)
        neg_dist, _ = self.nearest(NEGATIVE, start, end, window, exclude=pos_spans)
        head = self.header(start) if ("\t" in self.text or "," in self.text or "|" in self.text
                                      or ";" in self.text) else ""
        head_pos = bool(head and header_words is not None and header_words.search(head))
        head_neg = bool(head and not head_pos and NEGATIVE.search(head))
        corroborated = head_pos or pos_dist >= 0
        negative = head_neg or (neg_dist >= 0 and not head_pos and (pos_dist < 0 or neg_dist < pos_dist))
        return corroborated, negative


def band(strong: bool, corroborated: bool, negative: bool) -> Confidence:
    """The usual ladder: a validated value is MEDIUM; corroboration (or a strong
    structure) lifts it to HIGH; negative evidence drops it one band."""
    conf = Confidence.HIGH if (strong or corroborated) else Confidence.MEDIUM
    if negative:
        conf = Confidence(max(Confidence.LOW, conf - 1)) if corroborated else Confidence.LOW
    return conf


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
