"""A person's date of birth: a plausible past date with date-of-birth context.

Dates are everywhere in mail; only one introduced as a birth date counts:
"DOB", "D.O.B.", "date of birth", "born (on)", "birthday" within 40
characters either side on the same line, or a column headed so. Day-first (UK) order; a value that can
only be month-first (``12/31/1980``) is read that way.
"""

from __future__ import annotations

import re
from datetime import date

from .confidence import ChunkContext, Hit, band, words
from .validators import plausible_birth_date

DOB_WORDS = words(["dob", "d.o.b", "d.o.b.", "date of birth", "birth date", "birthdate", "born", "born on",
                   "birthday", "date_of_birth", "birth"])
ANCHORS = ("dob", "d.o.b", "date of birth", "birth date", "birthdate", "born", "birthday")
MONTHS = {m: i for i, m in enumerate(
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1)}
_NUMERIC = re.compile(r"([0-9]{1,4})[/.\-]([0-9]{1,2})[/.\-]([0-9]{2,4})")
_DAY_MONTH = re.compile(r"([0-9]{1,2})(?:st|nd|rd|th)?\s+([A-Za-z]{3})[a-z]*\.?,?\s+([0-9]{4})")
_MONTH_DAY = re.compile(r"([A-Za-z]{3})[a-z]*\.?\s+([0-9]{1,2})(?:st|nd|rd|th)?,?\s+([0-9]{4})")


def parse(raw: str) -> tuple[int, int, int] | None:
    """(year, month, day) of a date as written, or None."""
    if m := _NUMERIC.fullmatch(raw):
        a, b, c = (int(x) for x in m.groups())
        if len(m.group(1)) == 4:
            return a, b, c
        if len(m.group(3)) == 2:                      # 05/03/85: the most recent past year
            c += 1900 if c > date.today().year % 100 else 2000
        elif len(m.group(3)) != 4:
            return None
        if b > 12 and a <= 12:
            a, b = b, a
        return c, b, a
    if m := _DAY_MONTH.fullmatch(raw):
        month = MONTHS.get(m.group(2).lower())
        return (int(m.group(3)), month, int(m.group(1))) if month else None
    if m := _MONTH_DAY.fullmatch(raw):
        month = MONTHS.get(m.group(1).lower())
        return (int(m.group(3)), month, int(m.group(2))) if month else None
    return None


_MONTH_FIRST = re.compile(r"(?<![A-Za-z])[A-Za-z]{3,9}\.?\s+[0-9]{1,2}(?:st|nd|rd|th)?,?\s+[0-9]{4}(?![0-9])")


def near_anchor(cc: ChunkContext, start: int, end: int, done: set[int] | None = None) -> list[Hit]:
    """Month-first dates ("March 14, 1985") near a date-of-birth keyword at [start, end), on its line.

    Dates that start with a digit come from the combined scan. ``done``: start
    offsets of dates already checked for an earlier keyword of the same chunk
    (a date near several keywords is scored once: its verdict depends on its
    own window, not on the keyword that led here)."""
    text = cc.text
    lo = max(cc.line_start(start), start - 40)
    hi = min(cc.line_end(end), end + 40)
    hits = []
    for m in _MONTH_FIRST.finditer(text, lo, hi):
        if done is not None:
            if m.start() in done:
                continue
            done.add(m.start())
        hit = check(cc, m.start(), m.end(), m.group())
        if hit:
            hits.append(hit)
    return hits


def check(cc: ChunkContext, start: int, end: int, raw: str) -> Hit | None:
    parsed = parse(raw.strip())
    if parsed is None or not plausible_birth_date(*parsed):
        return None
    corroborated, negative = cc.evidence(DOB_WORDS, DOB_WORDS, start, end, window=40, same_line=True)
    if not corroborated:
        return None
    y, m, d = parsed
    return Hit("personal_data", "date_of_birth", f"{y:04d}-{m:02d}-{d:02d}", band(False, True, negative),
               "••/••/••••", start)
