"""One chunk, two passes: a combined regular expression and one multi-literal matcher.

Pass 1 is a single compiled alternation whose every branch starts with one
character class (``[0-9@+(]``) consumed up front, the branch chosen by a
look-behind on it (IBANs, licences and postcodes are found from their first
digit, looking back at their letters). CPython's ``re`` skips ahead fast only
when a pattern starts with a literal or a character class, so this shape runs
about ten times faster than a plain alternation of the same branches (3.7 vs
45 MB/s in a side-by-side test). It yields digit runs (cards, NHS, UTR,
passport, sort codes, NINO digits, phones), dates, IBANs, driving licences,
postcodes and e-mail domains.

Pass 2 (:mod:`.anchors`) finds every word anchor at once: special-category
terms, credential keywords and token prefixes, private-key headers,
date-of-birth keywords.

Each candidate goes to its family module, which validates it and scores it in
context (:mod:`.confidence`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from . import anchors, banking, cards, contacts, credentials, custom, dob, nhs, nino, special_category, uk_ids
from .confidence import ChunkContext, Hit

_NOT_AFTER_WORD = r"(?<![A-Za-z0-9])"
_SCAN = re.compile(
    r"[0-9@+(](?:"
    r"(?P<iban>(?<=" + _NOT_AFTER_WORD + r"[A-Z]{2}[0-9])[0-9](?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}"
    r"(?: [A-Z0-9]{1,4})?)(?![A-Z0-9]))"
    r"|(?P<lic>(?<=" + _NOT_AFTER_WORD + r"[A-Z][A-Z9]{4}[0-9])[0156][0-9][0-3][0-9]{2}[A-Z9]{2}[0-9][A-Z0-9]{2}"
    r"(?![A-Za-z0-9]))"
    r"|(?P<post>(?:(?<=" + _NOT_AFTER_WORD + r"[A-Z][0-9])|(?<=" + _NOT_AFTER_WORD + r"[A-Z]{2}[0-9]))"
    r"[A-Z0-9]?[ ]?[0-9][ABD-HJLNP-UW-Z]{2}(?![A-Za-z0-9]))"
    r"|(?P<pplus>(?<=\+)[ \t]?44[ \t]?(?:\(0\)[ \t]?)?[1-9](?:[ \-]?[0-9]){8,9}(?![0-9]))"
    r"|(?P<pparen>(?<=\()0[1-9][0-9]{2,4}\)[ \t]?[0-9]{3,4}[ \-]?[0-9]{3,4}(?![0-9]))"
    r"|(?P<email>(?<=@)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9\-]))"
    r"|(?P<date>(?<=[0-9])(?<![0-9./][0-9])(?:[0-9]?[/.\-][0-9]{1,2}[/.\-](?:19|20)[0-9]{2}"
    r"|[0-9]?[/.][0-9]{1,2}[/.][0-9]{2}|[0-9]{3}-[0-9]{2}-[0-9]{2}"
    r"|[0-9]?(?:st|nd|rd|th)?[ \t]+(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?,?[ \t]+"
    r"(?:19|20)[0-9]{2})(?![0-9]))"
    r"|(?P<num>(?<=[0-9])(?<![0-9./][0-9])(?:[ \-]?[0-9]){5,22}(?![0-9]|[./][0-9]))"
    r")")
_SEP = re.compile(r"[ \-]")


def _whole_word(text: str, begin: int, stop: int) -> bool:
    """A word on its own: not inside a word, an e-mail address, a URL or a file name."""
    if begin > 0 and (text[begin - 1].isalnum() or text[begin - 1] in "@._/-"):
        return False
    if stop < len(text):
        nxt = text[stop]
        if nxt.isalnum() or nxt in "@_/" or (nxt in ".-" and stop + 1 < len(text) and text[stop + 1].isalnum()):
            return False
    return True


def _outermost(terms: list[tuple[int, int, str, str]]) -> list[tuple[int, int, str, str]]:
    """Drop terms inside a longer one ("diagnosed" within "diagnosed with"), in one sweep."""
    out, reach = [], -1
    for t in sorted(terms, key=lambda t: (t[0], -t[1])):
        if t[1] <= reach:
            continue
        out.append(t)
        reach = t[1]
    return out


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
        both = [h for h in (nhs.check(cc, start, end, digits, lens), uk_ids.utr(cc, start, end, digits, lens)) if h]
        return max(both, key=lambda h: h.confidence) if both else None
    if 12 <= n <= 19:
        return cards.check(cc, start, end, digits, lens)
    if n == 9:
        return uk_ids.passport(cc, start, end, digits, lens)
    return None


def _number(cc: ChunkContext, start: int, end: int, out: list[Hit], phones: list[tuple[int, str]]) -> None:
    text = cc.text
    raw = text[start:end]
    parts = _SEP.split(raw) if (" " in raw or "-" in raw) else [raw]
    lens = [len(p) for p in parts]
    digits = "".join(parts)
    if lens in ([6], [2, 2, 2]):
        hit = nino.check(cc, start, end, digits, lens)
        if hit:
            out.append(hit)
            return
    if (start and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha()):
        # a licence whose surname is padded with 9s ("LEE99753116..."): its run starts at the 9s
        ts = start
        while ts > 0 and start - ts < 5 and text[ts - 1].isalnum():
            ts -= 1
        if start - ts < 5 and end - ts <= 16 and ts + 16 <= len(text):
            hit = uk_ids.licence(cc, ts, ts + 16, text[ts:ts + 16]) \
                if (ts + 16 == len(text) or not text[ts + 16].isalnum()) and (ts == 0 or not text[ts - 1].isalnum()) \
                else None
            if hit:
                out.append(hit)
        return
    if digits[0] == "0" and (10 <= len(digits) <= 11 or digits.startswith("0044")):
        phones.append((start, text[start:end]))
        return
    hit = _classify(cc, start, end, digits, lens)
    if hit:
        out.append(hit)
        return
    if len(parts) < 2 or len(parts) > 8:         # "1 2 3 4 5 6 7 8 9" is not two identifiers
        return
    spans = _groups(text, start, end)
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
    found_anchors = anchors.find(text)
    has_dob_words = any(f == "dob" for _, _, f, _, _ in found_anchors)  # a DOB needs one: skip dates otherwise
    for m in _SCAN.finditer(text):
        kind = m.lastgroup
        start, end = m.span()
        hit = None
        if kind == "num":
            _number(cc, start, end, hits, phones)
        elif kind == "date":
            if has_dob_words:
                hit = dob.check(cc, start, end, text[start:end])
        elif kind == "email":
            if start and text[start - 1] not in " \t\n\r<>(),;:\"'[]":
                emails.append((start, end))
        elif kind == "pplus" or kind == "pparen":
            phones.append((start, text[start:end]))
        elif kind == "iban":
            hit = banking.iban(cc, start - 2, end, text[start - 2:end])
        elif kind == "lic":
            hit = uk_ids.licence(cc, start - 5, end, text[start - 5:end])
        elif kind == "post":
            s0 = start - 2 if start >= 2 and text[start - 2].isupper() else start - 1
            if contacts.postcode_ok(text[s0:end]):
                postcodes.append((s0, end))
        if hit:
            hits.append(hit)
    terms: list[tuple[int, int, str, str]] = []
    seen_anchor: set[int] = set()
    dob_dates: set[int] = set()
    signoffs: list[int] = []
    for begin, stop, family, category, word in found_anchors:
        if family == "signoff":
            signoffs.append(begin)
            continue
        if family == "term":
            if _whole_word(text, begin, stop):
                terms.append((begin, stop, category, word))
            continue
        if family == "dob":
            if (begin == 0 or not text[begin - 1].isalnum()) and (stop >= len(text) or not text[stop].isalnum()):
                hits.extend(dob.near_anchor(cc, begin, stop, dob_dates))
            continue
        if begin in seen_anchor:
            continue
        seen_anchor.add(begin)
        if family == "password":
            hit = credentials.password(cc, begin)
        elif family == "token":
            hit = credentials.token(cc, begin)
        elif family == "key":
            hit = credentials.private_key(cc, begin)
        else:
            hit = credentials.generic(cc, begin)
        if hit:
            hits.append(hit)
    if detectors:
        hits.extend(custom.detect(cc, detectors))
    zones = contacts.signature_zones(text, signoffs, cc.line_start) if cc.source == "body" and (phones or emails or postcodes or terms) \
        else []
    if phones or emails or postcodes:
        hits.extend(contacts.evaluate(cc, phones, emails, postcodes, exclude, zones))
    if terms:
        terms = _outermost(terms)
        ids = [h.start for h in hits if h.kind == "personal_data" and h.type not in
               ("phone_number", "postal_address", "email_address")]
        terms = [t for t in terms if not contacts.inside(t[0], zones)]   # job titles in signatures
        hits.extend(special_category.evaluate(cc, terms, ids))
    return hits
