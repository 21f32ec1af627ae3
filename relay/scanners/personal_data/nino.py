"""UK National Insurance numbers (HMRC prefix rules in :mod:`.validators`).

The combined scan finds the six digits; this module reads the two prefix
letters before them and the suffix letter after, in the forms people type:
``AB123456C``, ``AB 12 34 56 C``, ``ab-12-34-56-c``.
"""

from __future__ import annotations

from relay.findings import Confidence

from . import redact
from .confidence import ChunkContext, Hit, band, words
from .validators import nino_ok

KEYWORDS = words(["national insurance", "national insurance number", "ni number", "ni no", "nino", "nin",
                  "n.i.", "ni", "nat ins", "insurance number"])
HEADERS = KEYWORDS


def _alpha(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def check(cc: ChunkContext, start: int, end: int, digits: str, groups: list[int]) -> Hit | None:
    if groups not in ([6], [2, 2, 2]):
        return None
    text = cc.text
    # prefix: "AB", "AB ", "AB-" directly before the digits
    p = start
    if p >= 1 and text[p - 1] in " -":
        p -= 1
    if p < 2 or not (_alpha(text[p - 1]) and _alpha(text[p - 2])):
        return None
    if p >= 3 and text[p - 3].isalnum():
        return None
    prefix = text[p - 2:p]
    # suffix: "C", " C", "-C" directly after, then no letter/digit
    n = len(text)

    def lone_letter(i: int) -> bool:
        return i < n and _alpha(text[i]) and (i + 1 >= n or not text[i + 1].isalnum())

    if lone_letter(end):
        q, suffix = end, text[end]
    elif end < n and text[end] in " -" and lone_letter(end + 1):
        q, suffix = end + 1, text[end + 1]
    elif end < n and text[end].isalnum():
        return None
    else:
        q, suffix = end, ""
    if not nino_ok(prefix, digits, suffix or "A"):
        return None
    if suffix and (prefix.isupper() != suffix.isupper()):
        return None
    corroborated, negative = cc.evidence(KEYWORDS, HEADERS, p - 2, q + len(suffix))
    conf = band(prefix.isupper() and bool(suffix), corroborated, negative)
    if not suffix:
        if not corroborated:
            return None
        conf = min(conf, Confidence.MEDIUM)
    return Hit("personal_data", "uk_nino", (prefix + digits + suffix).upper(), conf,
               redact.nino(prefix, suffix or "•"), p - 2)
