"""GDPR Art. 9 special category data: a curated term next to an identified person.

A term alone is a topic ("Sociology of Religion" on a reading list, "Mental
Health Awareness Week"), not data about someone. A term is reported only when
an identified person is within ``WINDOW`` characters either side:

* a titled name (``Mr Patel``, ``Dr. Jones``), a common given name and a
  surname (``Priya Shah``; data/first_names.txt), a given name as a
  sentence's subject ("Sarah has been signed off sick"), or any two
  capitalised words as one ("Carolyn Moore is ...") unless a word marks an
  organisation, place or event (``_NOT_NAMES``: Health, Union, Party, ...),
* a role or relation (patient, employee, student, my son, ...: data/person_context.txt),
* a pronoun (he, she, his, her) as in "she has been diagnosed with ...",
* a personal identifier found in the same chunk (NINO, NHS number, date of birth, ...).

Topic words nearby (reading list, lecture, research, awareness week, ...:
data/topic_context.txt) drop the finding to LOW. Terms: data/special_category.txt.
"""

from __future__ import annotations

import re

from relay.findings import Confidence

from .confidence import ChunkContext, Hit, words
from .data import load_lines, load_words

WINDOW = 120

TERMS: tuple[tuple[str, str], ...] = tuple(
    tuple(line.split("|", 1)) for line in load_lines("special_category.txt"))  # type: ignore[misc]
PERSON_WORDS = words(load_lines("person_context.txt"))
TOPIC_WORDS = words(load_lines("topic_context.txt"))
TITLED_NAME = re.compile(r"(?<![A-Za-z])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.?[ \t]+[^\W\d_a-z][\w'\-]+")
FIRST_NAMES = load_words("first_names.txt")
_NAME_SUBJECT = re.compile(r"(?<![A-Za-z])([A-Z][a-z]+)(?:'s\b|[ \t]+(?:has|have|had|is|was|will|from|who|told|"
                           r"said|says|asked|mentioned)\b)")
# "Carolyn Moore is ...": any two capitalised words as a sentence's subject, unless one of
# them says it is an organisation, a place or an event rather than a person
_PROPER_SUBJECT = re.compile(r"(?<![A-Za-z])([A-Z][a-z]+)[ \t]+([A-Z][a-z'\-]+)[ \t]+(?:is|has|was|had|will|"
                             r"told|said|says|asked)\b")
_NOT_NAMES = frozenset("""the this that these our your their my his her its a an and of for in on at to new old
health mental public union party labour conservative council university college school hospital trust service
services group team office centre center church mosque temple society association foundation board committee
department ministry police court street road week day month year awareness research policy project programme
fund charity club company ltd limited plc bank news press media national royal british european english
international global general annual monday tuesday wednesday thursday friday saturday sunday january february
march april may june july august september october november december""".split())
_CAP_PAIR = re.compile(r"(?<![A-Za-z])([A-Z][a-z]+)[ \t]+[A-Z][a-z'\-]+")
# terms that are also given names or surnames: "Christian Mason" is a person, not a religion
_NAME_LIKE_TERMS = frozenset({"christian", "arab", "roma", "stroke", "cancer", "gay"})
NAMES = {"health": "health", "ethnicity": "ethnic origin", "religion": "religious belief",
         "sexual_orientation": "sexual orientation", "trade_union": "trade union membership",
         "biometric": "biometric data", "genetic": "genetic data", "political": "political opinion",
         "criminal": "criminal offence data"}


def evaluate(cc: ChunkContext, term_hits: list[tuple[int, int, str, str]], id_positions: list[int]) -> list[Hit]:
    """``term_hits``: (start, end, category, term) already checked as whole words."""
    hits = []
    text = cc.text
    done: set[tuple[str, str]] = set()
    for start, end, category, term in term_hits:
        if (category, term) in done:                 # already HIGH: counted once anyway
            continue
        lo, hi = max(0, start - WINDOW), min(len(text), end + WINDOW)
        if term in _NAME_LIKE_TERMS and text[start].isupper() and _used_as_name(text, start, end):
            continue
        person = (any(lo <= p < hi for p in id_positions)
                  or TITLED_NAME.search(text, lo, hi) is not None
                  or _named(text, lo, hi)
                  or _person_word(cc, start, end))
        if not person:
            continue
        topic, _ = cc.nearest(TOPIC_WORDS, start, end, WINDOW, same_line=True)
        conf = Confidence.LOW if topic >= 0 else Confidence.HIGH
        if conf == Confidence.HIGH:
            done.add((category, term))
        hits.append(Hit("special_category", category, term, conf,
                        f"{NAMES[category]} term near an identified person", start))
    return hits


_CAP_BEFORE = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+[ \t]+$")      # "South Christian", "Mary Christian"
_GREETING = re.compile(r"(?:dear|hi|hello|hey|morning|thanks|cc|from|to|with|and|for)[ \t,]*$", re.I)


def _used_as_name(text: str, start: int, end: int) -> bool:
    """"Dear Christian," / "Christian Mason" / "Mary Christian" / "Christian," at a line end: a name."""
    if _CAP_PAIR.match(text, start) or _CAP_BEFORE.search(text, max(0, start - 30), start):
        return True
    if _GREETING.search(text, max(0, start - 12), start):
        return True
    after = text[end:end + 3]
    return after.startswith((",\n", "\n", ",\r")) or after == ""


def _named(text: str, lo: int, hi: int) -> bool:
    """A "Firstname Surname" pair whose first word is a common given name, or
    a given name as the subject of a sentence ("Sarah has ...", "Sarah's ...")."""
    return any(m.group(1).lower() in FIRST_NAMES for m in _CAP_PAIR.finditer(text, lo, hi)) or \
        any(m.group(1).lower() in FIRST_NAMES for m in _NAME_SUBJECT.finditer(text, lo, hi)) or \
        any(m.group(1).lower() not in _NOT_NAMES and m.group(2).lower() not in _NOT_NAMES
            for m in _PROPER_SUBJECT.finditer(text, lo, hi))


def _person_word(cc: ChunkContext, start: int, end: int) -> bool:
    dist, _ = cc.nearest(PERSON_WORDS, start, end, WINDOW)
    return dist >= 0
