"""NHS numbers: modulus 11 (check value 10 never issued), test and placeholder ranges out.

A checksum pass alone proves little (about one random 10-digit number in
eleven passes), so HIGH needs a corroborating keyword or column header; an
uncorroborated number in the usual ``3 3 4`` layout within the issued ranges
is MEDIUM, anything else uncorroborated LOW.
"""

from __future__ import annotations

from relay.findings import Confidence

from . import redact
from .confidence import ChunkContext, Hit, band, words
from .validators import nhs_in_issued_range, nhs_ok

KEYWORDS = words(["nhs", "nhs number", "nhs no", "nhs num", "health service number", "nhs id", "patient",
                  "patient number", "health and care number", "h&c number"])
HEADERS = words(["nhs", "nhs number", "nhs no", "nhs_number", "nhsno", "health and care number"])


def check(cc: ChunkContext, start: int, end: int, digits: str, groups: list[int]) -> Hit | None:
    if groups not in ([10], [3, 3, 4]) or not nhs_ok(digits):
        return None
    corroborated, negative = cc.evidence(KEYWORDS, HEADERS, start, end)
    conf = band(False, corroborated, negative)
    if not corroborated and (groups == [10] or not nhs_in_issued_range(digits)):
        conf = Confidence.LOW
    return Hit("personal_data", "nhs_number", digits, conf, redact.grouped(digits, (3, 3, 4)), start)
