"""Payment cards: Luhn, scheme IIN range and length, published test numbers out.

HIGH when the number is written the way cards are (``4-4-4-4``, Amex
``4-6-5``) or a card word is near; a bare Luhn-valid run of digits is
MEDIUM; order numbers, timestamps and the like (negative words) drop it.
"""

from __future__ import annotations

from relay.findings import Confidence

from .confidence import ChunkContext, Hit, band, words
from . import redact
from .data import load_lines
from .validators import card_ok

KEYWORDS = words(["card", "card number", "card no", "credit card", "debit card", "visa", "mastercard",
                  "master card", "amex", "american express", "maestro", "discover", "jcb", "diners",
                  "pan", "cc", "expiry", "exp", "expires", "cvv", "cvc", "cv2", "security code",
                  "long number", "valid thru", "cardholder", "card holder", "payment details"])
HEADERS = words(["card", "card number", "pan", "cc", "credit card", "card_number", "cardnumber"])
TEST_PANS = frozenset(load_lines("test_pans.txt"))

_CARD_SHAPES = frozenset({(4, 4, 4, 4), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 3), (4, 4, 4, 1), (4, 4, 4, 2),
                          (4, 4, 4, 3), (4, 4, 4, 4, 1), (4, 4, 4, 4, 2), (4, 4, 4, 4, 3)})


def shape_ok(groups: list[int]) -> bool:
    return len(groups) == 1 or tuple(groups) in _CARD_SHAPES


def check(cc: ChunkContext, start: int, end: int, digits: str, groups: list[int]) -> Hit | None:
    if not 12 <= len(digits) <= 19 or not shape_ok(groups) or not card_ok(digits):
        return None
    if digits in TEST_PANS:
        return None
    corroborated, negative = cc.evidence(KEYWORDS, HEADERS, start, end)
    conf = band(len(groups) > 1, corroborated, negative)
    if negative and not corroborated:      # "order 4917 1629 2805 5054": grouping alone is not enough
        conf = Confidence.LOW
    return Hit("personal_data", "payment_card", digits, conf, redact.card(digits), start)
