"""Money figures written in numbers only, or whose words disagree (clause 4.2).

"All figures should be typed both in words and numbers so as to avoid
expensive clerical errors." A money amount is a figure with a currency:
``£1,250``, ``$3.5m``, ``€12.50``, ``GBP 1,250``, ``1,250 EUR``,
``1,250 pounds``. Its words may follow (``£1,250 (one thousand two hundred
and fifty pounds)``, ``£12.50 - twelve pounds fifty``) or come before
(``one thousand pounds (£1,000)``). Words count only when they fill the
brackets next to the figure, or name a currency themselves: "£5, two of
which..." and "£10 (five to ten pounds per head)" are unworded figures, not
mismatches.

* no words: ``unworded_figure`` (type gbp, usd or eur);
* words that do not give the same amount: ``figure_mismatch``.

Words are checked first against num2words' spelling of the figure (after
dropping "and", commas and hyphens), then by reading them as a number, so
"twelve hundred and fifty", "one point two five million" and "twelve pounds
fifty" are understood too.

Only figures with a currency are looked at, so dates, phone numbers,
version numbers and percentages never count. The sender's own words only:
quoted replies, signatures and disclaimers are removed first. By default
only the subject and body are read (documents such as price lists and
spreadsheets hold tables of figures where words are not written), and list
mail is skipped. ``external_only=True`` skips mail with no external
recipient; it is off by default because the shipped policy pairs these
findings with ``external_recipients: true`` itself. Evidence is the figure's
shape (``£#,###``), never the amount.
"""

from __future__ import annotations

import functools
import re
import threading
from decimal import Decimal, InvalidOperation

from num2words import num2words

from relay.findings import Confidence, Finding
from relay.scanners import ScanContext
from relay.scanners.text import OutboundTextScanner, fold, literal_database, literal_ends, merge_same_place, own_chunks

_NUM = r"\d{1,3}(?:,\d{3})+(?:\.\d{1,2})?|\d+(?:\.\d{1,2})?"
_SUF = r"(?:\s?(?:k|m|mn|bn|million|thousand|billion)\b)?"
_END = r"(?![.,]?\d)(?!\s?%)"
# Candidates are found with str.find (C speed) for the currency markers, then an anchored
# regex reads the figure: a figure after a marker (£1,250, US$5, GBP 1,250) ...
_PREFIXED = re.compile(rf"(?P<mark>US\$|[£$€]|GBP|USD|EUR)\s?(?P<num>{_NUM})(?P<suf>{_SUF}){_END}", re.I)
# ... or before a currency code or word (1,250 EUR, 400 pounds), read backwards from the unit.
_SUFFIXED = re.compile(rf"(?P<num>{_NUM})(?P<suf>{_SUF})\s?$", re.I)
_PREFIX_MARKS = ("£", "$", "€", "gbp", "usd", "eur")
_UNIT_MARKS = ("gbp", "usd", "eur", "pound", "euro", "dollar")
_MARKS = tuple(dict.fromkeys(_PREFIX_MARKS + _UNIT_MARKS))
_MARK_DB = literal_database(_MARKS)          # every marker's places in one pass over the text
_MARK_LOCAL = threading.local()
_CURRENCY = {"£": "gbp", "$": "usd", "us$": "usd", "€": "eur", "gbp": "gbp", "usd": "usd", "eur": "eur",
             "pound": "gbp", "pounds": "gbp", "dollar": "usd", "dollars": "usd", "euro": "eur", "euros": "eur"}
_SCALE = {"": 1, "k": 1000, "thousand": 1000, "m": 10**6, "mn": 10**6, "million": 10**6, "bn": 10**9, "billion": 10**9}

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"thousand": 1000, "million": 10**6, "billion": 10**9}
_MAJOR = {"pound": "gbp", "pounds": "gbp", "quid": "gbp", "dollar": "usd", "dollars": "usd", "euro": "eur", "euros": "eur"}
_MINOR = {"pence", "penny", "p", "cent", "cents"}
_FILLER = {"and", "sterling", "only", "us", "exactly", "a"}
_NUMBER_WORDS = set(_UNITS) | set(_TENS) | set(_SCALES) | {"hundred", "point", "half"}
_VOCAB = _NUMBER_WORDS | set(_MAJOR) | _MINOR | _FILLER

_AFTER = re.compile(r"\s?(?P<open>[(\[])?\s?(?:[-:/,\u2013\u2014]\s?)?(?:i\.e\.?,?\s|that is,?\s|namely\s)?"
                    r"(?P<run>(?:[a-z]+[\s,-]{0,3}){1,40})", re.I)
_BEFORE_REV = re.compile(r"\s?(?P<open>[(\[])?\s?(?P<run>(?:[a-z]+[\s,-]{0,3}){1,40})", re.I)
_TOKEN = re.compile(r"[a-z]+", re.I)
_CLOSE = re.compile(r"[)\]]")


class FiguresScanner(OutboundTextScanner):
    name = "figures"

    def __init__(self, external_only: bool = False, include_bulk: bool = False,
                 sources: tuple[str, ...] = ("body", "header")) -> None:
        self.external_only = external_only
        self.include_bulk = include_bulk
        self.sources = sources

    def _find(self, ctx: ScanContext) -> list[Finding]:
        findings: list[Finding] = []
        for chunk in own_chunks(ctx, self.sources):
            counts: dict[tuple[str, str], list] = {}
            for kind, currency, shape in check_figures(chunk.flat, chunk.low):
                counts.setdefault((kind, currency), [0, shape])[0] += 1
            findings.extend(Finding(kind, currency, Confidence.HIGH, n, chunk.where, shape, chunk.protected)
                            for (kind, currency), (n, shape) in counts.items())
        return merge_same_place(findings)


def check_figures(flat: str, low: str | None = None) -> list[tuple[str, str, str]]:
    """(kind, currency, shape) for each figure in ``flat`` that is unworded or mismatched
    (``low``: ``fold(flat)``, when the caller has it)."""
    out: list[tuple[str, str, str]] = []
    for start, end, mark, number, suffix in find_money(flat, low):
        try:
            value = Decimal(number.replace(",", "")) * _SCALE[suffix.strip().lower()]
        except (InvalidOperation, KeyError):
            continue
        currency = _CURRENCY[mark]
        words = _words_after(flat, end) or _words_before(flat, start)
        if words is None:
            out.append(("unworded_figure", currency, _shape(flat[start:end])))
        elif not words_match(words, value, currency):
            out.append(("figure_mismatch", currency, _shape(flat[start:end])))
    return out


def _glued(ch: str) -> bool:
    return ch.isalnum() or ch in "_£$€"


def find_money(flat: str, low: str | None = None) -> list[tuple[int, int, str, str, str]]:
    """Money figures in ``flat``: (start, end, currency marker, number, scale suffix), in order, no overlaps
    (``low``: ``fold(flat)``, when the caller has it)."""
    low = fold(flat) if low is None else low
    spans = []
    hits = [(end - len(_MARKS[idx]), _MARKS[idx]) for end, idx in literal_ends(_MARK_DB, _MARK_LOCAL, low)]
    for i, mark in hits:
        if mark in _PREFIX_MARKS:
            start = i - 2 if mark == "$" and low[i - 2:i] == "us" else i
            if start > 0 and _glued(flat[start - 1]):
                continue
            m = _PREFIXED.match(flat, start)
            if m:
                spans.append((start, m.end(), m.group("mark").lower(), m.group("num"), m.group("suf")))
    for i, mark in hits:
        if mark in _UNIT_MARKS:
            end = i + len(mark)
            if mark in ("pound", "euro", "dollar") and low[end:end + 1] == "s":
                end += 1
            if (i > 0 and low[i - 1].isalpha()) or (end < len(low) and (low[end].isalnum() or low[end] == "_")):
                continue
            m = _SUFFIXED.search(flat, max(0, i - 40), i)
            if m and not (m.start() > 0 and (_glued(flat[m.start() - 1]) or flat[m.start() - 1] in ".,")):
                spans.append((m.start(), end, mark.rstrip("s"), m.group("num"), m.group("suf")))
    spans.sort(key=lambda span: (span[0], -span[1]))
    out, last = [], -1
    for span in spans:
        if span[0] >= last:
            out.append(span)
            last = span[1]
    return out


def _shape(figure: str) -> str:
    return re.sub(r"\d", "#", " ".join(figure.split()))[:24]


def _leading_run(text: str) -> list[str]:
    tokens = []
    for tok in _TOKEN.findall(text):
        if tok.lower() not in _VOCAB:
            break
        tokens.append(tok.lower())
    return tokens


def _accept(tokens: list[str], bracketed: bool) -> list[str] | None:
    while tokens and tokens[-1] in ("and", "a"):
        tokens.pop()
    while tokens and tokens[0] in ("and",):
        tokens.pop(0)
    if not any(t in _NUMBER_WORDS for t in tokens):
        return None
    if bracketed or any(t in _MAJOR or t in _MINOR for t in tokens):
        return tokens
    return None


def _words_after(flat: str, end: int) -> list[str] | None:
    m = _AFTER.match(flat, end, min(len(flat), end + 400))
    if not m:
        return None
    if m.group("open"):
        # In brackets, the whole bracket must be the amount in words: "(excluding VAT)" or
        # "(five to ten pounds)" say something else, so the figure counts as unworded.
        close = _CLOSE.search(flat, m.start("run"), min(len(flat), end + 400))
        if not close:
            return None
        tokens = [t.lower() for t in _TOKEN.findall(flat, m.start("run"), close.start())]
        return _accept(tokens, True) if all(t in _VOCAB for t in tokens) else None
    return _accept(_leading_run(m.group("run")), False)


def _words_before(flat: str, start: int) -> list[str] | None:
    rev = flat[max(0, start - 400):start][::-1]
    m = _BEFORE_REV.match(rev)
    if not m:
        return None
    tokens = [t.lower() for t in _TOKEN.findall(m.group("run")[::-1])]
    run: list[str] = []
    for tok in reversed(tokens):
        if tok not in _VOCAB:
            break
        run.append(tok)
    run.reverse()
    return _accept(run, bool(m.group("open")))


_CANON_DROP = {"and", "sterling", "only", "exactly"}


def _canon(words: list[str] | str) -> list[str]:
    text = words if isinstance(words, str) else " ".join(words)
    return [w for w in re.split(r"[\s,-]+", text.lower()) if w and w not in _CANON_DROP]


def words_match(words: list[str], value: Decimal, currency: str) -> bool:
    """True when ``words`` spell ``value`` (num2words' spelling first, then by reading the words)."""
    said = {_MAJOR[w] for w in words if w in _MAJOR}
    if said and said != {currency}:
        return False
    plain = [w for w in _canon(words) if w not in _MAJOR and w not in ("us",)]
    cardinal, spelled = _spellings(value, currency)
    if plain == cardinal or _canon(words) == spelled:
        return True
    parsed = words_to_amount(words)
    return parsed is not None and parsed == value


@functools.lru_cache(maxsize=1024)
def _spellings(value: Decimal, currency: str) -> tuple[list[str] | None, list[str] | None]:
    """num2words' cardinal (whole amounts) and currency spellings of ``value``, canonicalised."""
    cardinal = _canon(num2words(int(value))) if value == value.to_integral_value() else None
    try:
        spelled = _canon(num2words(value, to="currency", currency=currency.upper()))
    except (NotImplementedError, ValueError, TypeError):
        spelled = None
    return cardinal, spelled


def words_to_amount(words: list[str]) -> Decimal | None:
    """Read number words as an amount: "twelve pounds fifty" -> 12.50; None when they make no number."""
    total = Decimal(0)
    current = Decimal(0)
    major: Decimal | None = None
    seen = False
    fraction: str | None = None
    for w in words:
        if fraction is not None and w in _UNITS and _UNITS[w] < 10:
            fraction += str(_UNITS[w])
            continue
        if fraction is not None:
            current += Decimal("0." + fraction) if fraction else 0
            fraction = None
        if w in _UNITS:
            current += _UNITS[w]
            seen = True
        elif w in _TENS:
            current += _TENS[w]
            seen = True
        elif w == "hundred":
            current = (current or 1) * 100
            seen = True
        elif w in _SCALES:
            total += (current or 1) * _SCALES[w]
            current = Decimal(0)
            seen = True
        elif w == "point":
            fraction = ""
        elif w in _MAJOR:
            major = total + current
            total = current = Decimal(0)
        elif w in _MINOR:
            minor = total + current
            if minor >= 100:
                return None
            return (major or 0) + minor / 100
        elif w == "half":
            current += Decimal("0.5")
            seen = True
    if fraction:
        current += Decimal("0." + fraction)
    if not seen:
        return None
    if major is not None:
        rest = total + current
        return major + rest / 100 if rest < 100 else None
    return total + current
