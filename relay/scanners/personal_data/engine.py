"""One chunk, two passes: a combined regular expression and one Aho-Corasick automaton.

Pass 1 is a single compiled alternation whose every branch starts with one
character class (``[0-9A-Z@+(-]``) consumed up front, the branch chosen by a
look-behind on it. CPython's ``re`` only skips ahead fast when a pattern
starts with a literal or a character class, so this shape runs about ten
times faster than a plain alternation of the same branches (measured: see
bench/pd_throughput.py). It yields digit runs (cards, NHS, UTR, passport,
sort codes, NINO digits, phones), dates, IBANs, driving licences, postcodes,
e-mail domains, AWS/Google keys and private-key headers.

Pass 2 runs one Aho-Corasick automaton (pyahocorasick) over the lower-cased
text for the word anchors: special-category terms and credential keywords.

Each candidate goes to its family module, which validates it and scores it in
context (:mod:`.confidence`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import ahocorasick

from . import banking, cards, contacts, credentials, custom, dob, nhs, nino, special_category, uk_ids
from .confidence import ChunkContext, Hit

_MONTHS = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*"
_SCAN = re.compile(
    r"[0-9A-Z@+(\-](?:"
    r"(?P<pplus>(?<=\+)[ \t]?44[ \t]?(?:\(0\)[ \t]?)?[1-9](?:[ \-]?[0-9]){8,9}(?![0-9]))"
    r"|(?P<pparen>(?<=\()0[1-9][0-9]{2,4}\)[ \t]?[0-9]{3,4}[ \-]?[0-9]{3,4}(?![0-9]))"
    r"|(?P<key>(?<=-)----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----)"
    r"|(?P<email>(?<=@)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-]))"
    r"|(?P<date>(?<=[0-9])(?<![0-9.,/][0-9])(?:[0-9]?[/.\-][0-9]{1,2}[/.\-](?:19|20)[0-9]{2}"
    r"|[0-9]?[/.][0-9]{1,2}[/.][0-9]{2}|[0-9]{3}-[0-9]{2}-[0-9]{2}"
    r"|[0-9]?(?:st|nd|rd|th)?[ \t]+" + _MONTHS + r"\.?,?[ \t]+(?:19|20)[0-9]{2})(?![0-9]))"
    r"|(?P<num>(?<=[0-9])(?<![0-9.,/][0-9])(?:[ \-]?[0-9]){5,22}(?![0-9]|[.,/][0-9]))"
    r"|(?P<month>(?<=[JFMASOND])(?<![A-Za-z][A-Z])(?:an|eb|ar|pr|ay|un|ul|ug|ep|ct|ov|ec)[a-z]*\.?[ \t]+"
    r"[0-9]{1,2}(?:st|nd|rd|th)?,?[ \t]+(?:19|20)[0-9]{2}(?![0-9]))"
    r"|(?P<iban>(?<=[A-Z])(?<![A-Za-z0-9][A-Z])[A-Z][0-9]{2}(?:[ ]?[A-Z0-9]){11,30})"
    r"|(?P<lic>(?<=[A-Z])(?<![A-Za-z0-9][A-Z])[A-Z9]{4}[0-9][0156][0-9][0-3][0-9]{2}[A-Z9]{2}[0-9][A-Z0-9]{2}"
    r"(?![A-Za-z0-9]))"
    r"|(?P<aws>(?<=A)(?<![A-Za-z0-9]A)(?:KIA|SIA)[0-9A-Z]{16}(?![0-9A-Za-z])|(?<=A)Iza[0-9A-Za-z_\-]{35})"
    r"|(?P<post>(?<=[A-Z])(?<![A-Za-z0-9][A-Z])[A-Z]?[0-9][A-Z0-9]?[ ]?[0-9][ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9]))"
    r")")
_SEP = re.compile(r"[ \-]")


def _automaton() -> ahocorasick.Automaton:
    auto = ahocorasick.Automaton()
    for category, term in special_category.TERMS:
        auto.add_word(term, ("term", category, term))
    for anchor in credentials.PASSWORD_ANCHORS:
        auto.add_word(anchor, ("password", "", anchor))
    for anchor in credentials.TOKEN_ANCHORS:
        if anchor.islower() and not anchor.startswith(("akia", "asia", "aiza")):
            auto.add_word(anchor, ("token", "", anchor))
    for anchor in credentials.GENERIC_ANCHORS:
        auto.add_word(anchor, ("generic", "", anchor))
    auto.make_automaton()
    return auto


_AUTO = _automaton()


def _lower(text: str) -> str:
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def _groups(text: str, start: int, end: int) -> list[tuple[int, int]]:
    spans, s = [], start
    for m in _SEP.finditer(text, start, end):
        spans.append((s, m.start()))
        s = m.end()
    spans.append((s, end))
    return spans


def _classify(cc: ChunkContext, start: int, end: int, digits: str, lens: list[int]) -> Hit | None:
    n = len(digits)
    if lens == [2, 2, 2]:
        return banking.sort_code(cc, start, end, digits)
    if n == 10:
        return nhs.check(cc, start, end, digits, lens) or uk_ids.utr(cc, start, end, digits, lens)
    if 12 <= n <= 19:
        return cards.check(cc, start, end, digits, lens)
    if n == 9:
        return uk_ids.passport(cc, start, end, digits, lens)
    return None


def _number(cc: ChunkContext, start: int, end: int, out: list[Hit], phones: list[tuple[int, str]]) -> None:
    text = cc.text
    spans = _groups(text, start, end)
    lens = [e - s for s, e in spans]
    digits = "".join(text[s:e] for s, e in spans)
    if lens in ([6], [2, 2, 2]):
        hit = nino.check(cc, start, end, digits, lens)
        if hit:
            out.append(hit)
            return
    if (start and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha()):
        return
    if digits[0] == "0" and (10 <= len(digits) <= 11 or digits.startswith("0044")):
        phones.append((start, text[start:end]))
        return
    hit = _classify(cc, start, end, digits, lens)
    if hit:
        out.append(hit)
        return
    if len(spans) < 2:
        return
    if lens[:3] == [2, 2, 2] and len(digits) == 14:          # "12-34-56 12345678"
        hit = banking.sort_code(cc, start, spans[2][1], digits[:6], digits[6:])
        if hit:
            out.append(hit)
        return
    for i in range(1, len(spans)):                           # two things side by side
        left = _classify(cc, start, spans[i - 1][1], "".join(text[s:e] for s, e in spans[:i]), lens[:i])
        right = _classify(cc, spans[i][0], end, "".join(text[s:e] for s, e in spans[i:]), lens[i:])
        if left or right:
            out.extend(h for h in (left, right) if h)
            return


def scan_chunk(cc: ChunkContext, detectors: Iterable[object] = (),
               exclude: frozenset[str] = frozenset()) -> list[Hit]:
    """Every hit in one chunk (contact details already reduced to single/bulk hits)."""
    text = cc.text
    hits: list[Hit] = []
    phones: list[tuple[int, str]] = []
    emails: list[tuple[int, int]] = []
    postcodes: list[tuple[int, int]] = []
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        start, end = m.span()
        hit = None
        if kind == "num":
            _number(cc, start, end, hits, phones)
        elif kind == "date" or kind == "month":
            hit = dob.check(cc, start, end, text[start:end])
        elif kind == "email":
            if start and text[start - 1] not in " \t\n\r<>(),;:\"'[]":
                emails.append((start, end))
        elif kind == "pplus" or kind == "pparen":
            phones.append((start, text[start:end]))
        elif kind == "iban":
            hit = banking.iban(cc, start, end, text[start:end])
        elif kind == "lic":
            hit = uk_ids.licence(cc, start, end, text[start:end])
        elif kind == "post":
            if contacts.postcode_ok(text[start:end]):
                postcodes.append((start, end))
        elif kind == "aws":
            hit = credentials.token(cc, start)
        elif kind == "key":
            hit = credentials.private_key(cc, start, end)
        if hit:
            hits.append(hit)
    terms: list[tuple[int, int, str, str]] = []
    low = _lower(text)
    seen_anchor: set[int] = set()
    for last, (family, category, word) in _AUTO.iter(low):
        begin = last - len(word) + 1
        if family == "term":
            if (begin == 0 or not low[begin - 1].isalnum()) and (last + 1 >= len(low) or not low[last + 1].isalnum()):
                terms.append((begin, last + 1, category, word))
            continue
        if begin in seen_anchor:
            continue
        seen_anchor.add(begin)
        if family == "password":
            hit = credentials.password(cc, begin)
        elif family == "token":
            hit = credentials.token(cc, begin)
        else:
            hit = credentials.generic(cc, begin)
        if hit:
            hits.append(hit)
    if detectors:
        hits.extend(custom.detect(cc, detectors))
    if phones or emails or postcodes:
        hits.extend(contacts.evaluate(cc, phones, emails, postcodes, exclude))
    if terms:
        terms = [t for t in terms if not any(o[0] <= t[0] and t[1] <= o[1] and o != t for o in terms)]
        ids = [h.start for h in hits if h.kind == "personal_data" and h.type not in
               ("phone_number", "postal_address", "email_address")]
        hits.extend(special_category.evaluate(cc, terms, ids))
    return hits
