"""Check digits and structure rules, each from a documented source.

Checksums come from python-stdnum (Luhn, IBAN, ISO 7064 mod 97-10); the NHS
and UTR mod 11 rules are stdnum's, re-stated here without its clean-up pass
because they run on every 10-digit number in the text (a unit test checks
both agree on 20,000 random numbers). The rest (scheme IIN ranges, NINO
prefixes, driving licence dates) are written here with the source named next
to each rule.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import date

from stdnum import iban as _iban
from stdnum import luhn as _luhn
from stdnum.iso7064 import mod_97_10 as _mod97

# ------------------------------------------------------------------ generic


def luhn_ok(digits: str) -> bool:
    """stdnum's Luhn check; ASCII digit strings (every card candidate) summed here with a table,
    the same arithmetic without its per-digit alphabet lookups (a unit test checks both agree)."""
    if not (digits.isascii() and digits.isdigit()):
        return _luhn.is_valid(digits)
    rev = digits[::-1]
    total = sum(map(int, rev[::2])) + sum(_LUHN_DOUBLE[int(d)] for d in rev[1::2])
    return total % 10 == 0


_LUHN_DOUBLE = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)


def mod97_ok(value: str) -> bool:
    """ISO 7064 mod 97-10 over letters and digits; a value shaped like an IBAN
    (two letters, two digits, ...) is first rearranged as IBANs are (ISO 13616)."""
    v = value.upper()
    if len(v) > 4 and v[:2].isalpha() and v[2:4].isdigit():
        v = v[4:] + v[:4]
    try:
        return _mod97.is_valid(v)
    except ValueError:
        return False


def mod11_ok(digits: str) -> bool:
    """Weighted mod 11 (weights n..2 on all but the last digit, NHS style).

    The check digit is ``11 - sum % 11`` (11 becomes 0); a result of 10 means
    the number cannot exist.
    """
    if not digits.isdigit() or len(digits) < 2:
        return False
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * w for d, w in zip(body, range(len(body) + 1, 1, -1)))
    value = 11 - total % 11
    if value == 11:
        value = 0
    return value != 10 and value == check


def is_repdigit(digits: str) -> bool:
    return len(set(digits)) == 1


def is_sequence(digits: str) -> bool:
    """0123456789..., 9876543210... (typed placeholders)."""
    return digits in _UP or digits in _DOWN


_UP = "0123456789" * 3
_DOWN = "9876543210" * 3


def is_placeholder(digits: str) -> bool:
    return is_repdigit(digits) or is_sequence(digits) or len(set(digits)) <= 2 and len(digits) >= 8


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


# ------------------------------------------------------------------ NINO
# HMRC National Insurance Manual NIM39110 and gov.uk "National Insurance
# number format": first letter not D F I Q U V; second letter not D F I O Q U
# V; prefixes BG GB KN NK NT TN ZZ never allocated; administrative and
# temporary prefixes (OO, CR, FY, MW, NC, PP, PY, PZ) are not personal numbers.
# Suffix is A, B, C or D.

NINO_BAD_FIRST = frozenset("DFIQUV")
NINO_BAD_SECOND = frozenset("DFIOQUV")
NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ",
                               "OO", "CR", "FY", "MW", "NC", "PP", "PY", "PZ"})


def nino_prefix_ok(prefix: str) -> bool:
    p = prefix.upper()
    return (len(p) == 2 and p.isalpha() and p.isascii() and p[0] not in NINO_BAD_FIRST
            and p[1] not in NINO_BAD_SECOND and p not in NINO_BAD_PREFIXES)


def nino_ok(prefix: str, digits: str, suffix: str) -> bool:
    return (nino_prefix_ok(prefix) and len(digits) == 6 and digits.isdigit()
            and suffix.upper() in ("A", "B", "C", "D") and not is_repdigit(digits))


# ------------------------------------------------------------------ NHS
# NHS Data Dictionary, "NHS Number": 10 digits, modulus 11 with weights 10..2,
# check value 10 never issued. England, Wales and Isle of Man allocate from
# 400 000 000 0 - 499 999 999 9 and 600 000 000 0 - 799 999 999 9; Northern
# Ireland H&C numbers 320 000 000 0 - 399 999 999 9. 999 000 000 0 - 999 999
# 999 9 is reserved for testing (NHS Digital test data guidance).


def nhs_ok(digits: str) -> bool:
    if len(digits) != 10 or not digits.isdigit() or is_placeholder(digits):
        return False
    if digits.startswith("999"):
        return False
    # the same rule as stdnum.gb.nhs (the tests check they agree), without its clean-up pass
    total = sum(int(d) * w for d, w in zip(digits, _NHS_WEIGHTS))
    check = 11 - total % 11
    return check != 10 and check % 11 == int(digits[9])


_NHS_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def nhs_in_issued_range(digits: str) -> bool:
    lead = int(digits[:3])
    return 320 <= lead <= 499 or 600 <= lead <= 799


# ------------------------------------------------------------------ UTR
# HMRC UTR: 10 digits, the first is a check digit over digits 2-10 with
# weights 6,7,8,9,10,5,4,3,2 (stdnum.gb.utr, OECD TIN sheet for the UK).


def utr_ok(digits: str) -> bool:
    if len(digits) != 10 or not digits.isdigit() or is_placeholder(digits):
        return False
    # stdnum.gb.utr's rule (the tests check they agree)
    return "21987654321"[sum(int(d) * w for d, w in zip(digits[1:], _UTR_WEIGHTS)) % 11] == digits[0]


_UTR_WEIGHTS = (6, 7, 8, 9, 10, 5, 4, 3, 2)


# ------------------------------------------------------------------ cards
# Scheme IIN ranges and lengths: ISO/IEC 7812 as published by the schemes
# (Visa, Mastercard incl. the 2-series 2221-2720, Amex 34/37, Discover, JCB
# 3528-3589, Diners 300-305/36/38-39, Maestro 50/56-69, UnionPay 62).

_SCHEMES: tuple[tuple[str, tuple[tuple[int, int, int], ...], frozenset[int]], ...] = (
    ("visa", ((4, 4, 1),), frozenset({13, 16, 19})),
    ("mastercard", ((51, 55, 2), (2221, 2720, 4)), frozenset({16})),
    ("amex", ((34, 34, 2), (37, 37, 2)), frozenset({15})),
    ("discover", ((6011, 6011, 4), (644, 649, 3), (65, 65, 2)), frozenset({16, 17, 18, 19})),
    ("jcb", ((3528, 3589, 4),), frozenset({16, 17, 18, 19})),
    ("diners", ((300, 305, 3), (36, 36, 2), (38, 39, 2)), frozenset({14, 15, 16, 17, 18, 19})),
    ("unionpay", ((62, 62, 2),), frozenset({16, 17, 18, 19})),
    ("maestro", ((50, 50, 2), (56, 69, 2)), frozenset(range(12, 20))),
)

# Published test numbers (Stripe, Adyen, PayPal/Braintree, Worldpay docs):
# never a real customer's card. Loaded from data/test_pans.txt.


def card_scheme(digits: str) -> str:
    """The scheme whose IIN range and length fit, or ''."""
    n = len(digits)
    for name, ranges, lengths in _SCHEMES:
        if n not in lengths:
            continue
        for lo, hi, width in ranges:
            if lo <= int(digits[:width]) <= hi:
                return name
    return ""


def card_ok(digits: str) -> bool:
    return 12 <= len(digits) <= 19 and not is_placeholder(digits) and bool(card_scheme(digits)) \
        and luhn_ok(digits)


# ------------------------------------------------------------------ IBAN


def iban_ok(compact: str) -> bool:
    """mod 97 and the country's BBAN structure (stdnum.iban, from the SWIFT registry)."""
    return _iban.is_valid(compact)


# ------------------------------------------------------------------ dates


def valid_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def plausible_birth_date(year: int, month: int, day: int, today: date | None = None) -> bool:
    today = today or date.today()
    return valid_date(year, month, day) and 1900 <= year and date(year, month, day) <= today


# ------------------------------------------------------------------ driving licence
# DVLA driver number (GB), 16 characters: 1-5 surname padded with 9;
# 6 decade digit of the birth year; 7-8 birth month (+50 for women);
# 9-10 day of birth; 11 year digit; 12-13 initials padded with 9; 14 an
# arbitrary digit (usually 9); 15-16 computer check characters.


def licence_ok(value: str) -> bool:
    v = value.upper()
    if len(v) != 16:
        return False
    surname, decade, month, day, year = v[:5], v[5], v[6:8], v[8:10], v[10]
    initials, spare, check = v[11:13], v[13], v[14:16]
    if not surname[0].isalpha() or "9" in surname and surname[surname.index("9"):] != "9" * (5 - surname.index("9")):
        return False
    if not (decade + month + day + year + spare).isdigit() or not check.isalnum():
        return False
    if not (initials[0].isalpha() and (initials[1].isalpha() or initials[1] == "9")):
        return False
    m = int(month)
    if m > 50:
        m -= 50
    if not 1 <= m <= 12:
        return False
    # any year ending in this decade/year digit will do for the day check: use a leap year range
    return any(valid_date(y, m, int(day)) for y in (1900 + 10 * int(decade) + int(year), 2000 + 10 * int(decade) + int(year)))
