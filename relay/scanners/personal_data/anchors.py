"""Word anchors in one pass: special-category terms, credential, date-of-birth and sign-off words.

All anchors are literal and case-insensitive, so one multi-literal matcher
finds them all: Hyperscan (``hyperscan``, Intel's multi-pattern engine) when
it is installed, about 600 MB/s here; otherwise pyahocorasick over the
lower-cased text, about 40 MB/s (bench/pd_throughput.py). Both give the same
hits, in text order: ``(start, end, family, category, word)`` with str
offsets. Hyperscan scratch space is per thread (scans run in worker threads).
"""

from __future__ import annotations

import re
import threading

from relay.scanners.text import literal_ends

from . import contacts, credentials, dob, special_category

try:  # optional accelerator
    import hyperscan
except ImportError:  # pragma: no cover - depends on the platform's wheels
    hyperscan = None

import ahocorasick


def _entries() -> list[tuple[str, str, str]]:
    """(word, family, category), word in lower case."""
    out = [(term, "term", category) for category, term in special_category.TERMS]
    out += [(a, "password", "") for a in credentials.PASSWORD_ANCHORS]
    out += [(a, "token", "") for a in credentials.TOKEN_ANCHORS]
    out += [(a, "generic", "") for a in credentials.GENERIC_ANCHORS]
    out += [("-----begin", "key", "")]
    out += [(a, "dob", "") for a in dob.ANCHORS]
    out += [(a, "signoff", "") for a in contacts.SIGN_OFF_ANCHORS]
    seen, unique = set(), []
    for word, family, category in out:
        if (word, family) not in seen:
            seen.add((word, family))
            unique.append((word, family, category))
    return unique


ENTRIES = _entries()


# The sign-off "--" opens a signature only at the start of a line (contacts._SIGN_OFF);
# anywhere else it is a rule line or a dash, and "-----" would be four matches.
_DASHES = b"^[ \t>]*--"


class _Hyperscan:
    def __init__(self) -> None:
        self.db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        exprs, flags = [], []
        for word, family, _ in ENTRIES:
            if (word, family) == ("--", "signoff"):
                exprs.append(_DASHES)
                flags.append(hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_MULTILINE)
            else:
                exprs.append(re.escape(word).encode())
                flags.append(hyperscan.HS_FLAG_CASELESS)
        self.db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        self.local = threading.local()

    def find(self, text: str) -> list[tuple[int, int, str, str, str]]:
        hits = []
        for end, idx in literal_ends(self.db, self.local, text):
            word, family, category = ENTRIES[idx]
            hits.append((end - len(word), end, family, category, word))
        return hits


class _AhoCorasick:
    def __init__(self) -> None:
        self.auto = ahocorasick.Automaton()
        for idx, (word, _, _) in enumerate(ENTRIES):
            self.auto.add_word(word, idx)
        self.auto.make_automaton()

    def find(self, text: str) -> list[tuple[int, int, str, str, str]]:
        low = text.lower()
        if len(low) != len(text):     # a few characters lower-case to two; keep offsets
            low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        hits = []
        for last, idx in self.auto.iter(low):
            word, family, category = ENTRIES[idx]
            start = last + 1 - len(word)
            if word == "--" and family == "signoff" and not _opens_line(text, start):
                continue
            hits.append((start, last + 1, family, category, word))
        return hits


def _opens_line(text: str, pos: int) -> bool:
    """Only spaces, tabs and quote marks (``>``) before ``pos`` on its line (what ``_DASHES`` matches)."""
    i = pos
    while i > 0 and text[i - 1] in " \t>":
        i -= 1
    return i == 0 or text[i - 1] == "\n"


def make_matcher(prefer_hyperscan: bool = True):
    if prefer_hyperscan and hyperscan is not None:
        return _Hyperscan()
    return _AhoCorasick()


MATCHER = make_matcher()


def find(text: str) -> list[tuple[int, int, str, str, str]]:
    return MATCHER.find(text)
