"""IBANs and UK sort code + account number pairs.

* IBAN: ISO 7064 mod 97 and the country's BBAN structure from the SWIFT
  registry (``stdnum.iban``) are strong proof: HIGH unless negative words are
  nearer than bank words. Printed examples (``GB82 WEST ...``) are ignored.
* Sort code + account: a ``12-34-56`` sort code with an 8-digit account
  number within the window. No maintained Python library implements the
  Vocalink modulus-checking tables, so the pair is HIGH only with bank words
  (sort code, account, a/c, bank details) nearby, MEDIUM without.
"""

from __future__ import annotations

import re

from . import redact
from .confidence import ChunkContext, Hit, band, words
from .data import load_lines
from .validators import iban_ok, is_placeholder

IBAN_WORDS = words(["iban", "bank", "account", "bank details", "payment", "bic", "swift", "transfer"])
BANK_WORDS = words(["sort code", "sortcode", "account", "account number", "account no", "acc no",
                    "acct", "acc", "a/c", "bank", "bank details", "bank account", "building society", "s/c"])
TEST_IBANS = frozenset(load_lines("test_ibans.txt"))
_ACCOUNT = re.compile(r"(?<![0-9])(?<![0-9][ \-])(?:[0-9]{8}|[0-9]{4} [0-9]{4})(?![0-9]|[ \-][0-9])")


def _iban_lengths() -> dict[str, int]:
    """Country code -> IBAN length, from python-stdnum's IBAN registry (4 + the BBAN's fixed length)."""
    from stdnum import numdb

    db = numdb.get("iban")
    out: dict[str, int] = {}
    for cc_prefix in _COUNTRY_CODES:
        info = db.info(cc_prefix + "00")
        bban = info[0][1].get("bban", "") if info and len(info[0]) > 1 else ""
        if bban:
            out[cc_prefix] = 4 + sum(int(n) for n in re.findall(r"(\d+)!?[nace]", bban))
    return out


_COUNTRY_CODES = tuple(f"{a}{b}" for a in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" for b in "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
IBAN_LENGTHS = _iban_lengths()


def iban(cc: ChunkContext, start: int, end: int, raw: str) -> Hit | None:
    compact = raw.replace(" ", "")
    # One check per candidate: an IBAN's length is fixed by its country (the match may run into the next word).
    length = IBAN_LENGTHS.get(compact[:2].upper())
    if length is None or len(compact) < length or not iban_ok(compact[:length]):
        return None
    candidate = compact[:length]
    if candidate in TEST_IBANS:
        return None
    corroborated, negative = cc.evidence(IBAN_WORDS, IBAN_WORDS, start, end)
    return Hit("personal_data", "iban", candidate, band(True, corroborated, negative),
               redact.iban(candidate), start)


def sort_code(cc: ChunkContext, start: int, end: int, code: str, account: str = "") -> Hit | None:
    """``code`` is the six digits of a sort code at [start, end); ``account`` if already known."""
    if is_placeholder(code):
        return None
    if not account:
        text = cc.text
        m = _ACCOUNT.search(text, end, min(len(text), end + 80)) or None
        if m is None:
            before = [x for x in _ACCOUNT.finditer(text, max(0, start - 80), start)]
            m = before[-1] if before else None
        if m is None:
            return None
        account = m.group().replace(" ", "")
    if is_placeholder(account):
        return None
    corroborated, negative = cc.evidence(BANK_WORDS, BANK_WORDS, start, end, window=80)
    conf = band(False, corroborated, negative)
    return Hit("personal_data", "uk_bank_account", code + account, conf,
               f"••-••-•• {redact.mask(account, keep_end=2)}", start)
