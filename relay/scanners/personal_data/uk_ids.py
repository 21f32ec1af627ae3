"""UK passport numbers, driving licence (driver) numbers and Unique Taxpayer References.

* Passport: nine digits are everywhere, so only with a passport keyword or
  column header nearby (HIGH; negative evidence drops it to MEDIUM).
* Driving licence: the DVLA 16-character structure with valid date fields
  (:func:`.validators.licence_ok`) is specific enough for HIGH on its own.
* UTR: ten digits with the HMRC mod 11 check (one random number in eleven
  passes), so only with a UTR keyword or header.
"""

from __future__ import annotations

from . import redact
from .confidence import ChunkContext, Hit, band, words
from .validators import licence_ok, utr_ok

PASSPORT_WORDS = words(["passport", "passport number", "passport no", "passport num", "travel document"])
LICENCE_WORDS = words(["driving licence", "driving license", "driver number", "driver licence",
                       "licence number", "license number", "licence no", "dvla", "driving licence number"])
UTR_WORDS = words(["utr", "unique taxpayer reference", "unique tax reference", "taxpayer reference",
                   "self assessment", "self-assessment", "tax reference", "utr number"])


def passport(cc: ChunkContext, start: int, end: int, digits: str, groups: list[int]) -> Hit | None:
    if groups != [9] or len(set(digits)) == 1:
        return None
    corroborated, negative = cc.evidence(PASSPORT_WORDS, PASSPORT_WORDS, start, end)
    if not corroborated:
        return None
    return Hit("personal_data", "uk_passport", digits, band(False, True, negative),
               redact.mask(digits, keep_end=2), start)


def utr(cc: ChunkContext, start: int, end: int, digits: str, groups: list[int]) -> Hit | None:
    if groups not in ([10], [5, 5]) or not utr_ok(digits):
        return None
    corroborated, negative = cc.evidence(UTR_WORDS, UTR_WORDS, start, end)
    if not corroborated:
        return None
    return Hit("personal_data", "uk_utr", digits, band(False, True, negative),
               redact.grouped(digits, (5, 5), keep_end=2), start)


def licence(cc: ChunkContext, start: int, end: int, value: str) -> Hit | None:
    if not licence_ok(value):
        return None
    corroborated, negative = cc.evidence(LICENCE_WORDS, LICENCE_WORDS, start, end)
    return Hit("personal_data", "uk_driving_licence", value.upper(), band(True, corroborated, negative),
               redact.mask(value), start)
