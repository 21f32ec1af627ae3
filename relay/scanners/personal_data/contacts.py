"""Contact details: phone numbers, e-mail addresses, postal addresses, and bulk lists of them.

One person's contact details in a mail are ordinary business; a list of many
people's is the finding worth a reviewer's time (``bulk_contacts``, count =
distinct values). What does not count towards a list:

* the signature blocks: lines after a sign-off ("Kind regards", "Thanks",
  ``-- ``), ``SIGNATURE_LINES`` lines long, where the sender (and, in quoted
  replies, earlier senders) put their own details;
* addresses on quoted header lines (``From:``, ``To:``, ``Cc:``, ``Sent:``),
  the message's own sender and recipients, and role mailboxes (info@,
  finance@, helpdesk@, ...: ``ROLE_MAILBOXES``).

Phones are UK numbers as ``phonenumbers`` (region GB) judges them valid.
A postal address is a valid UK postcode with a street line (a house number
and a street word: Road, Street, Lane, ...) on its line or the two before.
Bulk: ``BULK_MIN`` distinct values of one kind -> HIGH when at least
``BULK_MIN`` of them sit on nearby separate lines (a list or table: entries at
most ``LIST_GAP`` lines apart); scattered through prose, MEDIUM from
``BULK_ANYWAY`` values, LOW below (the shipped policy holds bulk_contacts
from MEDIUM up).
A single third-party phone number or address is reported LOW.
"""

from __future__ import annotations

import bisect
import re
from functools import lru_cache

import phonenumbers

from relay.findings import Confidence

from . import redact
from .confidence import ChunkContext, Hit

SIGNATURE_LINES = 12              # at most; a block also ends at a blank line or a quoted message
# Role mailboxes (RFC 2142 and common practice) belong to a function, not a person.
ROLE_MAILBOXES = frozenset("""info admin administrator postmaster hostmaster webmaster abuse security noc
support helpdesk help servicedesk it enquiries enquiry inquiries contact office reception sales marketing
accounts finance payroll hr recruitment careers jobs press media communications billing invoices orders
noreply no-reply donotreply do-not-reply notifications alerts team hello admissions registry library estates
facilities events studentservices""".split())
BULK_MIN = 5
BULK_ANYWAY = 10
LIST_GAP = 2                       # lines between two entries of one list
MAX_VALIDATED = 3000               # phonenumbers checks per chunk (about 0.1 ms each); then shape only

_SIGN_OFF = re.compile(
    r"^[ \t>]*(?:--|(?:(?:kind|best|warm|warmest|many)[ \t]+)?(?:regards|wishes|thanks)|thank you|cheers"
    r"|(?:yours[ \t]+)?(?:sincerely|faithfully|truly)|best|all the best|speak soon)"
    r"(?:[,.!]?[ \t]*$|,[ \t]*[A-Z][A-Za-z'\-]+(?:[ \t]+[A-Z][A-Za-z'\-]+)?[ \t]*$)",
    re.I | re.M)
_QUOTED_HEADER = re.compile(r"[ \t>]*(?:from|to|cc|bcc|sent|reply-to|date)[ \t]*:", re.I)
_QUOTE_START = re.compile(r"-{2,}\s*(?:original|forwarded) message|(?:from|sent|to|cc|subject):|on .{4,80} wrote:$"
                          r"|>", re.I)
# every character _QUOTE_START can start with (re.I folds the long s to s): other lines skip the regex
_QUOTE_FIRST = frozenset("-><CFOSTcfost\u017f")
_NEWLINE = re.compile("\n")
_STREET = re.compile(                # a digit first, then the look-behind: the engine skips ahead to digits
    r"[0-9](?<![0-9A-Za-z][0-9])[0-9]{0,3}[A-Za-z]?,?[ \t]+(?:[A-Z][A-Za-z'\-]+[ \t]+){1,3}"
    r"(?:Road|Rd|Street|St|Lane|Ln|Avenue|Ave|Close|Drive|Dr|Way|Place|Pl|Court|Ct|Gardens|Gdns|Crescent"
    r"|Terrace|Square|Sq|Hill|Grove|Park|Row|Walk|Mews|Green|Rise|View|Parade|Vale|Wharf|Yard)\b")
_POSTCODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{2}")


SIGN_OFF_ANCHORS = ("--", "regards", "wishes", "thanks", "thank you", "cheers", "sincerely", "faithfully",
                    "truly", "best", "all the best", "speak soon")


def signature_zones(text: str, anchors: list[int] | None = None,
                    line_start=None) -> list[tuple[int, int]]:
    """Signature blocks: ``SIGNATURE_LINES`` lines after each sign-off line.

    ``anchors``: positions of sign-off words (from the anchor pass); only their
    lines are tried. ``None`` tries every line.
    """
    if anchors is None:
        starts = [m.start() for m in _SIGN_OFF.finditer(text)]
    else:
        starts = []
        first = line_start or (lambda a: text.rfind("\n", 0, a) + 1)
        for pos in sorted(set(first(a) for a in anchors)):
            m = _SIGN_OFF.match(text, pos)
            if m:
                starts.append(m.start())
    zones = []
    for begin in starts:
        end = text.find("\n", begin)
        end = len(text) if end < 0 else end
        content = 0
        for _ in range(SIGNATURE_LINES):           # the block ends at a gap after it or at a quoted message
            if end >= len(text):
                break
            nxt = text.find("\n", end + 1)
            nxt = len(text) if nxt < 0 else nxt
            line = text[end + 1:nxt].strip()
            if not line:
                if content >= 2:
                    break
            elif line[0] in _QUOTE_FIRST and _QUOTE_START.match(line):
                break
            else:
                content += 1
            end = nxt
        zones.append((begin, end))
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(zones):
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def inside(pos: int, zones: list[tuple[int, int]]) -> bool:
    """Whether ``pos`` falls in one of ``zones`` (sorted, not overlapping: :func:`signature_zones`)."""
    i = bisect.bisect_right(zones, (pos, 1 << 62)) - 1
    return i >= 0 and zones[i][0] <= pos < zones[i][1]


def _line_of(cc: ChunkContext, pos: int) -> int:
    """Offset of the newline before ``pos`` (-1 on the first line): an id for its line."""
    return cc.line_start(pos) - 1


_NOT_DIGITS = re.compile(r"[^0-9]+")
_PLAIN_UK = re.compile(r"\+?[0-9 \t\-()]+")


@lru_cache(maxsize=4096)
def phone_value(raw: str) -> str:
    """E.164 form of a valid UK number (phonenumbers, region GB), or ''.

    The shapes the scan finds (``0161 496 0000``, ``(0161) 496 0000``,
    ``+44 (0)161 ...``, ``0044 161 ...``) are reduced to their national
    significant number here and only validated by phonenumbers: its parse()
    costs twice its validation and gives the same number for these shapes
    (a unit test compares both on the corpus's and random numbers).
    Anything else goes through parse()."""
    nsn = _national_number(raw)
    if nsn is None:
        return _parsed_value(raw)
    if not phonenumbers.is_valid_number_for_region(phonenumbers.PhoneNumber(country_code=44, national_number=int(nsn)),
                                                   "GB"):
        return ""
    return "+44" + nsn


def _national_number(raw: str) -> str | None:
    """The national significant number of a UK number written in one of the scan's shapes, or None."""
    if not _PLAIN_UK.fullmatch(raw):
        return None
    digits = _NOT_DIGITS.sub("", raw)
    if raw[0] == "+":
        if not digits.startswith("44"):
            return None
        rest = digits[2:]
    elif digits.startswith("0044"):
        rest = digits[4:]
    elif digits.startswith("0") and not digits.startswith("00"):
        rest = digits
    else:
        return None
    if rest.startswith("0"):              # the national prefix, also as "+44 (0)161 ..."
        rest = rest[1:]
    if not 9 <= len(rest) <= 10 or rest[0] == "0":
        return None
    return rest


def _parsed_value(raw: str) -> str:
    try:
        num = phonenumbers.parse(raw, "GB")
    except phonenumbers.NumberParseException:
        return ""
    if not phonenumbers.is_valid_number_for_region(num, "GB"):
        return ""
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def _rough_e164(raw: str) -> str:
    """Past ``MAX_VALIDATED`` numbers in one chunk: the shape the scan matched, without phonenumbers."""
    nsn = _national_number(raw)
    return "+44" + nsn if nsn else ""


_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")


def email_at(text: str, at: int, domain_end: int) -> str:
    """The address whose ``@`` is at ``at``: its local part read backwards (at most 64 characters)."""
    i, lo = at, max(0, at - 64)
    while i > lo and text[i - 1] in _LOCAL_CHARS:
        i -= 1
    local = text[i:at].lstrip(".'")
    if not local:
        return ""
    return (local + text[at:domain_end]).lower()


def evaluate(cc: ChunkContext, phones: list[tuple[int, str]], emails: list[tuple[int, int]],
             postcodes: list[tuple[int, int]], exclude: frozenset[str],
             zones: list[tuple[int, int]]) -> list[Hit]:
    """Hits for the contact details of one chunk (``phones``: (start, raw); ``emails``: (at, end);
    ``zones``: its signature blocks, :func:`signature_zones`)."""
    text = cc.text
    kinds: dict[str, dict[str, int]] = {"phone_number": {}, "email_address": {}, "postal_address": {}}
    lines: dict[str, set[int]] = {k: set() for k in kinds}
    own, validated = set(), 0
    outside = []
    for start, raw in phones:
        if inside(start, zones):
            own.add(_NOT_DIGITS.sub("", raw)[-10:])
        else:
            outside.append((start, raw))
    for start, raw in outside:
        if own and _NOT_DIGITS.sub("", raw)[-10:] in own:
            continue                          # the sender's own number, here or elsewhere
        validated += 1
        value = phone_value(raw) if validated <= MAX_VALIDATED else _rough_e164(raw)
        if value and value not in exclude:
            kinds["phone_number"].setdefault(value, start)
            lines["phone_number"].add(_line_of(cc, start))
    for at, end in emails:
        if inside(at, zones):
            continue
        value = email_at(text, at, end)
        if not value or value in exclude or value.split("@", 1)[0] in ROLE_MAILBOXES:
            continue
        ls = _line_of(cc, at)
        if _QUOTED_HEADER.match(text, ls + 1):
            continue
        kinds["email_address"].setdefault(value, at)
        lines["email_address"].add(ls)
    for start, end in postcodes:
        if inside(start, zones):
            continue
        top = cc.line_start(start)
        for _ in range(2):                   # this line and the two before it
            top = cc.line_start(top - 1) if top > 0 else 0
        street = None
        for street in _STREET.finditer(text, max(top, start - 160), start):
            pass
        if street is None:
            continue
        value = (street.group() + " " + text[start:end].replace(" ", "")).lower()
        kinds["postal_address"].setdefault(value, start)
        lines["postal_address"].add(_line_of(cc, start))
    hits = []
    newlines: list[int] | None = None
    for type_, values in kinds.items():
        n = len(values)
        if n >= BULK_MIN:
            if newlines is None:
                newlines = [m.start() for m in _NEWLINE.finditer(text)]
            if _longest_list(lines[type_], newlines) >= BULK_MIN:
                conf = Confidence.HIGH
            else:
                conf = Confidence.MEDIUM if n >= BULK_ANYWAY else Confidence.LOW
            what = type_.replace("_", " ") + "es" if type_.endswith("address") else "phone numbers"
            for value, pos in values.items():
                hits.append(Hit("bulk_contacts", type_, value, conf, redact.count_of(n, what), pos))
        elif type_ != "email_address":
            for value, pos in values.items():
                evidence = redact.mask(value, keep_end=3) if type_ == "phone_number" else "street line + postcode"
                hits.append(Hit("personal_data", type_, value, Confidence.LOW, evidence, pos))
    return hits


def _longest_list(line_starts: set[int], newlines: list[int]) -> int:
    """The most values on lines close together (at most ``LIST_GAP`` lines apart): a list or table."""
    numbers = sorted(bisect.bisect_right(newlines, pos) for pos in line_starts)
    best = run = 1 if numbers else 0
    for a, b in zip(numbers, numbers[1:]):
        run = run + 1 if b - a <= LIST_GAP else 1
        best = max(best, run)
    return best


def postcode_ok(raw: str) -> bool:
    return bool(_POSTCODE.fullmatch(raw))
